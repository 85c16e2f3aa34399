#include "qgnn/nn/layers.h"

#include <torch/nn/functional.h>
#include <torch/nn/init.h>

#include <cmath>
#include <vector>

#include "graph/self_loops_internal.h"
#include "ops/cpu/kernels.h"
#include "ops/ops_internal.h"
#include "qgnn/ops/dropout.h"
#include "qgnn/ops/edge_softmax.h"
#include "qgnn/ops/sddmm.h"
#include "qgnn/ops/spmm.h"
// Packed attention (an nn -> quant dependency; the "Make room" issue moves this seam).
#include "qgnn/quant/packed_tensor.h"

namespace qgnn {

namespace {

// Glorot / Xavier uniform, as PyG initialises GCN and GAT weights.
torch::Tensor glorot(torch::nn::Module& m, const std::string& name, std::vector<int64_t> shape) {
  auto t = m.register_parameter(name, torch::empty(shape));
  torch::nn::init::xavier_uniform_(t);
  return t;
}

// torch::nn::Linear's default initialisation (Kaiming uniform, a = sqrt(5); bias
// uniform in +-1/sqrt(fan_in)).
torch::Tensor linear_weight(torch::nn::Module& m, const std::string& name, int64_t out,
                            int64_t in) {
  auto t = m.register_parameter(name, torch::empty({out, in}));
  torch::nn::init::kaiming_uniform_(t, std::sqrt(5.0));
  return t;
}

torch::Tensor linear_bias(torch::nn::Module& m, const std::string& name, int64_t out,
                          int64_t fan_in) {
  auto t = m.register_parameter(name, torch::empty({out}));
  const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  torch::nn::init::uniform_(t, -bound, bound);
  return t;
}

torch::Tensor zeros_bias(torch::nn::Module& m, const std::string& name, int64_t out) {
  return m.register_parameter(name, torch::zeros({out}));
}

// out + bias; in place when no gradient is recorded (inference), so that a layer's
// [N, F] output exists once. `out` must be a fresh tensor the caller owns.
torch::Tensor add_bias(torch::Tensor out, const torch::Tensor& bias) {
  if (!bias.defined()) return out;
  const bool inplace =
      !at::GradMode::is_enabled() || (!out.requires_grad() && !bias.requires_grad());
  return inplace ? out.add_(bias) : out + bias;
}

}  // namespace

namespace {

// Target-row blocks of about `edges` edges each: row bounds and the matching edge bounds.
void edge_blocks(const at::Tensor& indptr, int64_t edges, std::vector<int64_t>& rows,
                 std::vector<int64_t>& bounds) {
  const int64_t* ip = indptr.data_ptr<int64_t>();
  const int64_t r = indptr.numel() - 1;
  rows = {0};
  bounds = {0};
  for (int64_t i = 1; i <= r; ++i) {
    if (ip[i] - bounds.back() >= edges || i == r) {
      rows.push_back(i);
      bounds.push_back(ip[i]);
    }
  }
}

// Block `k` of rows [rows[k], rows[k + 1]), `cols` floats per row, into out.
using RowProducer = std::function<void(int64_t block, float* out)>;

// A layer's output [N, cols]: handed to `pack` block by block when it takes it, else
// produced whole (blocks in parallel).
LayerOutput block_output(int64_t n, int64_t cols, const std::vector<int64_t>& rows,
                         const RowProducer& produce, const OutputPacker& pack) {
  if (pack && rows.size() >= 2) {
    if (auto packed = pack(cols, rows, produce)) return {torch::Tensor(), std::move(packed)};
  }
  at::Tensor out = at::empty({n, cols}, at::kFloat);
  float* op = out.data_ptr<float>();
  const int64_t blocks = static_cast<int64_t>(rows.size()) - 1;
  at::parallel_for(0, blocks, 1, [&](int64_t b, int64_t e) {
    for (int64_t k = b; k < e; ++k) produce(k, op + rows[k] * cols);
  });
  return {out, nullptr};
}

// score[i, h] = sum_d h[i, h, d] att[h, d], without the [N, H, D] product (inference).
torch::Tensor head_scores(const torch::Tensor& h, const torch::Tensor& att) {
  const at::Tensor hc = h.contiguous(), ac = att.contiguous();
  const int64_t n = hc.size(0), heads = hc.size(1), d = hc.size(2);
  at::Tensor out = at::empty({n, heads}, at::kFloat);
  const float* hp = hc.data_ptr<float>();
  const float* ap = ac.data_ptr<float>();
  float* op = out.data_ptr<float>();
  at::parallel_for(0, n, 1 << 10, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      for (int64_t k = 0; k < heads; ++k) {
        const float* x = hp + (i * heads + k) * d;
        const float* a = ap + k * d;
        float acc = 0.0f;
        for (int64_t c = 0; c < d; ++c) acc += x[c] * a[c];
        op[i * heads + k] = acc;
      }
    }
  });
  return out;
}

}  // namespace

GCNConvImpl::GCNConvImpl(int64_t in_channels, int64_t out_channels, bool use_bias) {
  weight = glorot(*this, "weight", {out_channels, in_channels});
  if (use_bias) bias = zeros_bias(*this, "bias", out_channels);
}

torch::Tensor GCNConvImpl::forward(const GraphOperators& ops, const NodeFeatures& x) {
  if (site_.quantizes_layers()) {
    const at::Tensor s = ops.gcn_scale().unsqueeze(1);
    auto lin = site_.activation(QuantRole::kLinear, x.linear(site_.weight(0, weight)) * s);
    auto agg =
        site_.activation(QuantRole::kAggregate, ops.propagate(Propagation::kSumWithLoops, lin) * s);
    return bias.defined() ? agg + bias : agg;
  }
  if (!at::GradMode::is_enabled()) return infer(ops, x).dense;
  return propagate_normalized(ops, x);
}

bool GCNConvImpl::transforms_first(const NodeFeatures& x) const {
  return x.is_sparse() || x.is_packed() || weight.size(0) <= weight.size(1);
}

torch::Tensor GCNConvImpl::propagate_normalized(const GraphOperators& ops, const NodeFeatures& x) {
  torch::Tensor out;
  if (transforms_first(x)) {
    out = ops.propagate(Propagation::kGcn, x.linear(weight));  // A (X W): fewer columns
  } else {
    out = at::matmul(ops.propagate(Propagation::kGcn, x.dense()), weight.t());
  }
  return add_bias(std::move(out), bias);
}

LayerOutput GCNConvImpl::infer(const GraphOperators& ops, const NodeFeatures& x,
                               const OutputPacker& pack) {
  TORCH_CHECK(!at::GradMode::is_enabled() && !site_.quantizes_layers(),
              "GCNConv::infer: inference only (no autograd, no layer quantization)");
  const int64_t n = x.num_rows(), c = weight.size(0);
  // (A X) W is cheaper with more outputs than inputs: through the normalized graph.
  if (!transforms_first(x)) return {propagate_normalized(ops, x), nullptr};
  // s * X W, in place: A (s * X W) then sums the columns of D^-1/2 (A + I) without it.
  const at::Tensor& s = ops.gcn_scale();
  at::Tensor xw = x.linear(weight).contiguous();
  xw.mul_(s.unsqueeze(1));
  const CsrGraph& g = ops.graph();
  const int64_t* ip = g.indptr().data_ptr<int64_t>();
  const int64_t* ix = g.indices().data_ptr<int64_t>();
  const float* wp = g.has_weights() ? g.weights().data_ptr<float>() : nullptr;
  const float* sp = s.data_ptr<float>();
  const float* lp = ops.added_loops().data_ptr<float>();
  const float* xp = xw.data_ptr<float>();
  const at::Tensor b = bias.defined() ? bias.contiguous() : at::Tensor();
  const float* bp = b.defined() ? b.data_ptr<float>() : nullptr;
  std::vector<int64_t> rows, bounds;
  edge_blocks(g.indptr(), 1 << 16, rows, bounds);
  auto produce = [&](int64_t k, float* out) {
    const int64_t i0 = rows[k], i1 = rows[k + 1], e0 = ip[i0];
    std::vector<int64_t> local(static_cast<size_t>(i1 - i0 + 1));
    for (int64_t t = 0; t <= i1 - i0; ++t) local[t] = ip[i0 + t] - e0;
    cpu::spmm_sum(cpu::CsrView{local.data(), ix + e0, i1 - i0}, xp, c,
                  wp != nullptr ? wp + e0 : nullptr, nullptr, 1, c, out, c);
    for (int64_t i = i0; i < i1; ++i) {
      float* o = out + (i - i0) * c;
      const float* xi = xp + i * c;
      const float si = sp[i], li = lp[i];
      for (int64_t j = 0; j < c; ++j) o[j] = (o[j] + li * xi[j]) * si;
      if (bp != nullptr) {
        for (int64_t j = 0; j < c; ++j) o[j] += bp[j];
      }
    }
  };
  return block_output(n, c, rows, produce, pack);
}

GATConvImpl::GATConvImpl(int64_t in_channels, int64_t out, int64_t h, bool cat, double slope,
                         double attn_dropout, bool use_bias)
    : heads(h),
      out_channels(out),
      concat(cat),
      negative_slope(slope),
      attention_dropout(attn_dropout) {
  TORCH_CHECK(h >= 1, "GATConv: heads must be >= 1, got ", h);
  weight = glorot(*this, "weight", {h * out, in_channels});
  att_src = glorot(*this, "att_src", {h, out});
  att_dst = glorot(*this, "att_dst", {h, out});
  if (use_bias) bias = zeros_bias(*this, "bias", cat ? h * out : out);
}

torch::Tensor GATConvImpl::forward(const GraphOperators& ops, const NodeFeatures& x) {
  return run(ops, x, {}).dense;
}

LayerOutput GATConvImpl::infer(const GraphOperators& ops, const NodeFeatures& x,
                               const OutputPacker& pack) {
  TORCH_CHECK(!at::GradMode::is_enabled() && !is_training(),
              "GATConv::infer: inference only (eval mode, no autograd)");
  return run(ops, x, pack);
}

LayerOutput GATConvImpl::run(const GraphOperators& ops, const NodeFeatures& x,
                             const OutputPacker& pack) {
  const int64_t n = x.num_rows(), width = heads * out_channels;
  auto h = site_.activation(QuantRole::kLinear, x.linear(site_.weight(0, weight)))
               .view({n, heads, out_channels});
  const bool grad = at::GradMode::is_enabled();
  auto score_src = grad ? (h * att_src).sum(-1) : head_scores(h, att_src);  // [N, H]
  auto score_dst = grad ? (h * att_dst).sum(-1) : head_scores(h, att_dst);  // [N, H]
  if (site_.hook != nullptr && !is_training() && !h.requires_grad()) {
    // Packed inference over A + I read from A (no A + I copy), in A + I's edge order:
    // alpha is computed a block of target rows at a time, with the arithmetic of
    // sddmm_add + leaky_relu + edge_softmax below, and packed right away.
    const CsrGraph& a = ops.graph();
    const at::Tensor& loop_indptr = ops.self_loops_indptr();
    std::vector<int64_t> rows, bounds;
    edge_blocks(loop_indptr, 1 << 16, rows, bounds);
    score_dst = score_dst.contiguous();
    score_src = score_src.contiguous();
    const float* sdp = score_dst.data_ptr<float>();
    const float* ssp = score_src.data_ptr<float>();
    const int64_t* ip = a.indptr().data_ptr<int64_t>();
    const int64_t* ix = a.indices().data_ptr<int64_t>();
    const int64_t* lp = loop_indptr.data_ptr<int64_t>();
    const int64_t hh = heads;
    const float slope = static_cast<float>(negative_slope);
    auto produce = [&](int64_t k, float* out) {
      const int64_t i0 = rows[k], i1 = rows[k + 1], e0 = lp[i0];
      for (int64_t i = i0; i < i1; ++i) {
        float* row = out + (lp[i] - e0) * hh;
        const float* sd = sdp + i * hh;
        detail::for_each_source_with_loop(ix, ip[i], ip[i + 1], i,
                                          lp[i + 1] - lp[i] > ip[i + 1] - ip[i],
                                          [&](int64_t t, int64_t j, int64_t) {
                                            float* o = row + t * hh;
                                            for (int64_t c = 0; c < hh; ++c) {
                                              const float v = sd[c] + ssp[j * hh + c];
                                              o[c] = v > 0.0f ? v : v * slope;
                                            }
                                          });
      }
      detail::edge_softmax_rows(lp, e0, out, hh, out, i0, i1);
    };
    if (auto alpha = site_.hook->pack_attention(site_.layer, loop_indptr, heads, bounds, produce)) {
      last_attention_ = torch::Tensor();
      score_src = score_dst = torch::Tensor();  // [N, H] each: not needed past alpha
      // The output, a block of target rows at a time: sum_j alpha^_ij W h_j from the
      // codes, concatenated or averaged over heads, plus bias.
      const at::Tensor hv = h.view({n, width});
      const int64_t d = out_channels, cols = concat ? width : d;
      const at::Tensor b = bias.defined() ? bias.contiguous() : at::Tensor();
      const float* bp = b.defined() ? b.data_ptr<float>() : nullptr;
      auto produce_out = [&](int64_t k, float* out) {
        const int64_t i0 = rows[k], i1 = rows[k + 1];
        if (concat) {
          packed_attention_spmm_rows(a, loop_indptr, hv, *alpha, i0, i1, out);
        } else {
          std::vector<float> all(static_cast<size_t>((i1 - i0) * width));
          packed_attention_spmm_rows(a, loop_indptr, hv, *alpha, i0, i1, all.data());
          for (int64_t i = 0; i < i1 - i0; ++i) {
            for (int64_t c = 0; c < d; ++c) {
              float acc = 0.0f;
              for (int64_t k2 = 0; k2 < hh; ++k2) acc += all[i * width + k2 * d + c];
              out[i * d + c] = acc / static_cast<float>(hh);
            }
          }
        }
        if (bp != nullptr) {
          for (int64_t i = 0; i < i1 - i0; ++i) {
            for (int64_t c = 0; c < cols; ++c) out[i * cols + c] += bp[c];
          }
        }
      };
      return block_output(n, cols, rows, produce_out, pack);
    }
  }
  auto e = torch::leaky_relu(ops.edge_scores_add(score_dst, score_src), negative_slope);
  auto alpha = ops.edge_softmax(e);  // [E', H]
  if (site_.hook != nullptr) alpha = site_.hook->attention(site_.layer, alpha, ops.self_loops());
  last_attention_ = alpha;
  alpha = qgnn::dropout(alpha, attention_dropout, is_training());
  auto out = ops.propagate(Propagation::kSumWithLoops, h, alpha);  // [N, H, D]
  out = concat ? out.view({n, heads * out_channels}) : out.mean(1);
  out = site_.activation(QuantRole::kAggregate, out);
  return {add_bias(std::move(out), bias), nullptr};
}

AGNNConvImpl::AGNNConvImpl(bool requires_grad) {
  beta = register_parameter("beta", torch::ones({1}), requires_grad);
}

torch::Tensor AGNNConvImpl::forward(const GraphOperators& ops, const torch::Tensor& x) {
  const CsrGraph& g = ops.self_loops();
  // x / ||x||, with rows of norm below 1e-6 (all-zero rows are common once embeddings are
  // quantized) mapped to 0 with a zero gradient. torch's normalize divides by
  // max(||x||, 1e-12) instead, whose gradient there is 1e12 x the incoming one: under
  // fine-tuning that overflowed Adam's second moment and turned the weights into NaN.
  auto norm_sq = (x * x).sum(-1, /*keepdim=*/true);
  auto keep = norm_sq > 1e-12;
  auto xn = x * torch::where(keep, norm_sq, torch::ones_like(norm_sq)).rsqrt() * keep;
  if (site_.hook != nullptr && !is_training() && !xn.requires_grad()) {
    // Packed inference: alpha (one value per edge) is computed a block of target rows at a
    // time, with the arithmetic of sddmm_dot + beta * cosine + edge_softmax below, packed
    // right away, and the aggregation reads its codes.
    std::vector<int64_t> rows, bounds;
    edge_blocks(g.indptr(), 1 << 16, rows, bounds);
    const at::Tensor xc = xn.contiguous();
    const float* xp = xc.data_ptr<float>();
    const int64_t width = xc.size(1);
    const int64_t* ip = g.indptr().data_ptr<int64_t>();
    const int64_t* ix = g.indices().data_ptr<int64_t>();
    const float b = beta.item<float>();
    auto produce = [&](int64_t k, float* out) {
      const int64_t i0 = rows[k], i1 = rows[k + 1], e0 = ip[i0];
      std::vector<int64_t> local(static_cast<size_t>(i1 - i0 + 1));
      for (int64_t t = 0; t <= i1 - i0; ++t) local[t] = ip[i0 + t] - e0;
      cpu::sddmm_dot(cpu::CsrView{local.data(), ix + e0, i1 - i0}, xp + i0 * width, xp, 1, width,
                     out);
      for (int64_t e = 0; e < ip[i1] - e0; ++e) out[e] = b * out[e];
      detail::edge_softmax_rows(ip, e0, out, 1, out, i0, i1);
    };
    if (auto packed = site_.hook->pack_attention(site_.layer, g.indptr(), 1, bounds, produce)) {
      last_attention_ = torch::Tensor();
      return packed_attention_spmm(g, x.contiguous(), *packed);
    }
  }
  auto cosine = ops.edge_scores_dot(xn, xn).view({-1});  // [E']
  auto alpha = ops.edge_softmax(beta * cosine);
  if (site_.hook != nullptr) alpha = site_.hook->attention(site_.layer, alpha, g);
  last_attention_ = alpha;
  return ops.propagate(Propagation::kSumWithLoops, x, alpha);
}

LayerOutput AGNNConvImpl::infer(const GraphOperators& ops, const NodeFeatures& x,
                                const OutputPacker& pack) {
  TORCH_CHECK(!at::GradMode::is_enabled() && !is_training(),
              "AGNNConv::infer: inference only (eval mode, no autograd)");
  if (site_.hook == nullptr || !x.is_packed()) return {forward(ops, x.to_dense()), nullptr};
  const PackedTensor& xp = *x.packed();
  const int64_t n = xp.num_rows(), d = xp.num_cols();
  // s_i = 1 / ||x^_i||, 0 for rows of squared norm <= 1e-12 (as forward()), from the codes
  // a block of rows at a time.
  at::Tensor inv_norm = at::empty({n}, at::kFloat);
  float* sp = inv_norm.data_ptr<float>();
  at::parallel_for(0, n, 1024, [&](int64_t rb, int64_t re) {
    std::vector<float> buf(static_cast<size_t>((re - rb) * d));
    xp.decode_rows(rb, re, buf.data());
    for (int64_t i = rb; i < re; ++i) {
      const float* r = buf.data() + (i - rb) * d;
      float sq = 0.0f;
      for (int64_t c = 0; c < d; ++c) sq += r[c] * r[c];
      sp[i] = sq > 1e-12f ? 1.0f / std::sqrt(sq) : 0.0f;
    }
  });
  const CsrGraph& a = ops.graph();
  const at::Tensor& lp = ops.self_loops_indptr();
  std::vector<int64_t> rows, bounds;
  edge_blocks(lp, 1 << 16, rows, bounds);
  const int64_t* lpp = lp.data_ptr<int64_t>();
  const float b = beta.item<float>();
  auto produce = [&](int64_t k, float* out) {
    const int64_t i0 = rows[k], i1 = rows[k + 1], e0 = lpp[i0];
    packed_sddmm_dot_rows(a, lp, xp, inv_norm, i0, i1, out);
    for (int64_t e = 0; e < lpp[i1] - e0; ++e) out[e] = b * out[e];
    detail::edge_softmax_rows(lpp, e0, out, 1, out, i0, i1);
  };
  auto alpha = site_.hook->pack_attention(site_.layer, lp, 1, bounds, produce);
  if (!alpha) return {forward(ops, x.to_dense()), nullptr};
  last_attention_ = torch::Tensor();
  auto produce_out = [&](int64_t k, float* out) {
    packed_attention_spmm_rows(a, lp, xp, *alpha, rows[k], rows[k + 1], out);
  };
  return block_output(n, d, rows, produce_out, pack);
}

SAGEConvImpl::SAGEConvImpl(int64_t in_channels, int64_t out_channels, bool use_bias) {
  weight_neighbors = linear_weight(*this, "weight_neighbors", out_channels, in_channels);
  weight_root = linear_weight(*this, "weight_root", out_channels, in_channels);
  if (use_bias) bias = linear_bias(*this, "bias", out_channels, in_channels);
}

torch::Tensor SAGEConvImpl::forward(const GraphOperators& ops, const NodeFeatures& x) {
  const int64_t out_channels = weight_root.size(0);
  // One pass over X for both transforms: X [W_l; W_r]^T, then aggregate the W_l half.
  auto h =
      site_.activation(QuantRole::kLinear,
                       x.linear(site_.weight(0, torch::cat({weight_neighbors, weight_root}, 0))));
  auto neighbors = ops.propagate(Propagation::kMean, h.narrow(1, 0, out_channels).contiguous());
  auto out =
      site_.activation(QuantRole::kAggregate, neighbors + h.narrow(1, out_channels, out_channels));
  return bias.defined() ? out + bias : out;
}

GINConvImpl::GINConvImpl(int64_t in_channels, int64_t hidden, int64_t out_channels,
                         bool train_eps) {
  eps = register_parameter("eps", torch::zeros({1}), train_eps);
  weight1 = linear_weight(*this, "weight1", hidden, in_channels);
  bias1 = linear_bias(*this, "bias1", hidden, in_channels);
  weight2 = linear_weight(*this, "weight2", out_channels, hidden);
  bias2 = linear_bias(*this, "bias2", out_channels, hidden);
}

torch::Tensor GINConvImpl::forward(const GraphOperators& ops, const NodeFeatures& x) {
  // The MLP's first Linear commutes with the sum: W((1+eps) x_i + sum_j x_j) =
  // (1+eps) (W x_i) + sum_j (W x_j), so X is multiplied once and the sum runs on hidden.
  if (site_.quantizes_layers()) {
    auto h = site_.activation(QuantRole::kLinear, x.linear(site_.weight(0, weight1)));
    auto z = site_.activation(QuantRole::kAggregate,
                              (1 + eps) * h + ops.propagate(Propagation::kSum, h));
    auto hidden = site_.activation(QuantRole::kHidden, torch::relu(z + bias1));
    return torch::linear(hidden, site_.weight(1, weight2), bias2);
  }
  auto h = x.linear(weight1);
  auto z = (1 + eps) * h + ops.propagate(Propagation::kSum, h) + bias1;
  return torch::linear(torch::relu(z), weight2, bias2);
}

}  // namespace qgnn
