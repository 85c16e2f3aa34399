#include "qgnn/nn/layers/sage_conv.h"

#include <vector>

#include "nn/int_layer_util.h"
#include "nn/layer_util.h"

namespace qgnn {

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

// The registration: "sage", a stack of SAGEConv with ReLU between layers (PyG's example
// settings: 2 x 64).
namespace {

LayerSpec sage_spec() {
  LayerSpec s;
  s.name = "sage";
  s.build = [](const ModelConfig& c) {
    return conv_stack(c, Activation::kReLU,
                      [](int64_t, int64_t in, int64_t out) { return SAGEConv(in, out).ptr(); });
  };
  s.preset = [](Preset& p, const std::string&, DatasetFamily) { pyg_example_preset(p); };
  s.weight_elements = [](const ModelConfig& c, double limit) {
    return stack_weight_elements(c, limit,
                                 [](double in, double out, bool) { return 2 * in * out; });
  };
  return s;
}

// Integer lowering (nn/int_model.h):
//   q_lin = RQ(x_q [W_l; W_r]_q^T; s_in s_w[o] r_j / s_lin)
//   q_agg = RQ(sum_j q_lin,l_j + deg_i q_lin,r_i; s_lin / (deg_i s_agg)) (deg 0: the root)
// then bias and ReLU into the next input's codes, or the logits.
using namespace intlayer;

struct SageIntegerPlan : IntegerPlan {
  at::Tensor lin_rows;  // [N, 2] input row factors (first layer), or undefined
  at::Tensor agg_rows;  // [N, 2]: s_lin / (max(deg_i, 1) s_agg)
  at::Tensor deg;       // [N, 1] int32: max(in-degree, 1)
};

class SageIntegerLayer : public IntegerLayer {
 public:
  SageIntegerLayer(const IntegerLowering& lo, const SAGEConvImpl& conv) : bits_(lo.bits) {
    TORCH_CHECK(conv.bias.defined(), "IntegerModel: SAGEConv without bias is not supported");
    const float s_in = lo.scale(QuantRole::kEmbedding);
    s_lin_ = lo.scale(QuantRole::kLinear);
    s_agg_ = lo.scale(QuantRole::kAggregate);
    const double s_next = lo.next_scale();
    lin_ = quantize_linear(
        lo, at::cat({conv.weight_neighbors.detach(), conv.weight_root.detach()}, 0), s_in, s_lin_);
    out_ = lin_.out / 2;
    glue_ = make_bias_glue(lo.layer, lo.last, conv.bias.detach(), s_agg_, s_next);
  }

  std::shared_ptr<const IntegerPlan> plan(const GraphOperators& ops,
                                          const at::Tensor& input_rows) const override {
    auto p = std::make_shared<SageIntegerPlan>();
    const at::Tensor deg = ops.graph().in_degree().clamp_min(1);
    p->deg = deg.to(at::kInt).unsqueeze(1);
    if (input_rows.defined()) p->lin_rows = multipliers(input_rows);
    p->agg_rows = multipliers(double(s_lin_) / (deg.to(at::kDouble) * double(s_agg_)));
    return p;
  }

  at::Tensor forward(const GraphOperators& ops, const IntegerPlan& plan, const at::Tensor& x,
                     const Quantizer& codes, IntegerTiming& t) const override {
    const auto& p = static_cast<const SageIntegerPlan&>(plan);
    const at::Tensor lin = run_linear(lin_, x, p.lin_rows, bits_, t);  // int8 [N, 2 out]
    auto t0 = Clock::now();
    const at::Tensor left = codes.store_codes(lin.narrow(1, 0, out_).contiguous());
    const at::Tensor root = lin.narrow(1, out_, out_).contiguous();
    const at::Tensor s = spmm_s32(ops.graph(), left, out_, bits_);
    t.aggregate_ms += ms_since(t0);
    t0 = Clock::now();
    // sum_j lin_l,j + deg_i lin_r,i at scale s_lin / deg_i (deg 0: the root alone).
    const at::Tensor acc = s + root.to(at::kInt) * p.deg;
    const at::Tensor agg = glue(acc, 0, {}, 0, {}, p.agg_rows, range_for(bits_, false));
    t.other_ms += ms_since(t0);
    return finish_layer(glue_, agg, bits_, codes, t);
  }

  int64_t weight_bytes() const override { return lin_.bytes(); }

 private:
  int bits_;
  int64_t out_ = 0;
  float s_lin_ = 1, s_agg_ = 1;
  QuantizedLinear lin_;
  BiasGlue glue_;
};

}  // namespace

std::shared_ptr<const IntegerLayer> SAGEConvImpl::lower(const IntegerLowering& lowering) const {
  return std::make_shared<SageIntegerLayer>(lowering, *this);
}

REGISTER_LAYER_TYPE(sage_spec());

}  // namespace qgnn
