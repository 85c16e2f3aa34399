#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/autograd.h>

#include <vector>

#include "ops/cpu/kernels.h"
#include "qgnn/ops/dropout.h"

namespace qgnn {
namespace {

double kept_fraction(const at::Tensor& mask) { return mask.to(at::kDouble).mean().item<double>(); }

TEST(DropoutMask, FractionKeptMatchesP) {
  for (double p : {0.5, 0.6, 0.1}) {
    const at::Tensor m = dropout_keep_mask(1000000, p, 12345);
    // Standard deviation sqrt(p (1 - p) / n) < 5e-4: the tolerance is ~8 sigma.
    EXPECT_NEAR(kept_fraction(m), 1.0 - p, 4e-3) << "p=" << p;
  }
}

TEST(DropoutMask, SameSeedSameMaskDifferentSeedDifferentMask) {
  const at::Tensor a = dropout_keep_mask(100000, 0.5, 7);
  const at::Tensor b = dropout_keep_mask(100000, 0.5, 7);
  const at::Tensor c = dropout_keep_mask(100000, 0.5, 8);
  EXPECT_TRUE(at::equal(a, b));
  EXPECT_NEAR((a != c).to(at::kDouble).mean().item<double>(), 0.5, 0.02);
  // Counter-based: a prefix does not depend on the length.
  EXPECT_TRUE(at::equal(dropout_keep_mask(1003, 0.3, 9).slice(0, 0, 1000),
                        dropout_keep_mask(1000, 0.3, 9)));
}

TEST(DropoutMask, IndependentOfThreadsAndIsa) {
  std::vector<at::Tensor> masks;
  const int saved = at::get_num_threads();
  for (int t : {1, 2}) {
    at::set_num_threads(t);
    for (cpu::Isa isa : {cpu::Isa::kAvx2, cpu::Isa::kAvx512}) {
      cpu::set_isa_limit(isa);
      masks.push_back(dropout_keep_mask(300007, 0.4, 99));
    }
  }
  at::set_num_threads(saved);
  cpu::set_isa_limit(cpu::Isa::kAvx512);
  for (const auto& m : masks) EXPECT_TRUE(at::equal(m, masks[0]));
}

TEST(Dropout, ValuesScaledAndReproducibleUnderManualSeed) {
  const at::Tensor x = at::rand({1000, 77}) + 1;  // no zeros
  for (double p : {0.5, 0.6}) {
    at::manual_seed(3);
    const at::Tensor y1 = qgnn::dropout(x, p, true);
    at::manual_seed(3);
    const at::Tensor y2 = qgnn::dropout(x, p, true);
    EXPECT_TRUE(at::equal(y1, y2));
    const at::Tensor kept = y1 != 0;
    EXPECT_TRUE(at::allclose(y1.masked_select(kept),
                             x.masked_select(kept) * static_cast<float>(1.0 / (1.0 - p))));
    EXPECT_NEAR(kept_fraction(kept), 1.0 - p, 0.01);
    EXPECT_FALSE(at::equal(qgnn::dropout(x, p, true), y1));  // a fresh seed per call
  }
}

TEST(Dropout, KeptElementsAreTheKeepMaskOfTheDrawnSeedOnEveryPath) {
  // The vectorized kernels (AVX2, AVX-512, any thread split) must reproduce the scalar
  // mask of dropout_keep_mask for the seed the call drew.
  const int64_t n = 100003;  // not a multiple of any vector width
  const at::Tensor x = at::rand({n}) + 1;
  const int saved = at::get_num_threads();
  for (int t : {1, 2}) {
    at::set_num_threads(t);
    for (cpu::Isa isa : {cpu::Isa::kAvx2, cpu::Isa::kAvx512}) {
      cpu::set_isa_limit(isa);
      for (double p : {0.1, 0.5, 0.6}) {
        at::manual_seed(11);
        const uint64_t seed = next_dropout_seed();
        at::manual_seed(11);
        const at::Tensor y = qgnn::dropout(x, p, true);
        EXPECT_TRUE(at::equal((y != 0).to(at::kByte), dropout_keep_mask(n, p, seed)))
            << "threads=" << t << " isa=" << cpu::isa_name(isa) << " p=" << p;
      }
    }
  }
  at::set_num_threads(saved);
  cpu::set_isa_limit(cpu::Isa::kAvx512);
}

TEST(Dropout, GradientIsMaskOverKeepProbability) {
  const at::Tensor x = (at::rand({500, 33}) + 1).requires_grad_();
  const double p = 0.6;
  const at::Tensor y = qgnn::dropout(x, p, true);
  const at::Tensor dy = at::randn(y.sizes());
  const at::Tensor dx = torch::autograd::grad({y}, {x}, {dy})[0];
  const at::Tensor mask = (y != 0).to(at::kFloat);
  EXPECT_TRUE(at::allclose(dx, dy * mask * static_cast<float>(1.0 / (1.0 - p))));
}

TEST(Dropout, IdentityWhenEvalOrPZero) {
  const at::Tensor x = at::randn({10, 10});
  EXPECT_TRUE(qgnn::dropout(x, 0.5, false).is_same(x));
  EXPECT_TRUE(qgnn::dropout(x, 0.0, true).is_same(x));
}

TEST(Dropout, RejectsBadP) {
  const at::Tensor x = at::randn({4});
  EXPECT_THROW(qgnn::dropout(x, 1.0, true), c10::Error);
  EXPECT_THROW(qgnn::dropout(x, -0.1, true), c10::Error);
  EXPECT_THROW(dropout_keep_mask(4, 1.5, 0), c10::Error);
}

}  // namespace
}  // namespace qgnn
