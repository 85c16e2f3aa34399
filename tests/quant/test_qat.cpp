// Quantization-aware training (Degree-Quant) and its integer models: the symmetric
// fake quantizer and its straight-through gradient, range observers on outliers,
// protective-mask probabilities against in-degree, and the integer model against the
// fake-quantized model it is converted from.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "qgnn/quant/int8_ops.h"
#include "qgnn/quant/int_model.h"
#include "qgnn/quant/qat.h"
#include "qgnn/train/trainer.h"
#include "testing/graphs.h"
#include "testing/guards.h"

namespace qgnn {
namespace {

TEST(FakeQuantizeSymmetric, ValuesAreTheNearestCodeAndGradientIsStraightThrough) {
  for (int bits : {8, 4, 2}) {
    const double qmax = symmetric_qmax(bits);
    auto x = (torch::randn({64, 5}) * 3).requires_grad_(true);
    const auto scale = torch::scalar_tensor(0.05f);
    auto y = fake_quantize_symmetric(x, scale, bits);
    // Reference in double: the nearest code (ties to even), clamped.
    auto v = x.detach().to(torch::kDouble) / 0.05f;
    auto ref = torch::clamp(torch::round(v), -qmax, qmax) * 0.05f;
    EXPECT_TRUE(torch::allclose(y.detach().to(torch::kDouble), ref, 0, 1e-6)) << bits;
    // STE: dy/dx = 1 where |x / s| <= qmax + 1/2, else 0.
    auto g = torch::randn({64, 5});
    y.backward(g);
    auto inside = (v.abs() <= qmax + 0.5).to(torch::kFloat);
    EXPECT_TRUE(x.grad().equal(g * inside)) << bits;
    EXPECT_GT(inside.sum().item<double>(), 0);
    EXPECT_LT(inside.sum().item<double>(), x.numel()) << "test should clip some values";
  }
}

TEST(FakeQuantizeSymmetric, PerChannelWeightScalesUseEachRowsMaximum) {
  auto w = torch::randn({6, 9});
  w[2].zero_();
  const auto s = weight_scale(w, 8);
  EXPECT_FLOAT_EQ(s[0].item<float>(), w[0].abs().max().item<float>() / 127);
  EXPECT_FLOAT_EQ(s[2].item<float>(), 1.0f);  // all-zero row
  const auto q = fake_quantize_symmetric(w, s, 8);
  // Each row's largest magnitude is representable exactly.
  for (int r : {0, 1, 3}) {
    EXPECT_FLOAT_EQ(q[r].abs().max().item<float>(), w[r].abs().max().item<float>());
  }
  EXPECT_TRUE((q - w).abs().le(s.unsqueeze(1) / 2 + 1e-7).all().item<bool>());
}

TEST(RangeObserver, PercentileIgnoresOutliersThatMinMaxFollows) {
  torch::manual_seed(3);
  auto x = torch::rand({20000}) * 2 - 1;  // uniform on [-1, 1]
  x[17] = 1000.0f;                        // one outlier
  x[4242] = -500.0f;
  const auto [mlo, mhi] = observe_range(x, ObserverKind::kMomentum, 99.9, 4096);
  EXPECT_FLOAT_EQ(mlo, -500.0f);
  EXPECT_FLOAT_EQ(mhi, 1000.0f);
  const auto [plo, phi] = observe_range(x, ObserverKind::kPercentile, 99.9, 4096);
  EXPECT_NEAR(plo, -1.0, 0.02);
  EXPECT_NEAR(phi, 1.0, 0.02);
  // Small tensors use every value: the 100th percentile is the maximum.
  const auto [alo, ahi] =
      observe_range(torch::tensor({3.f, -2.f, 7.f}), ObserverKind::kPercentile, 100.0, 4096);
  EXPECT_FLOAT_EQ(alo, -2.0f);
  EXPECT_FLOAT_EQ(ahi, 7.0f);
}

TEST(RangeObserver, MomentumRangeMovesTowardsNewBatchesAndFreezesAtEvaluation) {
  QatConfig c = QatConfig::preset("int8");
  c.momentum = 0.25;
  QatHook hook(c);
  GraphOperators ops(testing::random_graph(10, 2.0, 1));
  hook.begin_forward(ops, /*training=*/true);
  hook.activation(0, QuantRole::kLinear, torch::full({10, 2}, 4.0f).index_put_({0, 0}, -4.0f));
  EXPECT_FLOAT_EQ(hook.ranges().at({0, QuantRole::kLinear}).hi, 4.0f);  // first batch as is
  hook.activation(0, QuantRole::kLinear, torch::full({10, 2}, 8.0f).index_put_({0, 0}, -4.0f));
  EXPECT_FLOAT_EQ(hook.ranges().at({0, QuantRole::kLinear}).hi, 0.75f * 4 + 0.25f * 8);
  hook.begin_forward(ops, /*training=*/false);
  hook.activation(0, QuantRole::kLinear, torch::full({10, 2}, 100.0f));
  EXPECT_FLOAT_EQ(hook.ranges().at({0, QuantRole::kLinear}).hi, 5.0f);
  EXPECT_FLOAT_EQ(hook.scale(0, QuantRole::kLinear), 5.0f / 127);
  // The state round-trips (checkpoints, best-epoch restore).
  QatHook copy(QatConfig{});
  copy.load_state(hook.save_state());
  EXPECT_FLOAT_EQ(copy.scale(0, QuantRole::kLinear), 5.0f / 127);
  EXPECT_EQ(copy.config().policy.to_string(), "bits=8");
}

TEST(ProtectiveMask, ProbabilityFollowsTheInDegreeCdfBetweenPminAndPmax) {
  // In-degrees 0, 1, 1, 2, 5: CDF 1/5, 3/5, 3/5, 4/5, 1.
  const auto deg = torch::tensor({0, 1, 1, 2, 5}, torch::kLong);
  const auto p = protective_mask_probabilities(deg, 0.1, 0.5);
  const std::vector<double> want = {0.1 + 0.4 * 0.2, 0.1 + 0.4 * 0.6, 0.1 + 0.4 * 0.6,
                                    0.1 + 0.4 * 0.8, 0.5};
  for (int i = 0; i < 5; ++i) EXPECT_NEAR(p[i].item<double>(), want[i], 1e-6) << i;
  EXPECT_THROW(protective_mask_probabilities(deg, 0.6, 0.5), c10::Error);
}

TEST(ProtectiveMask, DrawnMasksMatchTheProbabilitiesAndNeverApplyAtEvaluation) {
  CsrGraph g = testing::random_graph(400, 4.0, 9);
  GraphOperators ops(g);
  QatConfig c = QatConfig::preset("int4");
  c.degree_quant = true;
  c.p_min = 0.0;
  c.p_max = 0.8;
  QatHook hook(c);
  const auto p = protective_mask_probabilities(g.in_degree(), 0.0, 0.8);
  auto freq = torch::zeros({400});
  const int draws = 400;
  for (int i = 0; i < draws; ++i) {
    hook.begin_forward(ops, true);
    freq += hook.protected_nodes().to(torch::kFloat);
  }
  freq /= draws;
  // Binomial(400, p): 5 standard deviations.
  auto tol = 5 * torch::sqrt(p * (1 - p) / draws) + 1e-3;
  EXPECT_TRUE((freq - p).abs().le(tol).all().item<bool>());
  // Node 0 is the hub (highest in-degree): protected most often.
  EXPECT_NEAR(p[0].item<double>(), 0.8, 1e-6);
  // Protected rows pass through unquantized in training; nothing is protected in eval.
  hook.begin_forward(ops, true);
  auto h = torch::randn({400, 3});
  auto q = hook.activation(0, QuantRole::kAggregate, h);
  auto m = hook.protected_nodes();
  EXPECT_TRUE(q.index({m}).equal(h.index({m})));
  EXPECT_FALSE(q.index({~m}).equal(h.index({~m})));
  hook.begin_forward(ops, false);
  EXPECT_FALSE(hook.protected_nodes().defined());
  EXPECT_FALSE(hook.activation(0, QuantRole::kAggregate, h).equal(h));
}

// Two planted classes with noisy indicator features on a random graph.
TrainData small_problem(uint64_t seed, bool sparse_binary) {
  CsrGraph g = testing::random_graph(300, 6.0, seed, /*isolated=*/3);
  torch::manual_seed(seed);
  auto y = torch::randint(0, 3, {300}, torch::kLong);
  at::Tensor x;
  if (sparse_binary) {
    x = (torch::rand({300, 40}) < 0.1).to(torch::kFloat);
    x.index_put_({torch::arange(300), y * 5}, 1.0f);
  } else {
    x = torch::randn({300, 24}) + 2 * torch::nn::functional::one_hot(y, 24).to(torch::kFloat);
  }
  auto idx = torch::arange(300);
  return TrainData(GraphOperators(g), NodeFeatures::from_dense(x), y, idx.lt(60),
                   idx.ge(60) & idx.lt(120), idx.ge(120));
}

struct IntCase {
  ModelKind kind;
  const char* precision;
  bool row_normalize;
};

TEST(IntegerModel, AgreesWithTheFakeQuantizedModelItWasConvertedFrom) {
  const std::vector<IntCase> cases = {
      {ModelKind::kGCN, "int8", true},   {ModelKind::kGCN, "int4", false},
      {ModelKind::kSAGE, "int8", false}, {ModelKind::kSAGE, "int4", true},
      {ModelKind::kGIN, "int8", false},  {ModelKind::kGIN, "int4", false}};
  for (const IntCase& c : cases) {
    for (cpu::Isa isa : testing::isas()) {
      testing::IsaGuard guard(isa);
      TrainData data = small_problem(5, c.row_normalize);
      torch::manual_seed(6);
      Preset p = make_preset("kipf", c.kind, data.x.num_cols(), 3);
      p.model.row_normalize_input = c.row_normalize;
      p.optim.epochs = 40;
      GnnModel model(p.model);
      QatConfig qc = QatConfig::preset(c.precision);
      qc.degree_quant = true;
      auto hook = std::make_shared<QatHook>(qc);
      model.set_quant_hook(hook);
      train_full_batch(model, data, p.optim);
      torch::NoGradGuard no_grad;
      const at::Tensor fake = model.forward(data.ops, data.x);
      model.set_quant_hook(nullptr);
      const IntegerModel im = IntegerModel::convert(model, *hook);
      const QuantizedInput qx = im.quantize_input(data.x);
      const at::Tensor logits = im.forward(data.ops, qx);
      // Cached per-graph multipliers: a second forward, and one over a rebuilt graph.
      EXPECT_TRUE(im.forward(data.ops, qx).equal(logits));
      const CsrGraph& g0 = data.ops.graph();
      GraphOperators rebuilt(CsrGraph(g0.indptr().clone(), g0.indices().clone()));
      EXPECT_TRUE(im.forward(rebuilt, qx).equal(logits));
      const double agree =
          logits.argmax(1).eq(fake.argmax(1)).to(torch::kDouble).mean().item<double>();
      const std::string what = to_string(c.kind) + " " + c.precision + " on " + cpu::isa_name(isa);
      EXPECT_GE(agree, 0.995) << what;
      // The same arithmetic: logits equal to float rounding on almost every node; the rest
      // are nodes where a value sat on a rounding boundary (a one-code flip at 4 bits moves
      // the logits a lot, but rarely).
      const double spread = fake.abs().max().item<double>();
      const double same_rows =
          (logits - fake).abs().amax(1).le(1e-4 * spread).to(torch::kDouble).mean().item<double>();
      EXPECT_GE(same_rows, 0.98) << what;
    }
  }
}

TEST(IntegerModel, RejectsModelsWithoutIntegerKernelsOrMixedBits) {
  Preset p = make_preset("kipf", ModelKind::kGAT, 8, 3);
  GnnModel gat(p.model);
  QatHook hook(QatConfig::preset("int8"));
  EXPECT_THROW(IntegerModel::convert(gat, hook), c10::Error);
  Preset g = make_preset("kipf", ModelKind::kGCN, 8, 3);
  GnnModel gcn(g.model);
  QatConfig mixed = QatConfig::preset("int8");
  mixed.policy = BitPolicy::parse("bits=8;agg=4");
  QatHook mixed_hook(mixed);
  EXPECT_THROW(IntegerModel::convert(gcn, mixed_hook), c10::Error);
}

}  // namespace
}  // namespace qgnn
