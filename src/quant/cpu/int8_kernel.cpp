// Integer linear / SpMM / int4 kernels: the scalar reference and the SIMD paths (int8_impl.h
// compiled for AVX2, AVX-512BW and AVX-512 VNNI), chosen at run time.
// GCC 12's AVX-512 intrinsics trip -W(maybe-)uninitialized on their own
// _mm512_undefined_* placeholders (false positives, reported at the header's lines).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include "quant/cpu/int8_kernel.h"

#include <immintrin.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <utility>
#include <vector>

#include "ops/cpu/kernels.h"

// clang-format off
#define QGNN_INT8_NS avx2
#define QGNN_INT8_AVX512 0
#define QGNN_INT8_VNNI 0
#include "quant/cpu/int8_impl.h"
#undef QGNN_INT8_NS
#undef QGNN_INT8_AVX512
#undef QGNN_INT8_VNNI

#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq")
#define QGNN_INT8_NS avx512
#define QGNN_INT8_AVX512 1
#define QGNN_INT8_VNNI 0
#include "quant/cpu/int8_impl.h"
#undef QGNN_INT8_NS
#undef QGNN_INT8_AVX512
#undef QGNN_INT8_VNNI
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx512vnni")
#define QGNN_INT8_NS avx512_vnni
#define QGNN_INT8_AVX512 1
#define QGNN_INT8_VNNI 1
#include "quant/cpu/int8_impl.h"
#undef QGNN_INT8_NS
#undef QGNN_INT8_AVX512
#undef QGNN_INT8_VNNI
#pragma GCC pop_options
// clang-format on

namespace qgnn::quant_cpu {
namespace reference {

// Plain loops over the original [O, K] weights and unpacked values, written independently of
// the SIMD layouts; the rule of int8_ops.h.
int8_t nibble(const uint8_t* row, int64_t t) {
  const int v = (t & 1) != 0 ? row[t / 2] >> 4 : row[t / 2] & 0x0F;
  return static_cast<int8_t>(v >= 8 ? v - 16 : v);
}

int32_t value(const uint8_t* row, bool x4, int64_t t) {
  return x4 ? nibble(row, t) : static_cast<int8_t>(row[t]);
}

int32_t requant_at(const RequantView& rq, int32_t acc, int64_t row, int64_t col) {
  int32_t m = 0;
  int s = 0;
  if (rq.col_m != nullptr && rq.row_m != nullptr) {
    combine_ref(rq.row_m[row], rq.row_s[row], rq.col_m[col], rq.col_s[col], &m, &s);
  } else if (rq.col_m != nullptr) {
    m = rq.col_m[col];
    s = rq.col_s[col];
  } else {
    m = rq.row_m[row];
    s = rq.row_s[row];
  }
  return requant_ref(acc, m, s, rq.zero_point, rq.lo, rq.hi);
}

void linear_rows(const LinearArgs& a, int64_t rb, int64_t re) {
  for (int64_t n = rb; n < re; ++n) {
    const uint8_t* xr = a.x + n * a.ldx;
    for (int64_t o = 0; o < a.o; ++o) {
      const int8_t* wr = a.w + o * a.k;
      int64_t acc = 0;
      for (int64_t t = 0; t < a.k; ++t) acc += value(xr, a.x4, t) * int64_t{wr[t]};
      if (a.out_s32 != nullptr) {
        a.out_s32[n * a.o + o] = static_cast<int32_t>(acc);
      } else {
        if (a.rq.bias != nullptr) acc += a.rq.bias[o];
        a.out_q[n * a.o + o] =
            static_cast<int8_t>(requant_at(a.rq, static_cast<int32_t>(acc), n, o));
      }
    }
  }
}

void spmm_rows(const SpmmArgs& a, int64_t rb, int64_t re) {
  std::vector<int64_t> acc(static_cast<size_t>(a.f));
  for (int64_t i = rb; i < re; ++i) {
    std::fill(acc.begin(), acc.end(), 0);
    for (int64_t e = a.indptr[i]; e < a.indptr[i + 1]; ++e) {
      const uint8_t* xr = a.x + a.indices[e] * a.ldx;
      for (int64_t t = 0; t < a.f; ++t) acc[t] += value(xr, a.x4, t);
    }
    if (a.out_s32 != nullptr) {
      for (int64_t t = 0; t < a.f; ++t) a.out_s32[i * a.f + t] = static_cast<int32_t>(acc[t]);
    } else {
      const uint8_t* xi = a.x + i * a.ldx;
      for (int64_t t = 0; t < a.f; ++t) {
        const int64_t v = acc[t] + int64_t{a.self_weight} * value(xi, a.x4, t);
        a.out_q[i * a.f + t] = static_cast<int8_t>(requant_at(a.rq, static_cast<int32_t>(v), i, t));
      }
    }
  }
}

bool pack_int4_row(const int8_t* q, int64_t n, uint8_t* out) {
  bool ok = true;
  std::memset(out, 0, static_cast<size_t>((n + 1) / 2));
  for (int64_t t = 0; t < n; ++t) {
    ok = ok && q[t] >= -8 && q[t] <= 7;
    out[t / 2] = static_cast<uint8_t>(out[t / 2] | ((q[t] & 0x0F) << ((t & 1) * 4)));
  }
  return ok;
}

void unpack_int4_row(const uint8_t* p, int64_t n, int8_t* out) {
  for (int64_t t = 0; t < n; ++t) out[t] = nibble(p, t);
}

void requant_rows(const RowRequantArgs& a, int64_t rb, int64_t re) {
  const int64_t scale = int64_t{1} << a.pre_shift;
  for (int64_t i = rb; i < re; ++i) {
    const int64_t k = a.per_row ? i : 0;
    for (int64_t t = 0; t < a.f; ++t) {
      const int64_t at = i * a.f + t;
      int64_t v = (a.acc8 ? int64_t{static_cast<const int8_t*>(a.acc)[at]}
                          : int64_t{static_cast<const int32_t*>(a.acc)[at]}) *
                  scale;
      if (a.self != nullptr) v += int64_t{a.self[at]} * a.self_weight;
      if (a.rq.bias != nullptr) v += a.rq.bias[t];
      a.out[at] = static_cast<int8_t>(
          requant_ref64(v, a.rq.row_m[k], a.rq.row_s[k], a.rq.zero_point, a.rq.lo, a.rq.hi));
    }
  }
}

constexpr Int8Kernels kKernels{&linear_rows, &spmm_rows, &pack_int4_row, &unpack_int4_row,
                               &requant_rows};

}  // namespace reference

namespace {
std::atomic<int> g_cap{static_cast<int>(Int8Path::kAvx512Vnni)};
}  // namespace

Int8Path int8_path() {
  Int8Path p = Int8Path::kAvx2;
  if (cpu::active_isa() == cpu::Isa::kAvx512) {
    p = cpu::cpu_has_avx512_vnni() ? Int8Path::kAvx512Vnni : Int8Path::kAvx512;
  }
  const int cap = g_cap.load(std::memory_order_relaxed);
  return static_cast<int>(p) <= cap ? p : static_cast<Int8Path>(cap);
}

const char* int8_path_name(Int8Path p) {
  switch (p) {
    case Int8Path::kScalar:
      return "scalar";
    case Int8Path::kAvx2:
      return "avx2";
    case Int8Path::kAvx512:
      return "avx512";
    case Int8Path::kAvx512Vnni:
      return "avx512_vnni";
  }
  return "unknown";
}

void set_int8_path_cap(Int8Path cap) {
  g_cap.store(static_cast<int>(cap), std::memory_order_relaxed);
}

const Int8Kernels& int8_kernels() {
  switch (int8_path()) {
    case Int8Path::kScalar:
      return reference::kKernels;
    case Int8Path::kAvx2:
      return avx2::kKernels;
    case Int8Path::kAvx512:
      return avx512::kKernels;
    case Int8Path::kAvx512Vnni:
      return avx512_vnni::kKernels;
  }
  return reference::kKernels;
}

}  // namespace qgnn::quant_cpu
