// Aggregation over packed rows (fused dequantize): front-end checks, then the row kernel of
// quant/cpu/pack_impl.h over balanced row chunks.
#include <ATen/ATen.h>

#include <atomic>
#include <cstdint>

#include "ops/cpu/kernels.h"
#include "qgnn/quant/packed_tensor.h"
#include "quant/cpu/pack_kernel.h"

namespace qgnn {
namespace {

// Rows j < safe_rows() may be read up to 16 bytes past their last byte (the SIMD group
// loads); the last few rows of the buffer are read from a zero-padded copy instead.
int64_t safe_rows(const PackedView& v) {
  int64_t j = v.rows;
  while (j > 0 && v.data_end(j - 1) + 16 > v.end) --j;
  return j;
}

}  // namespace

at::Tensor packed_spmm(const at::Tensor& indptr, const at::Tensor& indices, const at::Tensor& w,
                       const PackedTensor& x) {
  TORCH_CHECK(x.defined(), "packed_spmm: x is undefined");
  TORCH_CHECK(indptr.defined() && indptr.dim() == 1 && indptr.numel() >= 1 &&
                  indptr.scalar_type() == at::kLong && indptr.device().is_cpu(),
              "packed_spmm: indptr must be a non-empty [R + 1] int64 CPU tensor, got ",
              indptr.defined() ? indptr.sizes() : at::IntArrayRef{});
  TORCH_CHECK(indices.defined() && indices.dim() == 1 && indices.scalar_type() == at::kLong &&
                  indices.device().is_cpu(),
              "packed_spmm: indices must be an [E] int64 CPU tensor");
  const at::Tensor ip = indptr.contiguous();
  const at::Tensor ix = indices.contiguous();
  const int64_t r = ip.numel() - 1, e = ix.numel();
  const int64_t* ipp = ip.data_ptr<int64_t>();
  TORCH_CHECK(ipp[0] == 0, "packed_spmm: indptr[0] must be 0, got ", ipp[0]);
  TORCH_CHECK(ipp[r] == e, "packed_spmm: indptr[", r, "] must equal the number of indices ", e,
              ", got ", ipp[r]);
  for (int64_t i = 0; i < r; ++i) {
    TORCH_CHECK(ipp[i] <= ipp[i + 1], "packed_spmm: indptr must be non-decreasing, indptr[", i,
                "] = ", ipp[i], " > indptr[", i + 1, "] = ", ipp[i + 1]);
  }
  at::Tensor wc;
  if (w.defined()) {
    TORCH_CHECK(
        w.dim() == 1 && w.numel() == e && w.scalar_type() == at::kFloat && w.device().is_cpu(),
        "packed_spmm: w must be an [E = ", e, "] float32 CPU tensor, got ", w.sizes(), " ",
        w.scalar_type());
    wc = w.contiguous();
  }
  const int64_t f = x.num_cols();
  at::Tensor out = at::empty({r, f}, at::kFloat);
  if (r == 0 || f == 0) return out;

  std::atomic<int64_t> bad{-1};
  quant_cpu::PackedSpmmArgs a{};
  a.indptr = ipp;
  a.indices = ix.data_ptr<int64_t>();
  a.w = wc.defined() ? wc.data_ptr<float>() : nullptr;
  a.x = PackedTensorAccess::view(x);
  a.safe_rows = safe_rows(a.x);
  a.out = out.data_ptr<float>();
  a.bad_index = &bad;
  const quant_cpu::Kernels& k = quant_cpu::kernels();
  // Cost units ~ one vector of work: an edge costs its decode + FMA vectors plus the row
  // metadata look-ups, a row its stores.
  const int64_t vecs = (f + 15) / 16;
  cpu::parallel_rows(ipp, r, 2 * vecs + 4, vecs + 4,
                     [&](int64_t rb, int64_t re) { k.spmm_rows(a, rb, re); });
  const int64_t be = bad.load();
  TORCH_CHECK(be < 0, "packed_spmm: indices[", be, "] = ", be >= 0 ? a.indices[be] : 0,
              " is not a row of x (N = ", x.num_rows(), ")");
  return out;
}

at::Tensor packed_spmm(const CsrGraph& g, const PackedTensor& x) {
  TORCH_CHECK(g.defined(), "packed_spmm: graph is undefined");
  TORCH_CHECK(x.defined(), "packed_spmm: x is undefined");
  TORCH_CHECK(g.num_cols() == x.num_rows(), "packed_spmm: graph has ", g.num_cols(),
              " columns but x has ", x.num_rows(), " rows");
  return packed_spmm(g.indptr(), g.indices(), g.weights(), x);
}

}  // namespace qgnn
