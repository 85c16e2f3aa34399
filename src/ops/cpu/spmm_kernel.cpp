// SpMM kernel (CSR x dense, sum) with a run-time choice between AVX2 and AVX-512, and the
// ISA selection shared by the other kernels.
// GCC 12's AVX-512 intrinsics trip -Wmaybe-uninitialized on their own
// _mm512_undefined_* placeholders (a false positive, reported at the header's lines).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <ATen/ATen.h>
#include <immintrin.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "ops/cpu/kernels.h"
#include "qgnn/ops/spmm.h"

// Each ISA includes simd_vec.h before the kernel body: keep this order.
// clang-format off
#define QGNN_SIMD_NS avx2
#define QGNN_SIMD_AVX512 0
#include "ops/cpu/simd_vec.h"
#include "ops/cpu/spmm_impl.h"
#undef QGNN_SIMD_NS
#undef QGNN_SIMD_AVX512

#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq")

#define QGNN_SIMD_NS avx512
#define QGNN_SIMD_AVX512 1
#include "ops/cpu/simd_vec.h"
#include "ops/cpu/spmm_impl.h"
#undef QGNN_SIMD_NS
#undef QGNN_SIMD_AVX512
#pragma GCC pop_options
// clang-format on

namespace qgnn::cpu {
namespace {

Isa detect_isa() {
  Isa isa = cpu_has_avx512() ? Isa::kAvx512 : Isa::kAvx2;
  if (const char* env = std::getenv("QGNN_ISA")) {
    if (std::strcmp(env, "avx2") == 0) isa = Isa::kAvx2;
  }
  return isa;
}

std::atomic<int>& isa_state() {
  static std::atomic<int> state{static_cast<int>(detect_isa())};
  return state;
}

}  // namespace

bool cpu_has_avx512() {
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
  }();
  return has;
}

bool cpu_has_avx512_vnni() {
  static const bool has = cpu_has_avx512() && __builtin_cpu_supports("avx512vnni");
  return has;
}

Isa active_isa() { return static_cast<Isa>(isa_state().load(std::memory_order_relaxed)); }

void set_isa_limit(Isa limit) {
  Isa isa = cpu_has_avx512() ? Isa::kAvx512 : Isa::kAvx2;
  if (static_cast<int>(limit) < static_cast<int>(isa)) isa = limit;
  isa_state().store(static_cast<int>(isa), std::memory_order_relaxed);
}

const char* isa_name(Isa isa) { return isa == Isa::kAvx512 ? "avx512" : "avx2"; }

void spmm_sum(const CsrView& g, const float* x, int64_t ldx, const float* w, const int64_t* wperm,
              int64_t heads, int64_t dim, float* out, int64_t ldo) {
  if (w == nullptr && heads > 1) {  // all heads share weight 1: one head of width H*D
    dim *= heads;
    heads = 1;
  }
  const bool avx512 = active_isa() == Isa::kAvx512;
  // Cost units ~ vector loads: an edge costs one per vector of the row, a row one store
  // per vector plus the loop overhead.
  const int64_t vecs = heads * ((dim + 15) / 16) + 1;
  parallel_rows(g.indptr, g.rows, vecs + 2, vecs + 4, [&](int64_t rb, int64_t re) {
    if (avx512) {
      const avx512::SpmmArgs a{g.indptr, g.indices, x, ldx, w, wperm, heads, dim, out, ldo};
      avx512::spmm_rows(a, rb, re);
    } else {
      const avx2::SpmmArgs a{g.indptr, g.indices, x, ldx, w, wperm, heads, dim, out, ldo};
      avx2::spmm_rows(a, rb, re);
    }
  });
}

void spmm_sum_kernel(const CsrGraph& g, const at::Tensor& x, const at::Tensor& w, int64_t heads,
                     at::Tensor& out) {
  TORCH_CHECK(g.defined(), "spmm_sum_kernel: graph is undefined");
  TORCH_CHECK(x.dim() == 2 && x.scalar_type() == at::kFloat && x.is_contiguous(),
              "spmm_sum_kernel: x must be a contiguous [C, H*D] float32 tensor, got ", x.sizes(),
              " ", x.scalar_type());
  TORCH_CHECK(x.size(0) == g.num_cols(), "spmm_sum_kernel: x.size(0) must be ", g.num_cols(),
              ", got ", x.size(0));
  TORCH_CHECK(heads >= 1 && x.size(1) % heads == 0, "spmm_sum_kernel: heads = ", heads,
              " does not divide x.size(1) = ", x.size(1));
  TORCH_CHECK(out.dim() == 2 && out.size(0) == g.num_rows() && out.size(1) == x.size(1) &&
                  out.is_contiguous() && out.scalar_type() == at::kFloat,
              "spmm_sum_kernel: out must be a contiguous float32 [", g.num_rows(), ", ", x.size(1),
              "] tensor, got ", out.sizes());
  const float* wp = nullptr;
  if (w.defined()) {
    TORCH_CHECK(w.scalar_type() == at::kFloat && w.is_contiguous() &&
                    w.numel() == g.num_edges() * (w.dim() == 1 ? 1 : heads) &&
                    (w.dim() == 1 || (w.dim() == 2 && w.size(1) == heads)),
                "spmm_sum_kernel: w must be a contiguous float32 [E] or [E, heads] tensor, got ",
                w.sizes());
    wp = w.data_ptr<float>();
  }
  // [E] weights with several heads: the same weight for every head, i.e. one head of
  // width H*D.
  const bool shared = w.defined() && w.dim() == 1 && heads > 1;
  const int64_t h = shared ? 1 : heads;
  spmm_sum(view_of(g), x.data_ptr<float>(), x.size(1), wp, nullptr, h, x.size(1) / h,
           out.data_ptr<float>(), out.size(1));
}

}  // namespace qgnn::cpu
