#include "qgnn/quant/qat.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "qgnn/ops/graph_operators.h"

namespace qgnn {

ObserverKind parse_observer(const std::string& s) {
  if (s == "momentum") return ObserverKind::kMomentum;
  if (s == "percentile") return ObserverKind::kPercentile;
  TORCH_CHECK(false, "observer: expected momentum or percentile, got '", s, "'");
}

QatConfig QatConfig::preset(const std::string& precision) {
  QatConfig c;
  if (precision == "int8") {
    c.policy = BitPolicy::parse("bits=8");
  } else if (precision == "int4") {
    c.policy = BitPolicy::parse("bits=4;att=8");
  } else {
    TORCH_CHECK(false, "qat precision: expected int8 or int4, got '", precision, "'");
  }
  return c;
}

std::string QatConfig::to_json() const {
  nlohmann::json j = {{"policy", policy.to_string()},
                      {"observer", to_string(observer)},
                      {"momentum", momentum},
                      {"percentile", percentile},
                      {"sample_size", sample_size},
                      {"degree_quant", degree_quant},
                      {"p_min", p_min},
                      {"p_max", p_max}};
  return j.dump();
}

QatConfig QatConfig::from_json(const std::string& text) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    TORCH_CHECK(false, "QAT config: not JSON (", e.what(), ")");
  }
  QatConfig c;
  auto field = [&](const char* name) -> const nlohmann::json& {
    TORCH_CHECK(j.is_object() && j.contains(name), "QAT config: missing field '", name, "'");
    return j.at(name);
  };
  try {
    c.policy = BitPolicy::parse(field("policy").get<std::string>());
    c.observer = parse_observer(field("observer").get<std::string>());
    c.momentum = field("momentum").get<double>();
    c.percentile = field("percentile").get<double>();
    c.sample_size = field("sample_size").get<int64_t>();
    c.degree_quant = field("degree_quant").get<bool>();
    c.p_min = field("p_min").get<double>();
    c.p_max = field("p_max").get<double>();
  } catch (const nlohmann::json::exception& e) {
    TORCH_CHECK(false, "QAT config: bad field type (", e.what(), ")");
  }
  return c;
}

at::Tensor protective_mask_probabilities(const at::Tensor& in_degree, double p_min, double p_max,
                                         const at::Tensor& population) {
  TORCH_CHECK(0 <= p_min && p_min <= p_max && p_max <= 1,
              "protective_mask_probabilities: need 0 <= p_min <= p_max <= 1, got p_min = ", p_min,
              ", p_max = ", p_max);
  TORCH_CHECK(in_degree.dim() == 1 && in_degree.scalar_type() == at::kLong,
              "protective_mask_probabilities: in_degree must be [N] int64");
  TORCH_CHECK(
      !population.defined() || (population.dim() == 1 && population.scalar_type() == at::kLong),
      "protective_mask_probabilities: population must be [M] int64");
  const int64_t n = in_degree.numel();
  if (n == 0) return at::empty({0}, at::kFloat);
  const at::Tensor& pop = population.defined() ? population : in_degree;
  const int64_t bins = in_degree.max().item<int64_t>() + 1;
  const at::Tensor cdf = at::bincount(pop, {}, bins).cumsum(0).to(at::kDouble) /
                         static_cast<double>(std::max<int64_t>(1, pop.numel()));
  return (p_min + (p_max - p_min) * cdf.index_select(0, in_degree)).to(at::kFloat);
}

namespace {

// What QatHook accepts (its constructor and load_state).
void check_config(const QatConfig& config) {
  TORCH_CHECK(config.momentum > 0 && config.momentum <= 1,
              "QatHook: momentum must be in (0, 1], got ", config.momentum);
  TORCH_CHECK(0 <= config.p_min && config.p_min <= config.p_max && config.p_max <= 1,
              "QatHook: need 0 <= p_min <= p_max <= 1, got ", config.p_min, ", ", config.p_max);
  TORCH_CHECK(config.observer != RangeRule::kMinMax,
              "QatHook: observer must be momentum or percentile, got minmax");
  // Every spec the policy resolves to must be one the integer kernels compute: symmetric
  // codes over one range per tensor (activations) or per output channel (weights), and
  // attention on its fixed [0, 1] grid; SGQuant's storage options have no integer form.
  const std::string policy = config.policy.to_string();
  for (const QuantPoint& p : config.policy.distinct_points()) {
    // QAT has no boundary or history points (bits=8 names them too; nothing asks).
    if (p.role == QuantRole::kBoundary || p.role == QuantRole::kHistory) continue;
    const QuantSpec s = config.policy.spec(p, QuantTarget::kInteger);
    if (!s.quantized()) continue;
    const std::string where = "QatHook: policy '" + policy + "' at " +
                              (p.layer >= 0 ? "layer" + std::to_string(p.layer) + "." : "") +
                              to_string(p.role) + ": ";
    TORCH_CHECK(s.scheme != QuantScheme::kHalf, where,
                "half precision has no integer form (use 2..8 bits or 32)");
    TORCH_CHECK(!s.buckets && s.rounding == Rounding::kNearest && !s.column_scales &&
                    (s.layout == LayoutRule::kBitmap || s.layout == LayoutRule::kNibble),
                where,
                "taq, round, cols and layouts other than bitmap / nibble are SGQuant storage "
                "options; QAT has one symmetric width per point");
    // The int4 kernels read activations as nibbles, the int8 kernels as bytes (weights
    // live in int8 lanes of the linear kernels whatever their width).
    const LayoutRule stored = s.bits == 4 ? LayoutRule::kNibble : LayoutRule::kBitmap;
    TORCH_CHECK(
        p.role == QuantRole::kAttention || p.role == QuantRole::kWeight || s.layout == stored,
        where, s.bits, "-bit integer codes are stored in layout ", to_string(stored), ", got ",
        to_string(s.layout));
    if (p.role == QuantRole::kAttention) {
      TORCH_CHECK(s.granularity == Granularity::kTensor && !config.policy.range(p), where,
                  "attention is quantized on its fixed [0, 1] grid");
      continue;
    }
    TORCH_CHECK(s.scheme == QuantScheme::kSymmetric, where,
                "the integer kernels compute symmetric codes, not ", to_string(s.scheme));
    const Granularity want =
        p.role == QuantRole::kWeight ? Granularity::kRow : Granularity::kTensor;
    TORCH_CHECK(s.granularity == want, where, "granularity must be ", to_string(want), ", got ",
                to_string(s.granularity));
    TORCH_CHECK(p.role != QuantRole::kWeight || s.range == RangeRule::kMinMax, where,
                "weights take their own extremes per output channel (range minmax), got ",
                to_string(s.range));
  }
}

}  // namespace

QatHook::QatHook(QatConfig config) : config_(std::move(config)) { check_config(config_); }

void QatHook::begin_forward(const GraphOperators& ops, bool training) {
  training_ = training;
  mask_ = at::Tensor();
  if (!training || !config_.degree_quant) return;
  if (prob_key_ != ops.id() || prob_.numel() != ops.num_nodes()) {
    prob_ = protective_mask_probabilities(ops.in_degree(), config_.p_min, config_.p_max,
                                          ops.degree_population());
    prob_key_ = ops.id();
  }
  mask_ = at::rand({ops.num_nodes()}) < prob_;
}

Quantizer QatHook::quantizer(const QuantPoint& p) const {
  return config_.policy.quantizer(p, QuantTarget::kInteger);
}

RangeObserver QatHook::observer(const QuantPoint& p) const {
  RangeObserver o;
  o.rule = config_.policy.range(p).value_or(config_.observer);
  // minmax: each training batch's own extremes (no running average).
  o.momentum = o.rule == RangeRule::kMinMax ? 1.0 : config_.momentum;
  o.percentile = config_.percentile;
  o.sample_size = config_.sample_size;
  return o;
}

float QatHook::scale(int64_t layer, QuantRole role) const {
  const QuantPoint p{layer, role};
  auto it = ranges_.find(p);
  TORCH_CHECK(it != ranges_.end() && it->second.updates > 0, "QatHook: point layer", layer, ".",
              to_string(role), " was never observed (train the model first)");
  return quantizer(p).scale(it->second.lo, it->second.hi);
}

at::Tensor QatHook::quantize_nodes(const QuantPoint& p, const at::Tensor& h) {
  const Quantizer q = quantizer(p);
  if (!q.spec().quantized()) return h;
  ObservedRange r;
  if (training_) {
    r = observer(p).update(ranges_[p], h);
  } else if (auto it = ranges_.find(p); it != ranges_.end() && it->second.updates > 0) {
    r = it->second;
  } else {
    // Evaluation before training: this tensor's own range, not stored.
    observer(p).update(r, h);
  }
  at::Tensor out = q.fake_quantize(h, at::scalar_tensor(q.scale(r.lo, r.hi), at::kFloat));
  if (mask_.defined() && h.dim() >= 1 && h.size(0) == mask_.size(0)) {
    std::vector<int64_t> shape(h.dim(), 1);
    shape[0] = h.size(0);
    out = at::where(mask_.view(shape), h, out);  // protected nodes stay at full precision
  }
  return out;
}

NodeFeatures QatHook::embedding(int64_t layer, const NodeFeatures& h, const GraphOperators&) {
  TORCH_CHECK(!h.is_packed(), "QatHook: packed features cannot be quantization-aware trained");
  const QuantPoint p{layer, QuantRole::kEmbedding};
  if (!h.is_sparse()) return NodeFeatures(quantize_nodes(p, h.dense()));
  // Sparse input: symmetric quantization keeps zeros at zero, so only the stored values
  // are quantized (the observed range includes the implicit zeros).
  const CsrGraph& s = h.sparse();
  if (!quantizer(p).spec().quantized()) return h;
  at::Tensor values = s.has_weights() ? s.weights() : at::ones({s.num_edges()}, at::kFloat);
  at::Tensor with_zero = at::cat({values.reshape({-1}), at::zeros({1}, at::kFloat)});
  // Quantize [values, 0] so the range sees the zeros, then drop the appended zero; the
  // node mask applies per stored value through its row.
  at::Tensor saved_mask = mask_;
  if (mask_.defined()) {
    mask_ = at::cat({mask_.index_select(0, s.row_ids()), at::zeros({1}, at::kBool)});
  }
  at::Tensor q = quantize_nodes(p, with_zero).narrow(0, 0, values.numel());
  mask_ = saved_mask;
  return NodeFeatures(s.with_weights(q.contiguous()));
}

at::Tensor QatHook::attention(int64_t layer, const at::Tensor& alpha, const CsrGraph& g) {
  // Affine codes on the fixed range [0, 1] that attention coefficients lie in (the
  // constructor has checked the spec), round half to even as every affine code.
  const QuantSpec s = quantizer({layer, QuantRole::kAttention}).spec();
  if (!s.quantized()) return alpha;
  const double levels = (1 << s.bits) - 1;
  at::Tensor q;
  {
    at::NoGradGuard no_grad;
    q = at::round(at::clamp(alpha.detach(), 0.0, 1.0) * levels) / levels;
  }
  if (alpha.requires_grad()) q = q + (alpha - alpha.detach());  // straight-through
  if (mask_.defined()) {
    at::Tensor m = mask_.index_select(0, g.row_ids());  // an edge belongs to its target
    if (alpha.dim() == 2) m = m.unsqueeze(1);
    q = at::where(m, alpha, q);
  }
  return q;
}

at::Tensor QatHook::weight(int64_t layer, int64_t, const at::Tensor& w) {
  const Quantizer q = quantizer({layer, QuantRole::kWeight});
  if (!q.spec().quantized()) return w;
  return q.fake_quantize(w, q.weight_scale(w));
}

at::Tensor QatHook::activation(int64_t layer, QuantRole role, const at::Tensor& h) {
  return quantize_nodes({layer, role}, h);
}

std::string QatHook::save_state() const {
  nlohmann::json ranges = nlohmann::json::array();
  for (const auto& [key, r] : ranges_) {
    ranges.push_back({{"layer", key.layer},
                      {"role", to_string(key.role)},
                      {"lo", r.lo},
                      {"hi", r.hi},
                      {"updates", r.updates}});
  }
  return nlohmann::json{{"config", nlohmann::json::parse(config_.to_json())}, {"ranges", ranges}}
      .dump();
}

void QatHook::load_state(const std::string& state) {
  if (state.empty()) {
    ranges_.clear();
    return;
  }
  try {
    const nlohmann::json j = nlohmann::json::parse(state);
    std::map<QuantPoint, ObservedRange> ranges;
    for (const auto& r : j.at("ranges")) {
      ObservedRange o;
      o.lo = r.at("lo").get<float>();
      o.hi = r.at("hi").get<float>();
      o.updates = r.at("updates").get<int64_t>();
      ranges[QuantPoint{r.at("layer").get<int64_t>(),
                        parse_quant_role(r.at("role").get<std::string>())}] = o;
    }
    if (j.contains("config")) {
      QatConfig c = QatConfig::from_json(j.at("config").dump());
      check_config(c);
      config_ = std::move(c);
    }
    ranges_ = std::move(ranges);
  } catch (const nlohmann::json::exception& e) {
    TORCH_CHECK(false, "QatHook::load_state: malformed state (", e.what(), ")");
  }
}

}  // namespace qgnn
