// CostModel: XGBoost regression through the C API learns simple functions of the
// configuration features and reports shape errors.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "qgnn/autobit/cost_model.h"

namespace qgnn {
namespace {

TEST(CostModel, LearnsAMonotoneFunctionOfBits) {
  // Accuracy-like target that saturates with bits: y = 80 - 20 / b0 - 5 / b1.
  std::mt19937 rng(0);
  std::uniform_int_distribution<int> bits(1, 8);
  std::vector<std::vector<float>> x;
  std::vector<float> y;
  for (int i = 0; i < 200; ++i) {
    const float b0 = bits(rng), b1 = bits(rng);
    x.push_back({b0, b1});
    y.push_back(80.0f - 20.0f / b0 - 5.0f / b1);
  }
  CostModel m;
  m.fit(x, y);
  auto pred = m.predict({{1, 1}, {8, 8}, {2, 8}});
  EXPECT_NEAR(pred[0], 55.0, 1.5);
  EXPECT_NEAR(pred[1], 76.875, 1.5);
  EXPECT_LT(pred[0], pred[2]);
  EXPECT_LT(pred[2], pred[1]);
}

TEST(CostModel, IsDeterministicAndValidatesShapes) {
  std::vector<std::vector<float>> x = {{1, 2}, {3, 4}, {5, 6}, {7, 8}};
  std::vector<float> y = {1, 2, 3, 4};
  CostModel a, b;
  a.fit(x, y);
  b.fit(x, y);
  EXPECT_EQ(a.predict(x), b.predict(x));
  EXPECT_THROW(a.predict({{1, 2, 3}}), c10::Error);
  EXPECT_THROW(a.fit(x, {1, 2}), c10::Error);
  CostModel unfitted;
  EXPECT_THROW(unfitted.predict(x), c10::Error);
}

}  // namespace
}  // namespace qgnn
