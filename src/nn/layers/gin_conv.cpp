#include "qgnn/nn/layers/gin_conv.h"

#include <cmath>
#include <vector>

#include "nn/int_layer_util.h"
#include "nn/layer_util.h"

namespace qgnn {

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

// The registration: "gin", a stack of GINConv (MLP hidden = hidden_channels) with ReLU
// between layers (PyG's example settings: 2 x 64).
namespace {

LayerSpec gin_spec() {
  LayerSpec s;
  s.name = "gin";
  s.build = [](const ModelConfig& c) {
    return conv_stack(c, Activation::kReLU, [&c](int64_t, int64_t in, int64_t out) {
      return GINConv(in, c.hidden_channels, out).ptr();
    });
  };
  s.preset = [](Preset& p, const std::string&, DatasetFamily) { pyg_example_preset(p); };
  s.weight_elements = [](const ModelConfig& c, double limit) {
    const double hidden = static_cast<double>(c.hidden_channels);
    return stack_weight_elements(
        c, limit, [&](double in, double out, bool) { return in * hidden + hidden * out; });
  };
  return s;
}

// Integer lowering (nn/int_model.h):
//   q_lin = RQ(x_q W1_q^T; s_in s_w[o] r_j / s_lin)
//   q_agg = RQ(2^k sum_j q_lin_j + c q_lin_i; s_lin / (2^k s_agg)), c = round((1 + eps) 2^k)
//   q_hid = RQ(2^16 q_agg + b1'; s_agg / (2^16 s_hid), relu)
// and the second linear with b2 folded into its accumulator: the next input's codes
// (ReLU) or the logits.
using namespace intlayer;

struct GinIntegerPlan : IntegerPlan {
  at::Tensor lin_rows;  // [N, 2] input row factors (first layer), or undefined
  int shift = 16;       // k: the self term's precision, as int32 allows at the max degree
  at::Tensor agg_mult;  // [1, 2]: s_lin / (2^k s_agg)
};

class GinIntegerLayer : public IntegerLayer {
 public:
  GinIntegerLayer(const IntegerLowering& lo, const GINConvImpl& conv)
      : bits_(lo.bits), last_(lo.last) {
    const float s_in = lo.scale(QuantRole::kEmbedding);
    s_lin_ = lo.scale(QuantRole::kLinear);
    s_agg_ = lo.scale(QuantRole::kAggregate);
    s_hid_ = lo.scale(QuantRole::kHidden);
    const double s_next = lo.next_scale();
    eps_ = conv.eps.detach().item<float>();
    lin_ = quantize_linear(lo, conv.weight1.detach(), s_in, s_lin_);
    hidden_ = make_bias_glue(lo.layer, /*last=*/false, conv.bias1.detach(), s_agg_, s_hid_);
    const at::Tensor w2 = conv.weight2.detach();
    bias2_ = conv.bias2.detach().to(at::kFloat).contiguous();
    auto [codes2, scale2] = lo.weight_codes(w2);
    s_w2_ = scale2;
    // The bias b2 is folded into the accumulator, whose unit s_hid s_w2[o] is coarse at
    // 4 bits (a rounding error of up to 1/2 unit moved values across rounding
    // boundaries: GIN INT4 disagreed with its fake-quantized model on 0.3-0.4% of
    // nodes). INT4 weight codes (|q| <= 7) are therefore stored times 16, still int8,
    // which makes the unit, and the bias, 16x finer; the arithmetic stays exact.
    w2_code_scale_ = bits_ == 4 ? 16 : 1;
    w2_ = pack_int8_linear(codes2 * w2_code_scale_);
    const at::Tensor acc_unit = s_w2_.to(at::kDouble) * (double(s_hid_) / w2_code_scale_);
    bias2_acc_ = at::round(bias2_.to(at::kDouble) / acc_unit).to(at::kInt);
    col2_ = multipliers(acc_unit / s_next);
  }

  std::shared_ptr<const IntegerPlan> plan(const GraphOperators& ops,
                                          const at::Tensor& input_rows) const override {
    auto p = std::make_shared<GinIntegerPlan>();
    if (input_rows.defined()) p->lin_rows = multipliers(input_rows);
    const at::Tensor deg = ops.graph().in_degree();
    const int64_t max_deg = deg.numel() ? deg.max().item<int64_t>() : 0;
    while (p->shift > 0 && (int64_t{128} * (max_deg + 2)) << p->shift >= (int64_t{1} << 31)) {
      --p->shift;
    }
    p->agg_mult = scalar_multiplier(s_lin_ / (double(1 << p->shift) * s_agg_));
    return p;
  }

  at::Tensor forward(const GraphOperators& ops, const IntegerPlan& plan, const at::Tensor& x,
                     const Quantizer& codes, IntegerTiming& t) const override {
    const auto& p = static_cast<const GinIntegerPlan&>(plan);
    const at::Tensor lin = run_linear(lin_, x, p.lin_rows, bits_, t);  // int8 [N, hidden]
    auto t0 = Clock::now();
    const at::Tensor s = spmm_s32(ops.graph(), codes.store_codes(lin), lin.size(1), bits_);
    t.aggregate_ms += ms_since(t0);
    t0 = Clock::now();
    // 2^k sum_j lin_j + round((1 + eps) 2^k) lin_i
    const int32_t c = static_cast<int32_t>(std::lround((1.0 + eps_) * (1 << p.shift)));
    const at::Tensor agg = glue(s, p.shift, lin, c, {}, p.agg_mult, range_for(bits_, false));
    // hid = Q(relu(agg + b1)); then W2 with b2 folded in and the next input scale.
    const at::Tensor hid = apply_bias_relu(hidden_, agg, bits_);
    t.other_ms += ms_since(t0);
    t0 = Clock::now();
    const at::Tensor hid_in = codes.store_codes(hid);
    if (last_) {
      const at::Tensor acc = linear_s32(hid_in, w2_, bits_);
      t.linear_ms += ms_since(t0);
      t0 = Clock::now();
      at::Tensor logits = acc.to(at::kFloat) * (s_w2_ * (s_hid_ / w2_code_scale_)) + bias2_;
      t.other_ms += ms_since(t0);
      return logits;
    }
    LinearRequant rq2;
    rq2.col_multiplier = col2_;
    rq2.bias = bias2_acc_;
    rq2.out = range_for(bits_, true);
    at::Tensor next = codes.store_codes(linear_rq(hid_in, w2_, bits_, rq2));
    t.linear_ms += ms_since(t0);
    return next;
  }

  int64_t weight_bytes() const override { return lin_.bytes() + w2_.weight.nbytes(); }

 private:
  int bits_;
  bool last_;
  float s_lin_ = 1, s_agg_ = 1, s_hid_ = 1, eps_ = 0;
  QuantizedLinear lin_;
  BiasGlue hidden_;  // agg + b1, ReLU, at s_hid
  Int8Linear w2_;
  at::Tensor s_w2_;        // [out] float32
  at::Tensor col2_;        // [out, 2]: s_hid s_w2[o] / s_next
  at::Tensor bias2_acc_;   // [out] int32: b2 / (s_hid s_w2[o])
  at::Tensor bias2_;       // [out] float32
  int w2_code_scale_ = 1;  // W2's stored codes are the weight codes times this
};

}  // namespace

std::shared_ptr<const IntegerLayer> GINConvImpl::lower(const IntegerLowering& lowering) const {
  return std::make_shared<GinIntegerLayer>(lowering, *this);
}

REGISTER_LAYER_TYPE(gin_spec());

}  // namespace qgnn
