#include "qgnn/nn/int_model.h"

#include <ATen/ATen.h>

#include "qgnn/nn/layer.h"

namespace qgnn {

struct IntegerModel::RowPlan {
  // The graph (GraphOperators::id()) and input row scales the plans were made for; the
  // scales are held so that is_same() can never match a later tensor that reuses their
  // memory.
  uint64_t graph_id = 0;
  at::Tensor row_scale;  // x.row_scale (may be undefined)
  std::vector<std::shared_ptr<const IntegerPlan>> layers;
};

struct IntegerModel::PlanCache {
  std::mutex mu;
  std::shared_ptr<const RowPlan> plan;
};

namespace {

int checked_bits(const QatHook& hook, int64_t layer, QuantRole role, int model_bits) {
  const int b = hook.bits(layer, role);
  TORCH_CHECK(b == 8 || b == 4, "IntegerModel: point layer", layer, ".", to_string(role), " has ",
              b, " bits; integer inference needs 8 or 4");
  TORCH_CHECK(model_bits <= 0 || b == model_bits, "IntegerModel: mixed bits (", model_bits, " and ",
              b, "); integer inference needs one width for every point");
  return b;
}

}  // namespace

float IntegerLowering::scale(QuantRole role) const {
  checked_bits(hook, layer, role, bits);
  return hook.scale(layer, role);
}

float IntegerLowering::next_scale() const {
  if (last) return 1.0f;
  checked_bits(hook, layer + 1, QuantRole::kEmbedding, bits);
  return hook.scale(layer + 1, QuantRole::kEmbedding);
}

std::pair<at::Tensor, at::Tensor> IntegerLowering::weight_codes(const at::Tensor& w) const {
  checked_bits(hook, layer, QuantRole::kWeight, bits);
  const Quantizer q = hook.quantizer({layer, QuantRole::kWeight});
  const at::Tensor scale = q.weight_scale(w);
  return {q.codes(w, scale).to(at::kChar), scale};
}

int64_t QuantizedInput::nbytes() const {
  return codes.nbytes() + (row_scale.defined() ? row_scale.nbytes() : 0);
}

IntegerModel IntegerModel::convert(GnnModel& model, const QatHook& hook) {
  at::NoGradGuard no_grad;
  IntegerModel m;
  m.cache_ = std::make_shared<PlanCache>();
  m.bits_ = checked_bits(hook, 0, QuantRole::kEmbedding, 0);
  m.row_normalize_ = model.config().row_normalize_input;
  m.input_scale_ = hook.scale(0, QuantRole::kEmbedding);
  m.codes_ = std::make_shared<const Quantizer>(hook.quantizer({0, QuantRole::kEmbedding}));
  const auto& stack = model.layers();
  for (size_t l = 0; l < stack.size(); ++l) {
    const IntegerLowering lowering{hook, static_cast<int64_t>(l), l + 1 == stack.size(), m.bits_};
    m.layers_.push_back(stack[l].layer->lower(lowering));
    TORCH_CHECK(m.layers_.back(), "IntegerModel: ", stack[l].layer->layer_name(),
                "::lower returned no layer");
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
  const int64_t n = ops.num_nodes();
  TORCH_CHECK(x.codes.size(0) == n, "IntegerModel::forward: input has ", x.codes.size(0),
              " rows, graph has ", n, " nodes");
  TORCH_CHECK(!ops.graph().has_weights(),
              "IntegerModel::forward: weighted graphs are not supported");
  const std::shared_ptr<const RowPlan> plan = plan_for(ops, x);
  IntegerTiming t;
  at::Tensor h = x.codes;  // the current layer's input codes; the logits after the last
  for (size_t l = 0; l < layers_.size(); ++l) {
    h = layers_[l]->forward(ops, *plan->layers[l], h, *codes_, t);
  }
  if (timing != nullptr) *timing = t;
  return h;
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
  // The input row normalization (rows summing to 0 are all-zero: any factor works, 1).
  at::Tensor in_rows;
  if (x.row_scale.defined()) {
    in_rows = at::where(x.row_scale > 0, x.row_scale, at::ones_like(x.row_scale)).to(at::kDouble);
  }
  for (size_t l = 0; l < layers_.size(); ++l) {
    plan->layers.push_back(layers_[l]->plan(ops, l == 0 ? in_rows : at::Tensor()));
    TORCH_CHECK(plan->layers.back(), "IntegerModel: layer ", l, " made no plan");
  }
  cache_->plan = plan;
  return plan;
}

int64_t IntegerModel::weight_bytes() const {
  int64_t b = 0;
  for (const auto& L : layers_) b += L->weight_bytes();
  return b;
}

}  // namespace qgnn
