#include "qgnn/nn/int_model.h"

#include <ATen/ATen.h>

#include <chrono>
#include <cmath>

#include "qgnn/nn/layers.h"
#include "qgnn/quant/int8_ops.h"
#include "qgnn/util/timing.h"

namespace qgnn {

struct IntegerModel::Layer {
  bool last = false;
  int64_t out = 0;  // output channels of the layer
  float s_in = 1;   // input codes' scale
  float s_lin = 1, s_agg = 1, s_hid = 1;
  float s_next = 1;      // next layer's input scale (unused for the last layer)
  Int8Linear w1;         // GCN W, SAGE [W_l; W_r], GIN W1
  at::Tensor col1;       // [O1, 2] fixed-point s_in s_w[o] / s_lin
  at::Tensor bias_glue;  // [out] int32: 2^8 b / s_agg (GCN, SAGE; GIN: b1)
  at::Tensor glue_mult;  // [1, 2]: s_agg / (2^8 s_next) (GIN: s_agg / (2^8 s_hid))
  at::Tensor bias;       // [out] float32 (last layer's logits), or undefined
  at::Tensor s_w1;       // [O1] float32
  // GIN
  float eps = 0;
  Int8Linear w2;
  at::Tensor s_w2;        // [out] float32
  at::Tensor col2;        // [out, 2]: s_hid s_w2[o] / s_next
  at::Tensor bias2_acc;   // [out] int32: b2 / (s_hid s_w2[o])
  at::Tensor bias2;       // [out] float32
  int w2_code_scale = 1;  // W2's stored codes are the weight codes times this
};

struct IntegerModel::RowPlan {
  // The graph (GraphOperators::id()) and input row scales the plan was made for; the
  // scales are held so that is_same() can never match a later tensor that reuses their
  // memory.
  uint64_t graph_id = 0;
  at::Tensor row_scale;              // x.row_scale (may be undefined)
  std::vector<at::Tensor> lin_rows;  // [N, 2] per layer, or undefined (no row factor)
  std::vector<at::Tensor> agg_rows;  // [N, 2] per layer (GCN, SAGE), or undefined
  at::Tensor in_deg;                 // [N] int64
  at::Tensor sage_deg;               // [N, 1] int32, max(in-degree, 1)
  int gin_shift = 16;                // GIN's 2^k self-term precision
};

struct IntegerModel::PlanCache {
  std::mutex mu;
  std::shared_ptr<const RowPlan> plan;
};

namespace {

// Bias precision of the glue requantizations: 2^-16 of a code. With 2^-8, GIN INT4 on
// Cora disagreed with its fake-quantized model on 0.3-0.4% of nodes (values near a
// rounding boundary moved across it); the int8 codes shifted by 16 bits still fit int32.
constexpr int kGlueShift = 16;

QuantRange range_for(int bits, bool relu) {
  return bits == 4 ? QuantRange::int4(relu) : QuantRange::int8(relu);
}

// Integer codes of a weight per output channel, by the quantizer QatHook fake-quantized
// it with, and their scales.
struct WeightCodes {
  at::Tensor codes;  // int8 [out, in]
  at::Tensor scale;  // float32 [out]
};
WeightCodes weight_codes(const QatHook& hook, int64_t layer, const at::Tensor& w) {
  const Quantizer q = hook.quantizer({layer, QuantRole::kWeight});
  const at::Tensor scale = q.weight_scale(w);
  return {q.codes(w, scale).to(at::kChar), scale};
}

at::Tensor multipliers(const at::Tensor& real) {
  return fixed_point_multipliers(real.to(at::kDouble).reshape({-1}));
}

at::Tensor scalar_multiplier(double m) { return multipliers(at::full({1}, m, at::kDouble)); }

// Integer glue between the fused kernels (bias, ReLU, GIN's self term, SAGE's root term):
// requantize_rows() of acc (int32 or int8 [N, F]) with the given terms.
at::Tensor glue(const at::Tensor& acc, int pre_shift, const at::Tensor& self, int32_t self_weight,
                const at::Tensor& bias, const at::Tensor& mult, const QuantRange& r) {
  RowRequant rq;
  rq.pre_shift = pre_shift;
  rq.self = self;
  rq.self_weight = self_weight;
  rq.bias = bias;
  rq.row_multiplier = mult;
  rq.out = r;
  return requantize_rows(acc, rq);
}

// Activation codes as stored between kernels: int8, or INT4 packed.
at::Tensor linear_s32(const at::Tensor& x, const Int8Linear& w, int bits) {
  return bits == 4 ? int4_linear_s32(x, w) : int8_linear_s32(x, w);
}

at::Tensor linear_rq(const at::Tensor& x, const Int8Linear& w, int bits, const LinearRequant& rq) {
  return bits == 4 ? int4_linear(x, w, rq) : int8_linear(x, w, rq);
}

at::Tensor spmm_s32(const CsrGraph& g, const at::Tensor& x, int64_t f, int bits) {
  return bits == 4 ? int4_spmm_s32(g, x, f) : int8_spmm_s32(g, x);
}

at::Tensor spmm_rq(const CsrGraph& g, const at::Tensor& x, int64_t f, int bits,
                   const SpmmRequant& rq) {
  return bits == 4 ? int4_spmm(g, x, f, rq) : int8_spmm(g, x, rq);
}

int uniform_bits(const QatHook& hook, const GnnModel& model) {
  const ModelConfig& c = model.config();
  int bits = -1;
  auto check = [&](int64_t layer, QuantRole role) {
    const int b = hook.bits(layer, role);
    TORCH_CHECK(b == 8 || b == 4, "IntegerModel: point layer", layer, ".", to_string(role), " has ",
                b, " bits; integer inference needs 8 or 4");
    TORCH_CHECK(bits < 0 || bits == b, "IntegerModel: mixed bits (", bits, " and ", b,
                "); integer inference needs one width for every point");
    bits = b;
  };
  for (int64_t l = 0; l < c.num_layers; ++l) {
    check(l, QuantRole::kEmbedding);
    check(l, QuantRole::kWeight);
    check(l, QuantRole::kLinear);
    check(l, QuantRole::kAggregate);
    if (c.kind == ModelKind::kGIN) check(l, QuantRole::kHidden);
  }
  return bits;
}

}  // namespace

int64_t QuantizedInput::nbytes() const {
  return codes.nbytes() + (row_scale.defined() ? row_scale.nbytes() : 0);
}

IntegerModel IntegerModel::convert(GnnModel& model, const QatHook& hook) {
  const ModelConfig& c = model.config();
  TORCH_CHECK(c.kind == ModelKind::kGCN || c.kind == ModelKind::kSAGE || c.kind == ModelKind::kGIN,
              "IntegerModel: integer kernels cover GCN, SAGE and GIN, not ", to_string(c.kind),
              " (its attention stays fake-quantized)");
  at::NoGradGuard no_grad;
  IntegerModel m;
  m.cache_ = std::make_shared<PlanCache>();
  m.kind_ = c.kind;
  m.bits_ = uniform_bits(hook, model);
  m.row_normalize_ = c.row_normalize_input;
  m.input_scale_ = hook.scale(0, QuantRole::kEmbedding);
  m.codes_ = std::make_shared<const Quantizer>(hook.quantizer({0, QuantRole::kEmbedding}));
  const int bits = m.bits_;
  const auto params = model.named_parameters();
  auto param = [&](int64_t l, const std::string& name) {
    const std::string key = "conv" + std::to_string(l) + "." + name;
    TORCH_CHECK(params.contains(key), "IntegerModel: model has no parameter ", key);
    return params[key].detach();
  };
  for (int64_t l = 0; l < c.num_layers; ++l) {
    auto L = std::make_shared<Layer>();
    L->last = l + 1 == c.num_layers;
    L->s_in = hook.scale(l, QuantRole::kEmbedding);
    L->s_lin = hook.scale(l, QuantRole::kLinear);
    L->s_agg = hook.scale(l, QuantRole::kAggregate);
    L->s_next = L->last ? 1.0f : hook.scale(l + 1, QuantRole::kEmbedding);
    at::Tensor w1, b;
    switch (c.kind) {
      case ModelKind::kGCN:
        w1 = param(l, "weight");
        b = param(l, "bias");
        break;
      case ModelKind::kSAGE:
        w1 = at::cat({param(l, "weight_neighbors"), param(l, "weight_root")}, 0);
        b = param(l, "bias");
        break;
      case ModelKind::kGIN:
        w1 = param(l, "weight1");
        b = param(l, "bias1");
        L->eps = param(l, "eps").item<float>();
        L->s_hid = hook.scale(l, QuantRole::kHidden);
        break;
      default:
        TORCH_INTERNAL_ASSERT(false);
    }
    L->out = c.kind == ModelKind::kSAGE ? w1.size(0) / 2 : w1.size(0);
    const WeightCodes q1 = weight_codes(hook, l, w1);
    L->s_w1 = q1.scale;
    L->w1 = pack_int8_linear(q1.codes);
    L->col1 = multipliers(L->s_w1.to(at::kDouble) * (double(L->s_in) / L->s_lin));
    const double glue_to = c.kind == ModelKind::kGIN ? L->s_hid : L->s_next;
    const at::Tensor bias_codes = b.to(at::kDouble) / double(L->s_agg);
    TORCH_CHECK(bias_codes.abs().max().item<double>() < 16384, "IntegerModel: layer ", l,
                "'s bias is over 16384 codes of its aggregate scale");
    L->bias_glue = at::round(bias_codes * double(1 << kGlueShift)).to(at::kInt);
    L->glue_mult = scalar_multiplier(L->s_agg / (double(1 << kGlueShift) * glue_to));
    L->bias = b.to(at::kFloat).contiguous();
    if (c.kind == ModelKind::kGIN) {
      const at::Tensor w2 = param(l, "weight2");
      L->bias2 = param(l, "bias2").to(at::kFloat).contiguous();
      const WeightCodes q2 = weight_codes(hook, l, w2);
      L->s_w2 = q2.scale;
      // The bias b2 is folded into the accumulator, whose unit s_hid s_w2[o] is coarse at
      // 4 bits (a rounding error of up to 1/2 unit moved values across rounding
      // boundaries: GIN INT4 disagreed with its fake-quantized model on 0.3-0.4% of
      // nodes). INT4 weight codes (|q| <= 7) are therefore stored times 16, still int8,
      // which makes the unit, and the bias, 16x finer; the arithmetic stays exact.
      L->w2_code_scale = bits == 4 ? 16 : 1;
      L->w2 = pack_int8_linear(q2.codes * L->w2_code_scale);
      const at::Tensor acc_unit = L->s_w2.to(at::kDouble) * (double(L->s_hid) / L->w2_code_scale);
      L->bias2_acc = at::round(L->bias2.to(at::kDouble) / acc_unit).to(at::kInt);
      L->col2 = multipliers(acc_unit / double(L->s_next));
      L->out = w2.size(0);
    }
    m.layers_.push_back(L);
  }
  return m;
}

QuantizedInput IntegerModel::quantize_input(const NodeFeatures& x) const {
  at::NoGradGuard no_grad;
  const at::Tensor dense = x.to_dense();
  // The input point's quantizer (QatHook's symmetric codes at the observed scale).
  const at::Tensor codes =
      symmetric_codes(dense, at::scalar_tensor(input_scale_, at::kFloat), bits_).to(at::kChar);
  QuantizedInput q;
  q.num_features = dense.size(1);
  q.codes = codes_->store_codes(codes);
  if (row_normalize_) {
    const at::Tensor sums = codes.sum(1, /*keepdim=*/false, at::kDouble) * double(input_scale_);
    q.row_scale = at::where(sums == 0, at::zeros_like(sums), sums.reciprocal()).to(at::kFloat);
  }
  return q;
}

at::Tensor IntegerModel::forward(const GraphOperators& ops, const QuantizedInput& x,
                                 IntegerTiming* timing) const {
  at::NoGradGuard no_grad;
  IntegerTiming t;
  const int bits = bits_;
  const int64_t n = ops.num_nodes();
  TORCH_CHECK(x.codes.size(0) == n, "IntegerModel::forward: input has ", x.codes.size(0),
              " rows, graph has ", n, " nodes");
  const CsrGraph& a = ops.graph();
  TORCH_CHECK(!a.has_weights(), "IntegerModel::forward: weighted graphs are not supported");
  const std::shared_ptr<const RowPlan> plan = plan_for(ops, x);
  const auto store = [&](const at::Tensor& codes) { return codes_->store_codes(codes); };
  at::Tensor h = x.codes;  // current layer input: int8 codes or INT4 packed
  int64_t f = x.num_features;
  at::Tensor logits;
  for (size_t l = 0; l < layers_.size(); ++l) {
    const Layer& L = *layers_[l];
    auto t0 = Clock::now();
    LinearRequant rq;
    rq.col_multiplier = L.col1;
    rq.out = range_for(bits, false);
    at::Tensor agg;  // q_agg codes, int8 [N, out]
    rq.row_multiplier = plan->lin_rows[l];
    if (kind_ == ModelKind::kGCN) {
      const at::Tensor lin = store(linear_rq(h, L.w1, bits, rq));
      t.linear_ms += ms_since(t0);
      t0 = Clock::now();
      SpmmRequant srq;
      srq.row_multiplier = plan->agg_rows[l];
      srq.out = range_for(bits, false);
      agg = spmm_rq(ops.self_loops(), lin, L.out, bits, srq);
      t.aggregate_ms += ms_since(t0);
    } else {
      const at::Tensor lin = linear_rq(h, L.w1, bits, rq);  // int8 [N, O1]
      t.linear_ms += ms_since(t0);
      t0 = Clock::now();
      if (kind_ == ModelKind::kSAGE) {
        const at::Tensor left = store(lin.narrow(1, 0, L.out).contiguous());
        const at::Tensor root = lin.narrow(1, L.out, L.out).contiguous();
        const at::Tensor s = spmm_s32(a, left, L.out, bits);
        t.aggregate_ms += ms_since(t0);
        t0 = Clock::now();
        // sum_j lin_l,j + deg_i lin_r,i at scale s_lin / deg_i (deg 0: the root alone).
        const at::Tensor acc = s + root.to(at::kInt) * plan->sage_deg;
        agg = glue(acc, 0, {}, 0, {}, plan->agg_rows[l], range_for(bits, false));
        t.other_ms += ms_since(t0);
      } else {  // GIN: 2^k sum_j lin_j + round((1 + eps) 2^k) lin_i
        const at::Tensor s = spmm_s32(a, store(lin), lin.size(1), bits);
        t.aggregate_ms += ms_since(t0);
        t0 = Clock::now();
        const int k = plan->gin_shift;
        const int32_t c = static_cast<int32_t>(std::lround((1.0 + L.eps) * (1 << k)));
        agg = glue(s, k, lin, c, {}, scalar_multiplier(L.s_lin / (double(1 << k) * L.s_agg)),
                   range_for(bits, false));
        t.other_ms += ms_since(t0);
      }
    }
    t0 = Clock::now();
    if (kind_ == ModelKind::kGIN) {
      // hid = Q(relu(agg + b1)); then W2 with b2 folded in and the next input scale.
      const at::Tensor hid =
          glue(agg, kGlueShift, {}, 0, L.bias_glue, L.glue_mult, range_for(bits, true));
      t.other_ms += ms_since(t0);
      t0 = Clock::now();
      const at::Tensor hid_in = store(hid);
      if (L.last) {
        const at::Tensor acc = linear_s32(hid_in, L.w2, bits);
        t.linear_ms += ms_since(t0);
        t0 = Clock::now();
        logits = acc.to(at::kFloat) * (L.s_w2 * (L.s_hid / L.w2_code_scale)) + L.bias2;
        t.other_ms += ms_since(t0);
      } else {
        LinearRequant rq2;
        rq2.col_multiplier = L.col2;
        rq2.bias = L.bias2_acc;
        rq2.out = range_for(bits, true);
        h = store(linear_rq(hid_in, L.w2, bits, rq2));
        t.linear_ms += ms_since(t0);
      }
    } else if (L.last) {
      logits = agg.to(at::kFloat) * L.s_agg + L.bias;
      t.other_ms += ms_since(t0);
    } else {
      h = store(glue(agg, kGlueShift, {}, 0, L.bias_glue, L.glue_mult, range_for(bits, true)));
      t.other_ms += ms_since(t0);
    }
    f = L.out;
  }
  (void)f;
  if (timing != nullptr) *timing = t;
  return logits;
}

std::shared_ptr<const IntegerModel::RowPlan> IntegerModel::plan_for(const GraphOperators& ops,
                                                                    const QuantizedInput& x) const {
  std::lock_guard<std::mutex> lock(cache_->mu);
  if (cache_->plan && cache_->plan->graph_id == ops.id() &&
      (x.row_scale.defined() ? cache_->plan->row_scale.is_same(x.row_scale)
                             : !cache_->plan->row_scale.defined())) {
    return cache_->plan;
  }
  auto plan = std::make_shared<RowPlan>();
  plan->graph_id = ops.id();
  plan->row_scale = x.row_scale;
  const int64_t n = ops.num_nodes();
  const at::Tensor indptr = ops.graph().indptr();
  plan->in_deg = indptr.narrow(0, 1, n) - indptr.narrow(0, 0, n);
  // The input row normalization (rows summing to 0 are all-zero: any factor works, 1).
  at::Tensor in_rows;
  if (x.row_scale.defined()) {
    in_rows = at::where(x.row_scale > 0, x.row_scale, at::ones_like(x.row_scale)).to(at::kDouble);
  }
  const at::Tensor dinv = kind_ == ModelKind::kGCN ? ops.gcn_scale().to(at::kDouble) : at::Tensor();
  const at::Tensor deg = plan->in_deg.clamp_min(1);
  plan->sage_deg = deg.to(at::kInt).unsqueeze(1);
  const int64_t max_deg = n ? plan->in_deg.max().item<int64_t>() : 0;
  while (plan->gin_shift > 0 &&
         (int64_t{128} * (max_deg + 2)) << plan->gin_shift >= (int64_t{1} << 31)) {
    --plan->gin_shift;
  }
  for (size_t l = 0; l < layers_.size(); ++l) {
    const Layer& L = *layers_[l];
    at::Tensor lin = l == 0 ? in_rows : at::Tensor();
    at::Tensor agg;
    if (kind_ == ModelKind::kGCN) {
      lin = lin.defined() ? lin * dinv : dinv;
      agg = multipliers(dinv * (double(L.s_lin) / L.s_agg));
    } else if (kind_ == ModelKind::kSAGE) {
      agg = multipliers(double(L.s_lin) / (deg.to(at::kDouble) * double(L.s_agg)));
    }
    plan->lin_rows.push_back(lin.defined() ? multipliers(lin) : at::Tensor());
    plan->agg_rows.push_back(agg);
  }
  cache_->plan = plan;
  return plan;
}

int64_t IntegerModel::weight_bytes() const {
  int64_t b = 0;
  for (const auto& L : layers_) {
    b += L->w1.weight.nbytes();
    if (L->w2.defined()) b += L->w2.weight.nbytes();
  }
  return b;
}

}  // namespace qgnn
