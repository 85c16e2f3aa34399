#include "qgnn/nn/layers/gcn_conv.h"

#include <vector>

#include "nn/int_layer_util.h"
#include "nn/layer_util.h"
#include "ops/cpu/kernels.h"
#include "ops/ops_internal.h"

namespace qgnn {

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

// The registration: "gcn", a stack of GCNConv with ReLU between layers.
namespace {

LayerSpec gcn_spec() {
  LayerSpec s;
  s.name = "gcn";
  s.build = [](const ModelConfig& c) {
    return conv_stack(c, Activation::kReLU,
                      [](int64_t, int64_t in, int64_t out) { return GCNConv(in, out).ptr(); });
  };
  s.preset = [](Preset& p, const std::string& preset, DatasetFamily family) {
    const bool sgq = preset == "sgquant";
    p.model.hidden_channels = sgq ? 32 : 16;
    p.model.num_layers = 2;
    p.model.dropout = 0.5;
    p.optim.lr = 0.01;
    p.optim.weight_decay = 5e-4;
    p.optim.weight_decay_first_layer_only = true;
    p.optim.epochs = 200;
    p.optim.patience = 100;
    if (family == DatasetFamily::kRandomSplit && !sgq) p.model.hidden_channels = 64;
  };
  s.weight_elements = [](const ModelConfig& c, double limit) {
    return stack_weight_elements(c, limit, [&](double in, double out, bool) { return in * out; });
  };
  return s;
}

}  // namespace

REGISTER_LAYER_TYPE(gcn_spec());

}  // namespace qgnn

// Integer lowering (nn/int_model.h):
//   q_lin = RQ(x_q W_q^T; s_in s_w[o] r_j d_j / s_lin), q_agg = RQ(sum_{j in N(i)+i} q_lin_j;
//   d_i s_lin / s_agg), then bias and ReLU into the next input's codes, or the logits.
namespace qgnn {
namespace {

using namespace intlayer;

struct GcnIntegerPlan : IntegerPlan {
  at::Tensor lin_rows;  // [N, 2]: r_j d_j (the input row factor on the first layer)
  at::Tensor agg_rows;  // [N, 2]: d_i s_lin / s_agg
};

class GcnIntegerLayer : public IntegerLayer {
 public:
  GcnIntegerLayer(const IntegerLowering& lo, const GCNConvImpl& conv) : bits_(lo.bits) {
    TORCH_CHECK(conv.bias.defined(), "IntegerModel: GCNConv without bias is not supported");
    const float s_in = lo.scale(QuantRole::kEmbedding);
    s_lin_ = lo.scale(QuantRole::kLinear);
    s_agg_ = lo.scale(QuantRole::kAggregate);
    const double s_next = lo.next_scale();
    lin_ = quantize_linear(lo, conv.weight.detach(), s_in, s_lin_);
    glue_ = make_bias_glue(lo.layer, lo.last, conv.bias.detach(), s_agg_, s_next);
  }

  std::shared_ptr<const IntegerPlan> plan(const GraphOperators& ops,
                                          const at::Tensor& input_rows) const override {
    auto p = std::make_shared<GcnIntegerPlan>();
    const at::Tensor dinv = ops.gcn_scale().to(at::kDouble);
    p->lin_rows = multipliers(input_rows.defined() ? input_rows * dinv : dinv);
    p->agg_rows = multipliers(dinv * (double(s_lin_) / s_agg_));
    return p;
  }

  at::Tensor forward(const GraphOperators& ops, const IntegerPlan& plan, const at::Tensor& x,
                     const Quantizer& codes, IntegerTiming& t) const override {
    const auto& p = static_cast<const GcnIntegerPlan&>(plan);
    const at::Tensor lin = run_linear(lin_, x, p.lin_rows, bits_, t, &codes);
    const auto t0 = Clock::now();
    SpmmRequant srq;
    srq.row_multiplier = p.agg_rows;
    srq.out = range_for(bits_, false);
    const at::Tensor agg = spmm_rq(ops.self_loops(), lin, lin_.out, bits_, srq);
    t.aggregate_ms += ms_since(t0);
    return finish_layer(glue_, agg, bits_, codes, t);
  }

  int64_t weight_bytes() const override { return lin_.bytes(); }

 private:
  int bits_;
  float s_lin_ = 1, s_agg_ = 1;
  QuantizedLinear lin_;
  BiasGlue glue_;
};

}  // namespace

std::shared_ptr<const IntegerLayer> GCNConvImpl::lower(const IntegerLowering& lowering) const {
  return std::make_shared<GcnIntegerLayer>(lowering, *this);
}

}  // namespace qgnn
