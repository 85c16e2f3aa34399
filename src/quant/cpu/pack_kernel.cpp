// Pack / decode / packed-SpMM kernels, compiled for AVX2 (the build baseline) and for
// AVX-512 (under a target pragma), and chosen at run time through ops/cpu/kernels.h.
// GCC 12's AVX-512 intrinsics trip -W(maybe-)uninitialized on their own
// _mm512_undefined_* placeholders (false positives, reported at the header's lines).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include "quant/cpu/pack_kernel.h"

#include <ATen/ATen.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "ops/cpu/kernels.h"

namespace qgnn::quant_cpu {
namespace {

// Shuffle control and shift per lane to expand Lanes codes of B bits (B in 1..8, by index)
// from one group of bytes: lane k takes bytes [k B / 8, k B / 8 + 1] and shifts right by
// k B % 8 (B - 1 + shift <= 14 bits, so two bytes always suffice; an index past the group
// picks a byte whose bits the final AND mask drops).
template <int Lanes>
struct ExpandAll {
  alignas(64) int8_t ctrl[9][Lanes * 4];
  alignas(64) int32_t shift[9][Lanes];
  alignas(64) int32_t mask[9][Lanes];  // 2^B - 1 in every lane
  constexpr ExpandAll() : ctrl(), shift(), mask() {
    for (int b = 1; b <= 8; ++b) {
      for (int k = 0; k < Lanes; ++k) {
        const int bit = k * b;
        ctrl[b][4 * k] = static_cast<int8_t>(bit / 8);
        ctrl[b][4 * k + 1] = static_cast<int8_t>(bit / 8 + 1);
        ctrl[b][4 * k + 2] = -128;  // zero
        ctrl[b][4 * k + 3] = -128;
        shift[b][k] = bit % 8;
        mask[b][k] = (1 << b) - 1;
      }
    }
  }
};
template <int Lanes>
constexpr ExpandAll<Lanes> kExpandAll{};

// 1-bit codes of one byte as 8 floats (AVX2 decode of 1-bit rows: one aligned load).
struct BitLut {
  alignas(64) float v[256][8];
  constexpr BitLut() : v() {
    for (int b = 0; b < 256; ++b)
      for (int k = 0; k < 8; ++k) v[b][k] = static_cast<float>((b >> k) & 1);
  }
};
constexpr BitLut kBitLut{};

// 1-bit codes of one byte as 8 lane masks (all ones where the bit is set).
struct BitMaskLut {
  alignas(64) int32_t v[256][8];
  constexpr BitMaskLut() : v() {
    for (int b = 0; b < 256; ++b)
      for (int k = 0; k < 8; ++k) v[b][k] = ((b >> k) & 1) != 0 ? -1 : 0;
  }
};
constexpr BitMaskLut kBitMaskLut{};

alignas(32) constexpr int32_t kTailMask[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                               0,  0,  0,  0,  0,  0,  0,  0};

}  // namespace
}  // namespace qgnn::quant_cpu

#define QGNN_QUANT_NS avx2
#define QGNN_QUANT_AVX512 0
#include "quant/cpu/pack_impl.h"
#undef QGNN_QUANT_NS
#undef QGNN_QUANT_AVX512

#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq")
#define QGNN_QUANT_NS avx512
#define QGNN_QUANT_AVX512 1
#include "quant/cpu/pack_impl.h"
#undef QGNN_QUANT_NS
#undef QGNN_QUANT_AVX512
#pragma GCC pop_options

namespace qgnn::quant_cpu {

const Kernels& kernels() {
  return cpu::active_isa() == cpu::Isa::kAvx512 ? avx512::kKernels : avx2::kKernels;
}

}  // namespace qgnn::quant_cpu
