#include "qgnn/nn/layers/gat_conv.h"

#include <vector>

#include "graph/self_loops_internal.h"
#include "nn/layer_util.h"
#include "ops/ops_internal.h"
#include "qgnn/ops/dropout.h"
#include "qgnn/quant/packed_tensor.h"

namespace qgnn {

namespace {

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

void GATConvImpl::add_quant_points(const GraphOperators& ops, int64_t layer,
                                   std::vector<QuantPointInfo>& points) const {
  const at::Tensor& lp = ops.self_loops_indptr();  // (A + I is not built for this)
  points.push_back({{layer, QuantRole::kAttention}, lp[lp.numel() - 1].item<int64_t>(), heads});
}

// The registration: "gat", GATConv layers with ELU between them; hidden layers
// concatenate `heads` heads, the output layer averages `output_heads`.
namespace {

LayerSpec gat_spec() {
  LayerSpec s;
  s.name = "gat";
  s.build = [](const ModelConfig& c) {
    const auto make = [&c](int64_t l, int64_t in, int64_t out) {
      const bool last = l == c.num_layers - 1;
      return GATConv(in, out, last ? c.output_heads : c.heads, /*concat=*/!last, 0.2,
                     c.attention_dropout)
          .ptr();
    };
    return conv_stack(c, Activation::kELU, make, c.hidden_channels * c.heads);
  };
  s.preset = [](Preset& p, const std::string& preset, DatasetFamily) {
    p.model.heads = 8;
    p.model.hidden_channels = preset == "sgquant" ? 32 : 8;  // 8 x 32 = 256, SGQuant Table I
    p.model.output_heads = 1;
    p.model.num_layers = 2;
    p.model.dropout = 0.6;
    p.model.attention_dropout = 0.6;
    p.optim.lr = 0.005;
    p.optim.weight_decay = 5e-4;
    p.optim.epochs = 1000;
    p.optim.patience = 100;
  };
  s.weight_elements = [](const ModelConfig& c, double limit) {
    const double heads = static_cast<double>(c.heads),
                 out_heads = static_cast<double>(c.output_heads);
    return stack_weight_elements(
        c, limit,
        [&](double in, double out, bool last) { return (last ? out_heads : heads) * out * in; },
        static_cast<double>(c.hidden_channels) * heads);
  };
  return s;
}

}  // namespace

REGISTER_LAYER_TYPE(gat_spec());

}  // namespace qgnn
