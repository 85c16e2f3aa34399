#include "qgnn/autobit/search.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>

#include "qgnn/util/timing.h"

namespace qgnn {

ModelState capture_state(GnnModel& model) {
  ModelState s;
  for (const auto& p : model.named_parameters())
    s.emplace_back(p.key(), p.value().detach().clone());
  return s;
}

void restore_state(GnnModel& model, const ModelState& state) {
  torch::NoGradGuard ng;
  auto params = model.named_parameters();
  TORCH_CHECK(params.size() == state.size(), "restore_state: model has ", params.size(),
              " parameters, state has ", state.size());
  for (const auto& [name, t] : state) params[name].copy_(t);
}

PolicyResult evaluate_policy(GnnModel& model, const ModelState& fp32, const TrainData& data,
                             const BitPolicy& policy, int64_t finetune_epochs,
                             const OptimConfig& optim, uint64_t seed, const InputCodeStats* input) {
  restore_state(model, fp32);
  model.set_quant_hook(std::make_shared<FakeQuantHook>(policy));
  PolicyResult r;
  r.policy = policy;
  std::optional<InputCodeStats> own_input;
  if (input == nullptr) input = &own_input.emplace(data.x);
  r.memory = memory_report(model, data.ops, policy, input);
  const EvalResult before = evaluate(model, data);
  r.val_acc = before.val_acc;
  r.test_acc = before.test_acc;
  if (finetune_epochs > 0 && !policy.is_full_precision()) {
    OptimConfig o = optim;
    o.epochs = finetune_epochs;
    o.patience = finetune_epochs;
    torch::manual_seed(seed);
    const TrainResult t = train_full_batch(model, data, o);
    if (t.best_val_acc > before.val_acc) {
      r.val_acc = t.best_val_acc;
      r.test_acc = t.test_acc;
      r.best_epoch = t.best_epoch;
      r.val_pred = evaluate(model, data).val_pred;
      return r;
    }
    restore_state(model, fp32);  // fine-tuning did not help on validation
  }
  r.val_pred = before.val_pred;
  return r;
}

SearchGranularity parse_search_granularity(const std::string& s) {
  if (s == "uniform") return SearchGranularity::kUniform;
  if (s == "cwq") return SearchGranularity::kComponent;
  if (s == "lwq") return SearchGranularity::kLayer;
  if (s == "taq") return SearchGranularity::kTopology;
  TORCH_CHECK(false, "granularity: expected uniform, cwq, lwq or taq, got '", s, "'");
}

bool is_binary(const NodeFeatures& x) {
  torch::NoGradGuard no_grad;
  if (x.is_packed()) return false;
  if (x.is_sparse()) {
    const CsrGraph& g = x.sparse();
    if (!g.has_weights() || g.num_edges() == 0) return true;
    const at::Tensor w = g.weights();
    return w.eq(w[0]).all().item<bool>() && w[0].item<float>() != 0.0f;
  }
  const at::Tensor d = x.dense();
  const at::Tensor nz = d.masked_select(d.ne(0));
  return nz.numel() == 0 || nz.eq(nz[0]).all().item<bool>();
}

SearchSpace search_space(const GnnModel& model, const GraphOperators& ops, const NodeFeatures* x) {
  SearchSpace s;
  s.input_max_bits = s.bits.back();
  if (x != nullptr && is_binary(*x)) {
    s.input_max_bits = 1;
    s.value_options = false;  // binary codes: rounding and column scales change nothing
  }
  for (const QuantPointInfo& p : model.quant_points(ops)) {
    if (p.point.role == QuantRole::kAttention) {
      s.attention_layers.push_back(p.point.layer);
    } else {
      s.embedding_layers = std::max(s.embedding_layers, p.point.layer + 1);
    }
  }
  return s;
}

namespace {

// One point of the search space.
struct Config {
  std::vector<int> emb;  // bits per embedding layer
  std::vector<int> att;  // bits per attention layer (SearchSpace::attention_layers order)
  bool taq = false;
  std::vector<int> caps;  // 3 non-increasing TAQ caps
  bool row_gran = true;   // embeddings: per-row ranges (else per-tensor)
  bool nonzero = false;   // the input: Rounding::kNonzero (else kNearest)
  bool cols = false;      // the input: per-column scales
};

BitPolicy to_policy(const Config& c, const SearchSpace& s) {
  BitPolicy p;
  for (size_t l = 0; l < c.emb.size(); ++l) {
    p.set_layer_bits(static_cast<int64_t>(l), QuantRole::kEmbedding, c.emb[l]);
  }
  for (size_t k = 0; k < c.att.size(); ++k) {
    p.set_layer_bits(s.attention_layers[k], QuantRole::kAttention, c.att[k]);
  }
  if (c.taq) p.set_taq(QuantRole::kEmbedding, DegreeBuckets{{}, c.caps});
  p.set_granularity(QuantRole::kEmbedding, c.row_gran ? Granularity::kRow : Granularity::kTensor);
  // The input point only: hidden embeddings are dense ReLU outputs, where nonzero rounding
  // at 1 bit binarizes them (Coauthor CS GCN: validation 84.7 vs 89.6 without it).
  if (c.nonzero) p.set_layer_rounding(0, QuantRole::kEmbedding, Rounding::kNonzero);
  if (c.cols) p.set_layer_column_scales(0, QuantRole::kEmbedding, true);
  return p;
}

// Cost-model features: bits of every point, TAQ flag and caps, granularity. (The saving
// is left out: trees cannot extrapolate it beyond the measured range, and it is a
// function of the bits anyway.)
std::vector<float> features(const Config& c) {
  std::vector<float> f;
  for (int b : c.emb) f.push_back(static_cast<float>(b));
  for (int b : c.att) f.push_back(static_cast<float>(b));
  f.push_back(c.taq ? 1.0f : 0.0f);
  for (int i = 0; i < 3; ++i) f.push_back(c.taq ? static_cast<float>(c.caps[i]) : 32.0f);
  f.push_back(c.row_gran ? 1.0f : 0.0f);
  f.push_back(c.nonzero ? 1.0f : 0.0f);
  f.push_back(c.cols ? 1.0f : 0.0f);
  return f;
}

// Widths the input point (layer 0's embedding) may take at the per-layer levels.
std::vector<int> input_widths(const SearchSpace& s) {
  std::vector<int> w;
  for (int b : s.bits) {
    if (b <= s.input_max_bits) w.push_back(b);
  }
  return w;
}

// The widest configuration of the space: every point at the widest width of its kind
// (the input at its widest useful one, attention at 16 bits except at the uniform
// level), per-row ranges, no TAQ. The first measurement of an
// accuracy-budget search: it anchors the cost model's high-accuracy end (trees do not
// extrapolate, and random configurations of a model with many points almost never have
// all of them wide: Amazon AGNN, 9 points, sampled none in 60) and is the fallback
// closest to fp32.
Config widest_config(const SearchSpace& s, SearchGranularity level) {
  const int widest = *std::max_element(s.bits.begin(), s.bits.end());
  const bool uniform = level == SearchGranularity::kUniform;
  Config c;
  c.emb.assign(s.embedding_layers, widest);
  c.att.assign(
      s.attention_layers.size(),
      uniform ? widest : *std::max_element(s.attention_bits.begin(), s.attention_bits.end()));
  const bool per_layer =
      level == SearchGranularity::kLayer || level == SearchGranularity::kTopology;
  if (per_layer && !c.emb.empty()) {
    const std::vector<int> input = input_widths(s);
    c.emb[0] = *std::max_element(input.begin(), input.end());
  }
  return c;
}

// Configurations that quantize alike get one form, so that the search never measures the
// same quantization twice under two names (gauss20k-sep4 GCN, seed 0: 5 of 60
// measurements were one policy): under TAQ a row's bits are min(layer bits, its bucket's
// cap), so layer bits above the highest cap equal that cap, and TAQ whose lowest cap no
// layer exceeds changes nothing. (16 and 32 bits ignore TAQ.)
void canonicalize(Config& c) {
  if (!c.taq || c.caps.empty()) return;
  const int highest = c.caps.front(), lowest = c.caps.back();
  bool capped = false;
  for (int& b : c.emb) {
    if (b > 8) continue;
    b = std::min(b, highest);
    capped = capped || b > lowest;
  }
  if (!capped) {
    c.taq = false;
    c.caps.clear();
  }
}

Config random_config(const SearchSpace& s, std::mt19937_64& rng, SearchGranularity level) {
  auto pick = [&](const std::vector<int>& v) {
    return v[std::uniform_int_distribution<size_t>(0, v.size() - 1)(rng)];
  };
  Config c;
  if (level == SearchGranularity::kUniform || level == SearchGranularity::kComponent) {
    const int e = pick(s.bits);
    const int a = level == SearchGranularity::kUniform ? e : pick(s.attention_bits);
    c.emb.assign(s.embedding_layers, e);
    c.att.assign(s.attention_layers.size(), a);
    return c;
  }
  const std::vector<int> input_bits = input_widths(s);
  if (level == SearchGranularity::kLayer) {
    for (int64_t l = 0; l < s.embedding_layers; ++l)
      c.emb.push_back(pick(l == 0 ? input_bits : s.bits));
    for (size_t k = 0; k < s.attention_layers.size(); ++k) c.att.push_back(pick(s.attention_bits));
    return c;
  }
  for (int64_t l = 0; l < s.embedding_layers; ++l)
    c.emb.push_back(pick(l == 0 ? input_bits : s.bits));
  for (size_t k = 0; k < s.attention_layers.size(); ++k) c.att.push_back(pick(s.attention_bits));
  c.taq = std::uniform_int_distribution<int>(0, 1)(rng) == 1;
  if (c.taq) {
    c.caps = {pick(s.bits), pick(s.bits), pick(s.bits)};
    std::sort(c.caps.begin(), c.caps.end(), std::greater<int>());
  }
  c.row_gran = std::uniform_int_distribution<int>(0, 1)(rng) == 1;
  if (s.value_options) {
    c.nonzero = std::uniform_int_distribution<int>(0, 1)(rng) == 1;
    c.cols = std::uniform_int_distribution<int>(0, 1)(rng) == 1;
  }
  canonicalize(c);
  return c;
}

// Spread, in accuracy points, of the cost model's error around the budget floor: a
// candidate predicted exactly at the floor counts as feasible with probability 1/2, one
// predicted a point above with probability 0.73.
constexpr double kFeasibilityScale = 1.0;

}  // namespace

SearchResult search_bits(GnnModel& model, const ModelState& fp32, const TrainData& data,
                         double fp32_val_acc, const OptimConfig& optim, const SearchOptions& opt,
                         const SearchProgress& progress) {
  TORCH_CHECK(opt.n_measure >= 1 && opt.n_iter >= 0 && opt.n_sample >= opt.n_measure,
              "search_bits: need n_measure >= 1, n_iter >= 0, n_sample >= n_measure");
  const SearchSpace space = search_space(model, data.ops, &data.x);
  const InputCodeStats input(data.x);  // exact input-point bytes (index-list layout)
  std::mt19937_64 rng(opt.seed);
  SearchResult result;
  result.fp32_val_acc = fp32_val_acc;
  const double floor = fp32_val_acc - opt.max_drop;
  // The fp32 model's validation predictions, for the paired noise margin.
  restore_state(model, fp32);
  model.set_quant_hook(nullptr);
  const torch::Tensor fp32_val_pred = evaluate(model, data).val_pred;
  const int64_t n_val = fp32_val_pred.numel();
  auto feasible = [&](const SearchPoint& pt) { return pt.result.val_acc - pt.val_margin >= floor; };
  std::vector<std::vector<float>> xs;
  std::vector<float> ys;
  const int64_t total = opt.n_measure * (opt.n_iter + 1);
  std::set<std::string> seen;  // policies measured or queued (each is measured once)

  // A random configuration of the level within the memory budget, or nullopt after many
  // rejections (the budget admits almost nothing at this level). Average bits are
  // memoized by policy: restricted levels have few distinct configurations.
  std::map<std::string, double> avg_bits;
  auto sample_config = [&]() -> std::optional<Config> {
    for (int tries = 0; tries < 1000; ++tries) {
      Config c = random_config(space, rng, opt.granularity);
      if (opt.max_avg_bits <= 0) return c;
      const BitPolicy p = to_policy(c, space);
      auto [it, fresh] = avg_bits.try_emplace(p.to_string(), 0.0);
      if (fresh) it->second = memory_report(model, data.ops, p, &input).average_bits();
      if (it->second <= opt.max_avg_bits) return c;
    }
    return std::nullopt;
  };

  auto measure = [&](const Config& c, int64_t round, bool from_model, double predicted) {
    SearchPoint pt;
    pt.round = round;
    pt.from_model = from_model;
    pt.predicted_val_acc = predicted;
    pt.result = evaluate_policy(model, fp32, data, to_policy(c, space), opt.finetune_epochs, optim,
                                opt.seed, &input);
    pt.val_disagreements = pt.result.val_pred.ne(fp32_val_pred).sum().item<int64_t>();
    pt.val_margin = n_val == 0 ? 0.0
                               : opt.margin_sigmas * 100.0 *
                                     std::sqrt(static_cast<double>(pt.val_disagreements)) /
                                     static_cast<double>(n_val);
    xs.push_back(features(c));
    seen.insert(to_policy(c, space).to_string());
    ys.push_back(static_cast<float>(pt.result.val_acc));
    result.points.push_back(pt);
    if (progress) progress(pt, static_cast<int64_t>(result.points.size()), total);
  };

  for (int64_t round = 0; round <= opt.n_iter; ++round) {
    if (round == 0 || opt.random_search) {
      int64_t i = 0;
      if (round == 0 && opt.max_avg_bits <= 0) {
        measure(widest_config(space, opt.granularity), round, false, 0);
        ++i;
      }
      for (int64_t tries = 0; i < opt.n_measure && tries < 100 * opt.n_measure; ++tries) {
        const std::optional<Config> c = sample_config();
        if (!c) break;
        if (seen.count(to_policy(*c, space).to_string())) continue;
        measure(*c, round, false, 0);
        ++i;
      }
      continue;
    }
    // Candidates with their exact memory (computed from shapes, no model run).
    std::vector<Config> cand;
    std::vector<double> saving;
    std::vector<std::vector<float>> cx;
    std::set<std::string> in_pool;
    for (int64_t i = 0; i < opt.n_sample * 4 && static_cast<int64_t>(cand.size()) < opt.n_sample;
         ++i) {
      std::optional<Config> sampled = sample_config();
      if (!sampled) break;
      Config c = std::move(*sampled);
      const BitPolicy p = to_policy(c, space);
      const std::string key = p.to_string();
      if (seen.count(key) || !in_pool.insert(key).second) continue;
      saving.push_back(memory_report(model, data.ops, p, &input).saving());
      cx.push_back(features(c));
      cand.push_back(std::move(c));
    }
    if (cand.empty()) break;  // the space is exhausted
    const auto t0 = std::chrono::steady_clock::now();
    CostModel cm(CostModel::Options{60, 4, 0.2, 1.0, 1, opt.seed + static_cast<uint64_t>(round)});
    cm.fit(xs, ys);
    const std::vector<float> pred = cm.predict(cx);
    result.cost_model_ms.push_back(ms_since(t0));
    // Most promising: the largest expected gain over the best saving measured within the
    // budget so far (the incumbent), P(feasible) * (saving - incumbent), with
    // P(feasible) = sigmoid((predicted - floor) / tau). A candidate that cannot beat the
    // incumbent is worth nothing, however safe; a large saving predicted just below the
    // floor is still worth a look, since the prediction is uncertain.
    // Until some configuration is feasible, the most likely feasible ones (ties: larger
    // saving) come first.
    // A candidate's own margin is unknown before it is measured; the mean measured one
    // stands in for it.
    double incumbent = 0.0;  // 0: nothing feasible measured yet
    double mean_margin = 0.0;
    for (const SearchPoint& pt : result.points) {
      if (feasible(pt)) incumbent = std::max(incumbent, pt.result.memory.saving());
      mean_margin += pt.val_margin / static_cast<double>(result.points.size());
    }
    const double model_floor = floor + mean_margin;
    std::vector<double> gain(cand.size());
    for (size_t i = 0; i < cand.size(); ++i) {
      const double p_ok = 1.0 / (1.0 + std::exp(-(pred[i] - model_floor) / kFeasibilityScale));
      if (opt.max_avg_bits > 0) {
        gain[i] = pred[i];  // memory budget: every candidate fits; the most accurate
      } else if (incumbent == 0.0) {
        gain[i] = p_ok + 1e-6 * saving[i];
      } else {
        gain[i] = p_ok * std::max(0.0, saving[i] - incumbent);
      }
    }
    std::vector<int64_t> order(cand.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
      if (gain[a] != gain[b]) return gain[a] > gain[b];
      return pred[a] > pred[b];
    });
    for (int64_t i = 0; i < opt.n_measure && i < static_cast<int64_t>(cand.size()); ++i) {
      measure(cand[order[i]], round, true, pred[order[i]]);
    }
  }
  for (size_t i = 0; i < result.points.size(); ++i) {
    const PolicyResult& r = result.points[i].result;
    if (opt.max_avg_bits > 0) {
      const PolicyResult* b = result.best >= 0 ? &result.points[result.best].result : nullptr;
      if (b == nullptr || r.val_acc > b->val_acc ||
          (r.val_acc == b->val_acc && r.memory.saving() > b->memory.saving())) {
        result.best = static_cast<int64_t>(i);
      }
      continue;
    }
    if (!feasible(result.points[i])) continue;
    if (result.best < 0 || r.memory.saving() > result.points[result.best].result.memory.saving()) {
      result.best = static_cast<int64_t>(i);
    }
  }
  result.within_budget = result.best >= 0 || opt.max_avg_bits > 0;
  if (result.best < 0) {  // nothing within the drop budget: the most accurate measured
    for (size_t i = 0; i < result.points.size(); ++i) {
      const PolicyResult& r = result.points[i].result;
      const PolicyResult* b = result.best >= 0 ? &result.points[result.best].result : nullptr;
      if (b == nullptr || r.val_acc > b->val_acc ||
          (r.val_acc == b->val_acc && r.memory.saving() > b->memory.saving())) {
        result.best = static_cast<int64_t>(i);
      }
    }
  }
  return result;
}

std::string search_points_csv(const SearchResult& r) {
  std::ostringstream os;
  os << "round,source,val_acc,test_acc,avg_bits,fp32_mb,quant_mb,saving,predicted_val_acc,pareto,"
        "val_disagreements,val_margin,stored_mb,stored_saving,policy\n";
  for (size_t i = 0; i < r.points.size(); ++i) {
    const SearchPoint& p = r.points[i];
    const MemoryReport& m = p.result.memory;
    bool dominated = false;
    for (const SearchPoint& q : r.points) {
      const bool ge =
          q.result.val_acc >= p.result.val_acc && q.result.memory.saving() >= m.saving();
      const bool gt = q.result.val_acc > p.result.val_acc || q.result.memory.saving() > m.saving();
      dominated = dominated || (ge && gt);
    }
    os << p.round << ',' << (p.from_model ? "model" : "random") << ',' << p.result.val_acc << ','
       << p.result.test_acc << ',' << m.average_bits() << ',' << m.fp32_mb() << ',' << m.dense_mb()
       << ',' << m.saving() << ',' << (p.from_model ? std::to_string(p.predicted_val_acc) : "")
       << ',' << (dominated ? 0 : 1) << ',' << p.val_disagreements << ',' << p.val_margin << ','
       << m.stored_mb() << ',' << m.saving() << ",\"" << p.result.policy.to_string() << "\"\n";
  }
  return os.str();
}

}  // namespace qgnn
