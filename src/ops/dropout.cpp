// Inverted dropout with a counter-based RNG: element k is kept when the 16-bit lane
// (k mod 4) of splitmix64(seed, k / 4) is >= round(p * 65536). The mask is a pure function
// of (seed, k): no state, any thread split gives the same mask, and the backward
// regenerates it from the saved seed instead of storing it.
#include "qgnn/ops/dropout.h"

#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12 AVX-512 headers
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <immintrin.h>
#include <torch/autograd.h>

#include <cmath>
#include <cstring>
#include <mutex>

#include "ops/cpu/kernels.h"

namespace qgnn {
namespace {

constexpr int64_t kBlock = 64;  // thread split granularity (elements), a multiple of 32

// splitmix64 output number g + 1 of the stream started at `seed`.
inline uint64_t mix(uint64_t seed, uint64_t g) {
  uint64_t z = seed + (g + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

inline uint16_t lane16(uint64_t seed, int64_t k) {
  return static_cast<uint16_t>(mix(seed, static_cast<uint64_t>(k) >> 2) >> (16 * (k & 3)));
}

uint32_t keep_threshold(double p) {
  const double t = std::nearbyint(p * 65536.0);
  return static_cast<uint32_t>(std::min(t, 65535.0));
}

constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ull;
constexpr uint64_t kMul1 = 0xBF58476D1CE4E5B9ull;
constexpr uint64_t kMul2 = 0x94D049BB133111EBull;

// Scalar reference: keep mask of [b, e) as 0/1 bytes.
void mask_range(uint8_t* m, int64_t b, int64_t e, uint64_t seed, uint32_t threshold) {
  for (int64_t k = b; k < e; ++k) m[k] = lane16(seed, k) >= threshold ? 1 : 0;
}

void apply_scalar(const float* x, float* y, int64_t b, int64_t e, uint64_t seed, uint32_t threshold,
                  float scale) {
  for (int64_t k = b; k < e; ++k) y[k] = lane16(seed, k) >= threshold ? x[k] * scale : 0.0f;
}

// y[k] = keep(k) ? x[k] * scale : 0 for k in [b, e), b a multiple of 16. Four 64-bit
// hashes (one vector) decide 16 elements; the 16-bit lanes of the hash vector are the
// elements in order (little-endian), so lane l of u16 view = element b + l.
inline __m256i mul64_avx2(__m256i a, __m256i b) {
  const __m256i lo = _mm256_mul_epu32(a, b);
  const __m256i cross = _mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64(a, 32), b),
                                         _mm256_mul_epu32(a, _mm256_srli_epi64(b, 32)));
  return _mm256_add_epi64(lo, _mm256_slli_epi64(cross, 32));
}

void apply_avx2(const float* x, float* y, int64_t b, int64_t e, uint64_t seed, uint32_t threshold,
                float scale) {
  const __m256i m1 = _mm256_set1_epi64x(static_cast<int64_t>(kMul1));
  const __m256i m2 = _mm256_set1_epi64x(static_cast<int64_t>(kMul2));
  const __m256i step = _mm256_set1_epi64x(static_cast<int64_t>(4 * kGolden));
  // Hash counter g = k / 4 for lanes g0 .. g0 + 3; z = seed + (g + 1) * golden.
  const uint64_t g0 = static_cast<uint64_t>(b) / 4;
  __m256i z = _mm256_set_epi64x(static_cast<int64_t>(seed + (g0 + 4) * kGolden),
                                static_cast<int64_t>(seed + (g0 + 3) * kGolden),
                                static_cast<int64_t>(seed + (g0 + 2) * kGolden),
                                static_cast<int64_t>(seed + (g0 + 1) * kGolden));
  const __m256i t = _mm256_set1_epi16(static_cast<int16_t>(threshold));
  const __m256 sc = _mm256_set1_ps(scale);
  int64_t k = b;
  for (; k + 16 <= e; k += 16) {
    __m256i h = _mm256_xor_si256(z, _mm256_srli_epi64(z, 30));
    h = mul64_avx2(h, m1);
    h = _mm256_xor_si256(h, _mm256_srli_epi64(h, 27));
    h = mul64_avx2(h, m2);
    h = _mm256_xor_si256(h, _mm256_srli_epi64(h, 31));
    z = _mm256_add_epi64(z, step);
    // keep = (u16 >= t) <=> max(u16, t) == u16 (unsigned).
    const __m256i keep16 = _mm256_cmpeq_epi16(_mm256_max_epu16(h, t), h);
    const __m256i k0 = _mm256_cvtepi16_epi32(_mm256_castsi256_si128(keep16));
    const __m256i k1 = _mm256_cvtepi16_epi32(_mm256_extracti128_si256(keep16, 1));
    const __m256 y0 = _mm256_mul_ps(_mm256_loadu_ps(x + k), sc);
    const __m256 y1 = _mm256_mul_ps(_mm256_loadu_ps(x + k + 8), sc);
    _mm256_storeu_ps(y + k, _mm256_and_ps(y0, _mm256_castsi256_ps(k0)));
    _mm256_storeu_ps(y + k + 8, _mm256_and_ps(y1, _mm256_castsi256_ps(k1)));
  }
  apply_scalar(x, y, k, e, seed, threshold, scale);
}

__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl"))) void apply_avx512(
    const float* x, float* y, int64_t b, int64_t e, uint64_t seed, uint32_t threshold,
    float scale) {
  const __m512i m1 = _mm512_set1_epi64(static_cast<int64_t>(kMul1));
  const __m512i m2 = _mm512_set1_epi64(static_cast<int64_t>(kMul2));
  const __m512i step = _mm512_set1_epi64(static_cast<int64_t>(8 * kGolden));
  const uint64_t g0 = static_cast<uint64_t>(b) / 4;
  __m512i z = _mm512_set_epi64(static_cast<int64_t>(seed + (g0 + 8) * kGolden),
                               static_cast<int64_t>(seed + (g0 + 7) * kGolden),
                               static_cast<int64_t>(seed + (g0 + 6) * kGolden),
                               static_cast<int64_t>(seed + (g0 + 5) * kGolden),
                               static_cast<int64_t>(seed + (g0 + 4) * kGolden),
                               static_cast<int64_t>(seed + (g0 + 3) * kGolden),
                               static_cast<int64_t>(seed + (g0 + 2) * kGolden),
                               static_cast<int64_t>(seed + (g0 + 1) * kGolden));
  const __m512i t = _mm512_set1_epi16(static_cast<int16_t>(threshold));
  const __m512 sc = _mm512_set1_ps(scale);
  int64_t k = b;
  for (; k + 32 <= e; k += 32) {
    __m512i h = _mm512_xor_si512(z, _mm512_srli_epi64(z, 30));
    h = _mm512_mullo_epi64(h, m1);
    h = _mm512_xor_si512(h, _mm512_srli_epi64(h, 27));
    h = _mm512_mullo_epi64(h, m2);
    h = _mm512_xor_si512(h, _mm512_srli_epi64(h, 31));
    z = _mm512_add_epi64(z, step);
    const __mmask32 keep = _mm512_cmpge_epu16_mask(h, t);
    _mm512_storeu_ps(y + k,
                     _mm512_maskz_mul_ps(static_cast<__mmask16>(keep), _mm512_loadu_ps(x + k), sc));
    _mm512_storeu_ps(y + k + 16, _mm512_maskz_mul_ps(static_cast<__mmask16>(keep >> 16),
                                                     _mm512_loadu_ps(x + k + 16), sc));
  }
  apply_scalar(x, y, k, e, seed, threshold, scale);
}

// Splits [0, n) over threads in multiples of kBlock elements (hash-aligned).
template <class F>
void parallel_blocks(int64_t n, const F& f) {
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  at::parallel_for(0, blocks, 1024,
                   [&](int64_t bb, int64_t be) { f(bb * kBlock, std::min(n, be * kBlock)); });
}

void dropout_apply(const float* x, float* y, int64_t n, uint64_t seed, uint32_t threshold,
                   float scale) {
  const bool avx512 = cpu::active_isa() == cpu::Isa::kAvx512;
  parallel_blocks(n, [&](int64_t b, int64_t e) {
    if (avx512)
      apply_avx512(x, y, b, e, seed, threshold, scale);
    else
      apply_avx2(x, y, b, e, seed, threshold, scale);
  });
}

at::Tensor dropout_raw(const at::Tensor& x, double p, uint64_t seed) {
  at::Tensor y = at::empty_like(x, x.options().requires_grad(false));
  dropout_apply(x.data_ptr<float>(), y.data_ptr<float>(), x.numel(), seed, keep_threshold(p),
                static_cast<float>(1.0 / (1.0 - p)));
  return y;
}

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class DropoutFunction : public torch::autograd::Function<DropoutFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, double p, uint64_t seed) {
    ctx->saved_data["p"] = p;
    ctx->saved_data["seed"] = static_cast<int64_t>(seed);
    return dropout_raw(x, p, seed);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const double p = ctx->saved_data["p"].toDouble();
    const uint64_t seed = static_cast<uint64_t>(ctx->saved_data["seed"].toInt());
    return {dropout_raw(grads[0].contiguous(), p, seed), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

uint64_t next_dropout_seed() {
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get<at::CPUGeneratorImpl>()->random64();
}

at::Tensor dropout(const at::Tensor& x, double p, bool training) {
  TORCH_CHECK(p >= 0.0 && p < 1.0, "dropout: p must be in [0, 1), got ", p);
  if (!training || p == 0.0) return x;
  TORCH_CHECK(x.defined() && x.device().is_cpu() && x.scalar_type() == at::kFloat,
              "dropout: x must be a CPU float32 tensor, got ",
              x.defined() ? c10::toString(x.scalar_type()) : "undefined");
  const at::Tensor xc = x.contiguous();
  const uint64_t seed = next_dropout_seed();
  if (!(at::GradMode::is_enabled() && xc.requires_grad())) {
    at::NoGradGuard no_grad;
    return dropout_raw(xc, p, seed);
  }
  return DropoutFunction::apply(xc, p, seed);
}

at::Tensor dropout_keep_mask(int64_t n, double p, uint64_t seed) {
  TORCH_CHECK(p >= 0.0 && p < 1.0, "dropout_keep_mask: p must be in [0, 1), got ", p);
  TORCH_CHECK(n >= 0, "dropout_keep_mask: n must be >= 0, got ", n);
  at::Tensor m = at::empty({n}, at::kByte);
  uint8_t* mp = m.data_ptr<uint8_t>();
  const uint32_t threshold = keep_threshold(p);
  parallel_blocks(n, [&](int64_t b, int64_t e) { mask_range(mp, b, e, seed, threshold); });
  return m;
}

}  // namespace qgnn
