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

std::string to_string(ObserverKind k) {
  return k == ObserverKind::kMomentum ? "momentum" : "percentile";
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

namespace {

void check_bits(int bits, const char* what) {
  TORCH_CHECK(bits >= 2 && bits <= 8, what, ": symmetric quantization needs 2..8 bits, got ", bits);
}

// Straight-through estimator: the value of q, the gradient of x where `inside`.
at::Tensor straight_through(const at::Tensor& x, const at::Tensor& q, const at::Tensor& inside) {
  if (!x.requires_grad()) return q;
  return q + (x - x.detach()) * inside;
}

}  // namespace

at::Tensor fake_quantize_symmetric(const at::Tensor& x, const at::Tensor& scale, int bits) {
  check_bits(bits, "fake_quantize_symmetric");
  TORCH_CHECK(x.scalar_type() == at::kFloat, "fake_quantize_symmetric: x must be float32");
  TORCH_CHECK(scale.dim() == 0 || (scale.dim() == 1 && x.dim() >= 1 && scale.size(0) == x.size(0)),
              "fake_quantize_symmetric: scale must be a scalar or [x.size(0)], got ", scale.sizes(),
              " for x ", x.sizes());
  const double qmax = symmetric_qmax(bits);
  at::Tensor s = scale.to(at::kFloat);
  if (s.dim() == 1) {
    std::vector<int64_t> shape(x.dim(), 1);
    shape[0] = x.size(0);
    s = s.view(shape);
  }
  at::Tensor q, inside;
  {
    at::NoGradGuard no_grad;
    const at::Tensor v = x.detach() / s;
    q = at::clamp(at::round(v), -qmax, qmax) * s;
    if (x.requires_grad()) inside = (v.abs() <= qmax + 0.5).to(at::kFloat);
  }
  return straight_through(x, q, inside);
}

at::Tensor weight_scale(const at::Tensor& w, int bits) {
  check_bits(bits, "weight_scale");
  TORCH_CHECK(w.dim() == 2, "weight_scale: weight must be [out, in], got ", w.sizes());
  at::NoGradGuard no_grad;
  const at::Tensor m = std::get<0>(w.detach().abs().max(1));
  return at::where(m > 0, m / symmetric_qmax(bits), at::ones_like(m));
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

std::pair<float, float> observe_range(const at::Tensor& x, ObserverKind kind, double percentile,
                                      int64_t sample_size) {
  at::NoGradGuard no_grad;
  const at::Tensor v = x.detach().reshape({-1});
  if (v.numel() == 0) return {0.0f, 0.0f};
  if (kind == ObserverKind::kMomentum) {
    return {v.min().item<float>(), v.max().item<float>()};
  }
  TORCH_CHECK(percentile > 50 && percentile <= 100,
              "observe_range: percentile must be in (50, 100], got ", percentile);
  TORCH_CHECK(sample_size >= 1, "observe_range: sample_size must be >= 1, got ", sample_size);
  at::Tensor s = v;
  if (v.numel() > sample_size) {
    s = v.index_select(0, at::randint(v.numel(), {sample_size}, at::kLong));
  }
  // Nearest-rank percentiles of the sample (kthvalue is a selection, not a full sort).
  const int64_t m = s.numel();
  const auto rank = [&](double p) {
    return std::clamp<int64_t>(static_cast<int64_t>(std::ceil(p / 100.0 * m)), 1, m);
  };
  const float lo = std::get<0>(s.kthvalue(rank(100.0 - percentile))).item<float>();
  const float hi = std::get<0>(s.kthvalue(rank(percentile))).item<float>();
  return {lo, hi};
}

namespace {

// What QatHook accepts (its constructor and load_state).
void check_config(const QatConfig& config) {
  TORCH_CHECK(config.momentum > 0 && config.momentum <= 1,
              "QatHook: momentum must be in (0, 1], got ", config.momentum);
  TORCH_CHECK(0 <= config.p_min && config.p_min <= config.p_max && config.p_max <= 1,
              "QatHook: need 0 <= p_min <= p_max <= 1, got ", config.p_min, ", ", config.p_max);
  // QAT quantizes symmetrically per tensor (activations) and per output channel (weights)
  // with nearest rounding, as the integer kernels compute: SGQuant's storage options
  // would be silently ignored, so a policy naming one is refused.
  TORCH_CHECK(!config.policy.has_storage_options(), "QatHook: policy '", config.policy.to_string(),
              "' names taq, gran, round or cols, which are SGQuant storage options; QAT has "
              "one symmetric per-tensor width per point");
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

float QatHook::scale(int64_t layer, QuantRole role) const {
  auto it = ranges_.find({layer, role});
  TORCH_CHECK(it != ranges_.end() && it->second.updates > 0, "QatHook: point layer", layer, ".",
              to_string(role), " was never observed (train the model first)");
  const int bits = config_.policy.bits({layer, role});
  check_bits(bits, "QatHook::scale");
  const float m = std::max(std::abs(it->second.lo), std::abs(it->second.hi));
  return m > 0 ? m / static_cast<float>(symmetric_qmax(bits)) : 1.0f;
}

at::Tensor QatHook::quantize_nodes(int64_t layer, QuantRole role, const at::Tensor& h) {
  const int bits = config_.policy.bits({layer, role});
  if (bits == 32) return h;
  check_bits(bits, "QAT activation");
  ObservedRange& r = ranges_[{layer, role}];
  float lo, hi;
  if (training_ || r.updates == 0) {
    const auto [blo, bhi] =
        observe_range(h, config_.observer, config_.percentile, config_.sample_size);
    if (training_) {
      const float m = r.updates == 0 ? 1.0f : static_cast<float>(config_.momentum);
      r.lo = (1 - m) * r.lo + m * blo;
      r.hi = (1 - m) * r.hi + m * bhi;
      ++r.updates;
      lo = r.lo;
      hi = r.hi;
    } else {
      ranges_.erase({layer, role});  // evaluation before training: this tensor's own range
      lo = blo;
      hi = bhi;
    }
  } else {
    lo = r.lo;
    hi = r.hi;
  }
  const float m = std::max(std::abs(lo), std::abs(hi));
  const at::Tensor s = at::scalar_tensor(m > 0 ? m / symmetric_qmax(bits) : 1.0f, at::kFloat);
  at::Tensor q = fake_quantize_symmetric(h, s, bits);
  if (mask_.defined() && h.dim() >= 1 && h.size(0) == mask_.size(0)) {
    std::vector<int64_t> shape(h.dim(), 1);
    shape[0] = h.size(0);
    q = at::where(mask_.view(shape), h, q);  // protected nodes stay at full precision
  }
  return q;
}

NodeFeatures QatHook::embedding(int64_t layer, const NodeFeatures& h, const GraphOperators&) {
  TORCH_CHECK(!h.is_packed(), "QatHook: packed features cannot be quantization-aware trained");
  if (!h.is_sparse()) return NodeFeatures(quantize_nodes(layer, QuantRole::kEmbedding, h.dense()));
  // Sparse input: symmetric quantization keeps zeros at zero, so only the stored values
  // are quantized (the observed range includes the implicit zeros).
  const CsrGraph& s = h.sparse();
  if (config_.policy.bits({layer, QuantRole::kEmbedding}) == 32) return h;
  at::Tensor values = s.has_weights() ? s.weights() : at::ones({s.num_edges()}, at::kFloat);
  at::Tensor with_zero = at::cat({values.reshape({-1}), at::zeros({1}, at::kFloat)});
  // Quantize [values, 0] so the range sees the zeros, then drop the appended zero; the
  // node mask applies per stored value through its row.
  at::Tensor saved_mask = mask_;
  if (mask_.defined()) {
    mask_ = at::cat({mask_.index_select(0, s.row_ids()), at::zeros({1}, at::kBool)});
  }
  at::Tensor q =
      quantize_nodes(layer, QuantRole::kEmbedding, with_zero).narrow(0, 0, values.numel());
  mask_ = saved_mask;
  return NodeFeatures(s.with_weights(q.contiguous()));
}

at::Tensor QatHook::attention(int64_t layer, const at::Tensor& alpha, const CsrGraph& g) {
  const int bits = config_.policy.bits({layer, QuantRole::kAttention});
  if (bits == 32) return alpha;
  TORCH_CHECK(bits >= 1 && bits <= 8, "QAT attention: bits must be 1..8 or 32, got ", bits);
  const double levels = (1 << bits) - 1;
  at::Tensor q;
  {
    at::NoGradGuard no_grad;
    q = at::round(at::clamp(alpha.detach(), 0.0, 1.0) * levels) / levels;
  }
  q = straight_through(alpha, q, at::ones({}, at::kFloat));
  if (mask_.defined()) {
    at::Tensor m = mask_.index_select(0, g.row_ids());  // an edge belongs to its target
    if (alpha.dim() == 2) m = m.unsqueeze(1);
    q = at::where(m, alpha, q);
  }
  return q;
}

at::Tensor QatHook::weight(int64_t layer, int64_t, const at::Tensor& w) {
  const int bits = config_.policy.bits({layer, QuantRole::kWeight});
  if (bits == 32) return w;
  return fake_quantize_symmetric(w, weight_scale(w, bits), bits);
}

at::Tensor QatHook::activation(int64_t layer, QuantRole role, const at::Tensor& h) {
  return quantize_nodes(layer, role, h);
}

std::string QatHook::save_state() const {
  nlohmann::json ranges = nlohmann::json::array();
  for (const auto& [key, r] : ranges_) {
    ranges.push_back({{"layer", key.first},
                      {"role", to_string(key.second)},
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
    std::map<std::pair<int64_t, QuantRole>, ObservedRange> ranges;
    for (const auto& r : j.at("ranges")) {
      ObservedRange o;
      o.lo = r.at("lo").get<float>();
      o.hi = r.at("hi").get<float>();
      o.updates = r.at("updates").get<int64_t>();
      ranges[{r.at("layer").get<int64_t>(), parse_quant_role(r.at("role").get<std::string>())}] = o;
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
