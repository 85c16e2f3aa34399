// Aggregation over packed rows (fused dequantize): front-end checks, then the row kernel of
// quant/cpu/pack_impl.h over balanced row chunks.
#include <ATen/ATen.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <vector>

#include "graph/self_loops_internal.h"
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

// Index-list x: output row i accumulates a_e = w_e scale_j at the columns of row j's
// 1-codes, in edge order, and sum_e w_e lo_j once at the end (x^_j = lo_j + scale_j q_j).
template <class T>
void spmm_index_rows(const PackedView& x, const T* idx, const int64_t* indptr,
                     const int64_t* indices, const float* w, float* out, std::atomic<int64_t>& bad,
                     int64_t rb, int64_t re) {
  const int64_t f = x.cols, n = x.rows;
  for (int64_t i = rb; i < re; ++i) {
    float* __restrict o = out + i * f;
    std::fill(o, o + f, 0.0f);
    float corr = 0.0f;
    for (int64_t e = indptr[i]; e < indptr[i + 1]; ++e) {
      const int64_t j = indices[e];
      if (static_cast<uint64_t>(j) >= static_cast<uint64_t>(n)) {
        bad.store(e, std::memory_order_relaxed);
        continue;
      }
      const float we = w != nullptr ? w[e] : 1.0f;
      const float a = we * x.scale(j);
      corr += we * x.lo(j);
      const T* __restrict c = idx + x.idx_offset[j];
      const int64_t cnt = x.idx_offset[j + 1] - x.idx_offset[j];
      for (int64_t k = 0; k < cnt; ++k) o[c[k]] += a;
    }
    for (int64_t k = 0; k < f; ++k) o[k] += corr;
  }
}

// out[i] = sum_e w_e x^[indices[e]] for rows i in [0, r) of the CSR (ipp, ix), every
// element written, column scales applied. Returns an edge whose index is not a row of x,
// or -1. parallel: over balanced row chunks, else on the calling thread.
int64_t spmm_into(const int64_t* ipp, int64_t r, const int64_t* ix, const float* wp,
                  const PackedTensor& x, float* out, bool parallel) {
  const int64_t f = x.num_cols();
  std::atomic<int64_t> bad{-1};
  const PackedView xv = PackedTensorAccess::view(x);
  auto run = [&](int64_t edge_cost, int64_t row_cost, const auto& rows) {
    if (parallel) {
      cpu::parallel_rows(ipp, r, edge_cost, row_cost, rows);
    } else {
      rows(int64_t{0}, r);
    }
  };
  if (xv.index_list) {
    // Cost units as below: an edge costs its row's average count of 1-codes (scattered
    // adds) plus the metadata look-ups, a row its zeroing and final add.
    const int64_t ones = x.num_rows() > 0 ? x.num_index_entries() / x.num_rows() : 0;
    run(ones + 4, (f + 7) / 8 + 4, [&](int64_t rb, int64_t re) {
      if (xv.idx16 != nullptr)
        spmm_index_rows(xv, xv.idx16, ipp, ix, wp, out, bad, rb, re);
      else
        spmm_index_rows(xv, xv.idx32, ipp, ix, wp, out, bad, rb, re);
    });
  } else {
    quant_cpu::PackedSpmmArgs a{};
    a.indptr = ipp;
    a.indices = ix;
    a.w = wp;
    a.x = xv;
    a.safe_rows = safe_rows(a.x);
    a.out = out;
    a.bad_index = &bad;
    const quant_cpu::Kernels& k = quant_cpu::kernels();
    // Cost units ~ one vector of work: an edge costs its decode + FMA vectors plus the row
    // metadata look-ups, a row its stores.
    const int64_t vecs = (f + 15) / 16;
    run(2 * vecs + 4, vecs + 4, [&](int64_t rb, int64_t re) { k.spmm_rows(a, rb, re); });
  }
  // Column scales commute with the sum over edges: applied once per output value.
  if (x.column_scale().defined()) {
    at::from_blob(out, {r, f}, at::kFloat).mul_(x.column_scale().unsqueeze(0));
  }
  return bad.load();
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
  const int64_t be =
      spmm_into(ipp, r, ix.data_ptr<int64_t>(), wc.defined() ? wc.data_ptr<float>() : nullptr, x,
                out.data_ptr<float>(), /*parallel=*/true);
  TORCH_CHECK(be < 0, "packed_spmm: indices[", be, "] = ", be >= 0 ? ix.data_ptr<int64_t>()[be] : 0,
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

namespace {

// Rows [rb, re) of the attention-weighted aggregation into o (row i at o + (i - rb) * width,
// every element written). a: a scratch buffer for one row's decoded alpha. With lp (the
// row pointer of A + I, g being A), row i reads A + I's sources in with_self_loops() order
// and alpha rows [lp[i], lp[i + 1]).
void attention_rows(const int64_t* ip, const int64_t* ix, const int64_t* lp, const float* xp,
                    int64_t width, int64_t heads, const PackedTensor& alpha, int64_t rb, int64_t re,
                    float* o0, std::vector<float>& a) {
  const int64_t d = width / heads;
  std::fill(o0, o0 + (re - rb) * width, 0.0f);
  for (int64_t i = rb; i < re; ++i) {
    const int64_t eb = ip[i], ee = ip[i + 1];
    const int64_t ab = lp != nullptr ? lp[i] : eb, ae_ = lp != nullptr ? lp[i + 1] : ee;
    if (ab == ae_) continue;
    a.resize(static_cast<size_t>((ae_ - ab) * heads));
    alpha.decode_rows(ab, ae_, a.data());
    float* __restrict o = o0 + (i - rb) * width;
    auto add = [&](int64_t t, int64_t j, int64_t) {
      const float* __restrict xs = xp + j * width;
      const float* at = a.data() + t * heads;
      for (int64_t h = 0; h < heads; ++h) {
        const float w = at[h];
        float* __restrict oh = o + h * d;
        const float* __restrict xh = xs + h * d;
        for (int64_t c = 0; c < d; ++c) oh[c] += w * xh[c];
      }
    };
    if (lp != nullptr) {
      detail::for_each_source_with_loop(ix, eb, ee, i, ae_ - ab > ee - eb, add);
    } else {
      for (int64_t e = eb; e < ee; ++e) add(e - eb, ix[e], e);
    }
  }
}

// edges: the number of alpha rows expected (-1: g's edges).
void check_attention_args(const char* fn, const CsrGraph& g, const at::Tensor& x,
                          const PackedTensor& alpha, int64_t edges = -1) {
  TORCH_CHECK(g.defined(), fn, ": graph is undefined");
  TORCH_CHECK(alpha.defined(), fn, ": alpha is undefined");
  if (edges < 0) edges = g.num_edges();
  TORCH_CHECK(alpha.num_rows() == edges, fn, ": alpha has ", alpha.num_rows(),
              " rows but the graph has ", edges, " edges");
  const int64_t heads = alpha.num_cols();
  TORCH_CHECK(heads >= 1, fn, ": alpha has no columns");
  TORCH_CHECK(x.defined() && x.dim() == 2 && x.scalar_type() == at::kFloat &&
                  x.size(0) == g.num_cols() && x.size(1) % heads == 0,
              fn, ": x must be a [", g.num_cols(), ", H * D] float32 tensor with H = ", heads,
              ", got ", x.sizes(), " ", x.scalar_type());
}

}  // namespace

at::Tensor packed_attention_spmm(const CsrGraph& g, const at::Tensor& x_in,
                                 const PackedTensor& alpha) {
  check_attention_args("packed_attention_spmm", g, x_in, alpha);
  const at::Tensor x = x_in.contiguous();
  const int64_t r = g.num_rows(), width = x.size(1), heads = alpha.num_cols();
  at::Tensor out = at::empty({r, width}, at::kFloat);
  if (r == 0 || width == 0) return out.zero_();
  const int64_t* ip = g.indptr().data_ptr<int64_t>();
  const int64_t* ix = g.indices().data_ptr<int64_t>();
  const float* xp = x.data_ptr<float>();
  float* op = out.data_ptr<float>();
  cpu::parallel_rows(ip, r, width + heads, width, [&](int64_t rb, int64_t re) {
    std::vector<float> a;
    attention_rows(ip, ix, nullptr, xp, width, heads, alpha, rb, re, op + rb * width, a);
  });
  return out;
}

void packed_attention_spmm_rows(const CsrGraph& g, const at::Tensor& x, const PackedTensor& alpha,
                                int64_t row_begin, int64_t row_end, float* out) {
  packed_attention_spmm_rows(g, at::Tensor(), x, alpha, row_begin, row_end, out);
}

void packed_attention_spmm_rows(const CsrGraph& g, const at::Tensor& loop_indptr,
                                const at::Tensor& x, const PackedTensor& alpha, int64_t row_begin,
                                int64_t row_end, float* out) {
  const char* fn = "packed_attention_spmm_rows";
  const bool loops = loop_indptr.defined();
  TORCH_CHECK(g.defined(), fn, ": graph is undefined");
  if (loops) {
    TORCH_CHECK(loop_indptr.dim() == 1 && loop_indptr.numel() == g.num_rows() + 1 &&
                    loop_indptr.scalar_type() == at::kLong && loop_indptr.is_contiguous(),
                fn, ": loop_indptr must be a contiguous [", g.num_rows() + 1, "] int64 tensor");
  }
  // With loop_indptr, alpha has one row per edge of A + I.
  check_attention_args(fn, g, x, alpha,
                       /*edges=*/loops ? loop_indptr[g.num_rows()].item<int64_t>() : -1);
  TORCH_CHECK(x.is_contiguous(), fn, ": x must be contiguous");
  TORCH_CHECK(0 <= row_begin && row_begin <= row_end && row_end <= g.num_rows(), fn, ": rows [",
              row_begin, ", ", row_end, ") outside [0, ", g.num_rows(), ")");
  if (row_begin == row_end || x.size(1) == 0) return;
  std::vector<float> a;
  attention_rows(g.indptr().data_ptr<int64_t>(), g.indices().data_ptr<int64_t>(),
                 loops ? loop_indptr.data_ptr<int64_t>() : nullptr, x.data_ptr<float>(), x.size(1),
                 alpha.num_cols(), alpha, row_begin, row_end, out, a);
}

namespace {

void check_loop_rows(const char* fn, const CsrGraph& g, const at::Tensor& loop_indptr,
                     const PackedTensor& x, int64_t row_begin, int64_t row_end) {
  TORCH_CHECK(g.defined(), fn, ": graph is undefined");
  TORCH_CHECK(x.defined(), fn, ": x is undefined");
  TORCH_CHECK(loop_indptr.defined() && loop_indptr.dim() == 1 &&
                  loop_indptr.numel() == g.num_rows() + 1 &&
                  loop_indptr.scalar_type() == at::kLong && loop_indptr.is_contiguous(),
              fn, ": loop_indptr must be a contiguous [", g.num_rows() + 1, "] int64 tensor");
  TORCH_CHECK(x.num_rows() == g.num_cols(), fn, ": x has ", x.num_rows(),
              " rows but the graph has ", g.num_cols(), " columns");
  TORCH_CHECK(0 <= row_begin && row_begin <= row_end && row_end <= g.num_rows(), fn, ": rows [",
              row_begin, ", ", row_end, ") outside [0, ", g.num_rows(), ")");
}

// Rows [row_begin, row_end) of A + I, read from A (ip, ix) in with_self_loops() order, as
// a local CSR: local_ip[i - row_begin] = lp[i] - lp[row_begin], local_ix the sources.
void loop_block_csr(const int64_t* ip, const int64_t* ix, const int64_t* lp, int64_t row_begin,
                    int64_t row_end, std::vector<int64_t>& local_ip,
                    std::vector<int64_t>& local_ix) {
  const int64_t e0 = lp[row_begin];
  local_ip.resize(static_cast<size_t>(row_end - row_begin + 1));
  local_ix.resize(static_cast<size_t>(lp[row_end] - e0));
  for (int64_t i = row_begin; i < row_end; ++i) {
    local_ip[i - row_begin] = lp[i] - e0;
    int64_t* o = local_ix.data() + (lp[i] - e0);
    detail::for_each_source_with_loop(ix, ip[i], ip[i + 1], i,
                                      lp[i + 1] - lp[i] > ip[i + 1] - ip[i],
                                      [&](int64_t t, int64_t j, int64_t) { o[t] = j; });
  }
  local_ip[row_end - row_begin] = lp[row_end] - e0;
}

}  // namespace

void packed_sddmm_dot_rows(const CsrGraph& g, const at::Tensor& loop_indptr, const PackedTensor& x,
                           const at::Tensor& row_scale, int64_t row_begin, int64_t row_end,
                           float* out) {
  const char* fn = "packed_sddmm_dot_rows";
  check_loop_rows(fn, g, loop_indptr, x, row_begin, row_end);
  TORCH_CHECK(
      !row_scale.defined() || (row_scale.dim() == 1 && row_scale.numel() == x.num_rows() &&
                               row_scale.scalar_type() == at::kFloat && row_scale.is_contiguous()),
      fn, ": row_scale must be a contiguous [", x.num_rows(), "] float32 tensor");
  if (row_begin == row_end) return;
  const int64_t f = x.num_cols();
  if (f == 0) {
    std::fill(out,
              out + (loop_indptr[row_end].item<int64_t>() - loop_indptr[row_begin].item<int64_t>()),
              0.0f);
    return;
  }
  const int64_t* ip = g.indptr().data_ptr<int64_t>();
  const int64_t* ix = g.indices().data_ptr<int64_t>();
  const int64_t* lp = loop_indptr.data_ptr<int64_t>();
  const float* rs = row_scale.defined() ? row_scale.data_ptr<float>() : nullptr;
  const PackedView v = PackedTensorAccess::view(x);
  const quant_cpu::Kernels& k = quant_cpu::kernels();
  const float* cs = x.column_scale().defined() ? x.column_scale().data_ptr<float>() : nullptr;
  // x^_j = cs * (scale_j q_j + lo_j) (an index list's q_j is 1 at its indices), so with
  // y = x^_i * cs: x^_i . x^_j = scale_j (y . q_j) + lo_j sum(y), the codes of a bitmap
  // expanded in registers (Kernels::dot_sources).
  std::vector<float> y(static_cast<size_t>(f));
  std::vector<int64_t> local_ip, local_ix;
  loop_block_csr(ip, ix, lp, row_begin, row_end, local_ip, local_ix);
  const int64_t e0 = lp[row_begin];
  for (int64_t i = row_begin; i < row_end; ++i) {
    PackedTensorAccess::decode_row(x, v, i, y.data());
    if (cs != nullptr) {
      for (int64_t c = 0; c < f; ++c) y[c] *= cs[c];
    }
    float ysum = 0.0f;
    for (int64_t c = 0; c < f; ++c) ysum += y[c];
    const int64_t count = lp[i + 1] - lp[i];
    const int64_t* src = local_ix.data() + (lp[i] - e0);
    float* o = out + (lp[i] - e0);
    if (v.index_list) {
      for (int64_t t = 0; t < count; ++t) {
        const int64_t j = src[t];
        const float zero = v.code0(j), one = v.code1(j);
        float sel = 0.0f;
        for (int64_t e = v.idx_offset[j]; e < v.idx_offset[j + 1]; ++e) {
          sel += y[v.idx16 != nullptr ? v.idx16[e] : v.idx32[e]];
        }
        o[t] = zero * ysum + (one - zero) * sel;
      }
    } else {
      k.dot_sources(v, y.data(), ysum, src, count, o);
    }
    if (rs != nullptr) {
      for (int64_t t = 0; t < count; ++t) o[t] *= rs[i] * rs[src[t]];
    }
  }
}

void packed_attention_spmm_rows(const CsrGraph& g, const at::Tensor& loop_indptr,
                                const PackedTensor& x, const PackedTensor& alpha, int64_t row_begin,
                                int64_t row_end, float* out) {
  const char* fn = "packed_attention_spmm_rows";
  check_loop_rows(fn, g, loop_indptr, x, row_begin, row_end);
  TORCH_CHECK(alpha.defined(), fn, ": alpha is undefined");
  const int64_t edges = loop_indptr[g.num_rows()].item<int64_t>();
  TORCH_CHECK(alpha.num_rows() == edges && alpha.num_cols() == 1, fn, ": alpha must be [", edges,
              ", 1] (one head over the edges of A + I), got [", alpha.num_rows(), ", ",
              alpha.num_cols(), "]");
  if (row_begin == row_end || x.num_cols() == 0) return;
  // The block's rows of A + I as a local CSR, and its alpha decoded: then the packed SpMM
  // kernel (fused dequantize of x) on the calling thread.
  const int64_t* ip = g.indptr().data_ptr<int64_t>();
  const int64_t* ix = g.indices().data_ptr<int64_t>();
  const int64_t* lp = loop_indptr.data_ptr<int64_t>();
  std::vector<float> w(static_cast<size_t>(lp[row_end] - lp[row_begin]));
  alpha.decode_rows(lp[row_begin], lp[row_end], w.data());
  std::vector<int64_t> local_ip, local_ix;
  loop_block_csr(ip, ix, lp, row_begin, row_end, local_ip, local_ix);
  const int64_t rows = row_end - row_begin;
  const int64_t bad =
      spmm_into(local_ip.data(), rows, local_ix.data(), w.data(), x, out, /*parallel=*/false);
  TORCH_CHECK(bad < 0, fn, ": a source index is not a row of x (N = ", x.num_rows(), ")");
}

}  // namespace qgnn
