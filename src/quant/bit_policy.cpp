#include "qgnn/quant/bit_policy.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cctype>
#include <sstream>

namespace qgnn {

namespace {

std::string strip(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (!std::isspace(static_cast<unsigned char>(c))) out.push_back(c);
  }
  return out;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == sep) {
      out.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  out.push_back(cur);
  return out;
}

const char* role_name(QuantRole r) {
  switch (r) {
    case QuantRole::kEmbedding:
      return "emb";
    case QuantRole::kAttention:
      return "att";
    case QuantRole::kWeight:
      return "w";
    case QuantRole::kLinear:
      return "lin";
    case QuantRole::kAggregate:
      return "agg";
    case QuantRole::kHidden:
      return "hid";
    case QuantRole::kBoundary:
      return "boundary";
    case QuantRole::kHistory:
      return "history";
  }
  return "?";
}

constexpr QuantRole kRoles[] = {QuantRole::kEmbedding, QuantRole::kAttention, QuantRole::kWeight,
                                QuantRole::kLinear,    QuantRole::kAggregate, QuantRole::kHidden,
                                QuantRole::kBoundary,  QuantRole::kHistory};

bool is_role_name(const std::string& s) {
  return std::any_of(std::begin(kRoles), std::end(kRoles),
                     [&](QuantRole r) { return s == role_name(r); });
}

// Roles whose values are stored as packed rows: the storage options (gran, round, cols,
// taq, layout) apply to them.
bool is_storage_role(const std::string& s) {
  return s == "emb" || s == "att" || s == "boundary" || s == "history";
}

// The axes a clause may name after a role (or alone, or after layer<L>.<role>).
bool is_storage_axis(const std::string& k) {
  return k == "gran" || k == "round" || k == "cols" || k == "taq";
}
bool is_any_role_axis(const std::string& k) {
  return k == "scheme" || k == "range" || k == "layout";
}

// Parsing context: names the spec and clause in every error.
struct Parser {
  const std::string& spec;
  std::string clause;

  [[noreturn]] void fail(const std::string& what) const {
    TORCH_CHECK(false, "bit policy '", spec, "': ", what, " in '", clause, "'");
  }

  int64_t integer(const std::string& s, const char* what) const {
    if (s.empty() ||
        !std::all_of(s.begin(), s.end(),
                     [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }) ||
        s.size() > 12) {
      fail(std::string("expected ") + what + ", got '" + s + "'");
    }
    return std::stoll(s);
  }

  // A width: 1..8, half (16) or 32.
  int bits(const std::string& s) const {
    if (s == "half") return 16;
    const int64_t b = integer(s, "bits (1-8, half or 32)");
    if (b > 32 || !is_valid_bits(static_cast<int>(b))) {  // no int truncation: 2^32 + 4 != 4
      fail("bits must be 1-8, half (16) or 32, got " + s);
    }
    return static_cast<int>(b);
  }

  QuantRole role(const std::string& s) const {
    for (QuantRole r : kRoles) {
      if (s == role_name(r)) return r;
    }
    fail("unknown component '" + s + "' (emb, att, w, lin, agg, hid, boundary or history)");
  }

  // Names parsed by quant/quantizer.h's parse_* (their errors carry this clause).
  template <class F>
  auto named(const std::string& s, F parse) const -> decltype(parse(s)) {
    try {
      return parse(s);
    } catch (const c10::Error& e) {
      fail(e.msg());
    }
  }

  Granularity granularity(const std::string& s) const { return named(s, parse_granularity); }
  QuantScheme scheme(const std::string& s) const {
    const QuantScheme q = named(s, parse_quant_scheme);
    if (q != QuantScheme::kAffine && q != QuantScheme::kSymmetric) {
      fail("scheme must be affine or symmetric, got '" + s +
           "' (half and full precision are widths: emb=half, emb=32)");
    }
    return q;
  }
  RangeRule range(const std::string& s) const { return named(s, parse_range_rule); }
  LayoutRule layout(const std::string& s) const { return named(s, parse_layout_rule); }

  Rounding rounding(const std::string& s) const {
    if (s == "nearest") return Rounding::kNearest;
    if (s == "nonzero") return Rounding::kNonzero;
    fail("unknown rounding '" + s + "' (nearest or nonzero)");
  }

  bool on_off(const std::string& s) const {
    if (s == "on") return true;
    if (s == "off") return false;
    fail("expected on or off, got '" + s + "'");
  }

  // "4@<=2,3@<=8,2" or "4,3,2".
  DegreeBuckets buckets(const std::string& s) const {
    DegreeBuckets b;
    const auto items = split(s, ',');
    for (size_t i = 0; i < items.size(); ++i) {
      const std::string& item = items[i];
      const auto at = item.find("@<=");
      const bool last = i + 1 == items.size();
      if (at == std::string::npos) {
        b.bits.push_back(bits(item));
        if (!last && !b.upper.empty()) fail("bucket '" + item + "' needs a bound '@<=D'");
      } else {
        if (last) fail("the last bucket takes no bound, got '" + item + "'");
        if (b.upper.size() != b.bits.size()) fail("mix of bounded and quantile buckets");
        b.bits.push_back(bits(item.substr(0, at)));
        const int64_t d = integer(item.substr(at + 3), "an in-degree bound");
        if (!b.upper.empty() && d <= b.upper.back()) {
          fail("bucket bounds must increase, got " + std::to_string(d) + " after " +
               std::to_string(b.upper.back()));
        }
        b.upper.push_back(d);
      }
    }
    if (!b.upper.empty() && b.upper.size() + 1 != b.bits.size()) {
      fail("every bucket but the last needs a bound '@<=D'");
    }
    if (b.bits.size() > 255) fail("at most 255 buckets");
    return b;
  }
};

std::string buckets_to_string(const DegreeBuckets& b) {
  std::ostringstream os;
  for (size_t i = 0; i < b.bits.size(); ++i) {
    if (i) os << ',';
    os << b.bits[i];
    if (i < b.upper.size()) os << "@<=" << b.upper[i];
  }
  return os.str();
}

}  // namespace

std::string to_string(QuantRole role) { return role_name(role); }

QuantRole parse_quant_role(const std::string& name) {
  Parser ps{name, name};
  return ps.role(name);
}

BitPolicy::Clauses& BitPolicy::layer_clauses(int64_t layer, QuantRole role) {
  TORCH_CHECK(layer >= 0, "BitPolicy: layer must be >= 0, got ", layer);
  return layer_[{layer, role}];
}

namespace {

// Sets axis `axis` of clause set `c` from `value`.
template <class Clauses>
void set_axis(const Parser& ps, Clauses& c, const std::string& axis, const std::string& value) {
  if (axis == "bits") {
    c.bits = ps.bits(value);
  } else if (axis == "gran") {
    c.gran = ps.granularity(value);
  } else if (axis == "round") {
    c.round = ps.rounding(value);
  } else if (axis == "cols") {
    c.cols = ps.on_off(value);
  } else if (axis == "taq") {
    c.taq = ps.buckets(value);
  } else if (axis == "layout") {
    c.layout = ps.layout(value);
  } else if (axis == "scheme") {
    c.scheme = ps.scheme(value);
  } else if (axis == "range") {
    c.range = ps.range(value);
  } else {
    ps.fail("unknown key '" + axis + "'");
  }
}

std::string bits_name(int b) { return b == 16 ? "half" : std::to_string(b); }

}  // namespace

BitPolicy BitPolicy::parse(const std::string& spec_in) {
  BitPolicy p;
  const std::string spec = strip(spec_in);
  if (spec.empty() || spec == "fp32") return p;
  Parser ps{spec_in, ""};
  for (const std::string& clause : split(spec, ';')) {
    if (clause.empty()) continue;
    ps.clause = clause;
    const auto eq = clause.find('=');
    if (eq == std::string::npos || eq == 0) ps.fail("expected key=value");
    const std::string key = clause.substr(0, eq), value = clause.substr(eq + 1);
    if (value.empty()) ps.fail("missing value");
    const auto parts = split(key, '.');
    const bool layer_scope = parts.size() >= 2 && parts[0].rfind("layer", 0) == 0;
    // rest: [axis] (policy-wide), [role] (its bits), [role, axis].
    const std::vector<std::string> rest(parts.begin() + (layer_scope ? 1 : 0), parts.end());
    if (!layer_scope && rest.size() == 1 && (key == "gran" || key == "round" || key == "cols")) {
      // Policy-wide storage options apply to the components SGQuant stores.
      set_axis(ps, p.role_[QuantRole::kEmbedding], key, value);
      set_axis(ps, p.role_[QuantRole::kAttention], key, value);
    } else if (!layer_scope && rest.size() == 1 && !is_role_name(key)) {
      if (key != "bits" && key != "taq" && key != "layout" && !is_any_role_axis(key)) {
        ps.fail("unknown key '" + key + "'");
      }
      set_axis(ps, p.all_, key, value);
    } else if (rest.size() == 1 || rest.size() == 2) {
      if (!is_role_name(rest[0])) ps.fail("unknown key '" + key + "'");
      const std::string axis = rest.size() == 1 ? "bits" : rest[1];
      if (rest.size() == 2 && !is_any_role_axis(axis) &&
          !(is_storage_axis(axis) && is_storage_role(rest[0]))) {
        ps.fail("unknown key '" + key + "'");
      }
      const QuantRole role = ps.role(rest[0]);
      if (layer_scope) {
        const int64_t layer = ps.integer(parts[0].substr(5), "a layer number after 'layer'");
        set_axis(ps, p.layer_[{layer, role}], axis, value);
      } else {
        set_axis(ps, p.role_[role], axis, value);
      }
    } else {
      ps.fail("unknown key '" + key + "'");
    }
  }
  return p;
}

template <class T>
std::optional<T> BitPolicy::resolve(const QuantPoint& p, std::optional<T> Clauses::*axis,
                                    bool policy_wide) const {
  if (auto it = layer_.find({p.layer, p.role}); it != layer_.end() && (it->second.*axis)) {
    return it->second.*axis;
  }
  if (auto it = role_.find(p.role); it != role_.end() && (it->second.*axis)) {
    return it->second.*axis;
  }
  return policy_wide ? all_.*axis : std::nullopt;
}

std::string BitPolicy::to_string() const {
  std::vector<std::string> c;
  const auto role_key = [](QuantRole r, const char* axis) {
    return std::string(role_name(r)) + "." + axis + "=";
  };
  const auto layer_key = [](const std::pair<int64_t, QuantRole>& k, const char* axis) {
    return "layer" + std::to_string(k.first) + "." + role_name(k.second) +
           (axis[0] != '\0' ? std::string(".") + axis : std::string()) + "=";
  };
  // The role-level value of an axis that a layer clause overrides (what it would inherit).
  const auto role_level = [&](QuantRole r, auto axis) { return resolve(QuantPoint{-1, r}, axis); };
  if (all_.bits && *all_.bits != 32) c.push_back("bits=" + bits_name(*all_.bits));
  for (const auto& [role, k] : role_) {
    if (k.bits) c.push_back(std::string(role_name(role)) + "=" + bits_name(*k.bits));
  }
  for (const auto& [role, k] : role_) {
    if (k.gran) c.push_back(role_key(role, "gran") + qgnn::to_string(*k.gran));
  }
  for (const auto& [role, k] : role_) {
    if (k.round && *k.round != Rounding::kNearest)
      c.push_back(role_key(role, "round") + qgnn::to_string(*k.round));
  }
  for (const auto& [role, k] : role_) {
    if (k.cols && *k.cols) c.push_back(role_key(role, "cols") + "on");
  }
  if (all_.taq) c.push_back("taq=" + buckets_to_string(*all_.taq));
  for (const auto& [role, k] : role_) {
    if (k.taq) c.push_back(role_key(role, "taq") + buckets_to_string(*k.taq));
  }
  for (const auto& [key, k] : layer_) {
    if (k.bits) c.push_back(layer_key(key, "") + bits_name(*k.bits));
  }
  // Layer overrides of the other axes print when they differ from their role's.
  for (const auto& [key, k] : layer_) {
    if (k.round && *k.round != role_level(key.second, &Clauses::round).value_or(Rounding::kNearest))
      c.push_back(layer_key(key, "round") + qgnn::to_string(*k.round));
  }
  for (const auto& [key, k] : layer_) {
    if (k.cols && *k.cols != role_level(key.second, &Clauses::cols).value_or(false))
      c.push_back(layer_key(key, "cols") + (*k.cols ? "on" : "off"));
  }
  if (all_.scheme) c.push_back("scheme=" + qgnn::to_string(*all_.scheme));
  if (all_.range) c.push_back("range=" + qgnn::to_string(*all_.range));
  if (all_.layout) c.push_back("layout=" + qgnn::to_string(*all_.layout));
  for (const auto& [role, k] : role_) {
    if (k.scheme) c.push_back(role_key(role, "scheme") + qgnn::to_string(*k.scheme));
    if (k.range) c.push_back(role_key(role, "range") + qgnn::to_string(*k.range));
    if (k.layout) c.push_back(role_key(role, "layout") + qgnn::to_string(*k.layout));
  }
  for (const auto& [key, k] : layer_) {
    const QuantRole r = key.second;
    if (k.gran && k.gran != role_level(r, &Clauses::gran))
      c.push_back(layer_key(key, "gran") + qgnn::to_string(*k.gran));
    if (k.taq && !(role_level(r, &Clauses::taq) == k.taq))
      c.push_back(layer_key(key, "taq") + buckets_to_string(*k.taq));
    if (k.scheme && k.scheme != role_level(r, &Clauses::scheme))
      c.push_back(layer_key(key, "scheme") + qgnn::to_string(*k.scheme));
    if (k.range && k.range != role_level(r, &Clauses::range))
      c.push_back(layer_key(key, "range") + qgnn::to_string(*k.range));
    if (k.layout && k.layout != role_level(r, &Clauses::layout))
      c.push_back(layer_key(key, "layout") + qgnn::to_string(*k.layout));
  }
  if (c.empty()) return "fp32";
  std::string out;
  for (size_t i = 0; i < c.size(); ++i) out += (i ? ";" : "") + c[i];
  return out;
}

int BitPolicy::bits(const QuantPoint& p) const { return resolve(p, &Clauses::bits).value_or(32); }

std::optional<RangeRule> BitPolicy::range(const QuantPoint& p) const {
  // A policy-wide range clause ("range=percentile") is about observed ranges: weights
  // (their channel extremes) and attention (its fixed grid under QAT) take a range rule
  // only from a clause naming their role or layer.
  const bool observed = p.role != QuantRole::kWeight && p.role != QuantRole::kAttention;
  return resolve(p, &Clauses::range, observed);
}

QuantSpec BitPolicy::spec(const QuantPoint& p, QuantTarget target) const {
  QuantSpec s;
  s.bits = bits(p);
  const bool storage = target == QuantTarget::kStorage;
  const bool activation = p.role == QuantRole::kEmbedding || p.role == QuantRole::kLinear ||
                          p.role == QuantRole::kAggregate || p.role == QuantRole::kHidden;
  // Defaults of the role and target (the file comment's table). QAT's attention stays
  // affine: its coefficients lie in [0, 1] (QatHook quantizes them on that fixed grid).
  const QuantScheme scheme =
      storage || p.role == QuantRole::kAttention ? QuantScheme::kAffine : QuantScheme::kSymmetric;
  const RangeRule range = !storage && activation ? RangeRule::kMomentum : RangeRule::kMinMax;
  // SGQuant's per-row embeddings (and rows of boundary / history), per-channel weights.
  const Granularity gran =
      (storage && p.role != QuantRole::kAttention) || p.role == QuantRole::kWeight
          ? Granularity::kRow
          : Granularity::kTensor;
  // The input may become an index list; int4 codes are stored as nibbles.
  LayoutRule layout = LayoutRule::kBitmap;
  if (storage && p.role == QuantRole::kEmbedding && p.layer == 0) layout = LayoutRule::kAuto;
  s.scheme = s.bits == 32   ? QuantScheme::kFull
             : s.bits == 16 ? QuantScheme::kHalf
                            : resolve(p, &Clauses::scheme).value_or(scheme);
  s.range = this->range(p).value_or(range);
  s.granularity = resolve(p, &Clauses::gran).value_or(gran);
  if (s.scheme == QuantScheme::kSymmetric && s.bits == 4) layout = LayoutRule::kNibble;
  s.layout = resolve(p, &Clauses::layout).value_or(layout);
  s.rounding = resolve(p, &Clauses::round).value_or(Rounding::kNearest);
  s.column_scales = resolve(p, &Clauses::cols).value_or(false);
  // TAQ caps code widths (half and full precision rows ignore it); a symmetric spec
  // keeps it, so that its consumer refuses it rather than dropping it.
  if (s.scheme == QuantScheme::kAffine || s.scheme == QuantScheme::kSymmetric) {
    s.buckets = resolve(p, &Clauses::taq);
  }
  return s;
}

Quantizer BitPolicy::quantizer(const QuantPoint& p, QuantTarget target) const {
  return Quantizer(spec(p, target));
}

std::vector<QuantPoint> BitPolicy::distinct_points() const {
  std::vector<QuantPoint> out;
  for (const auto& [key, k] : layer_) out.push_back({key.first, key.second});
  for (QuantRole r : kRoles) out.push_back({-1, r});
  return out;
}

bool BitPolicy::is_full_precision() const {
  const auto full = [](const Clauses& k) { return !k.bits || *k.bits == 32; };
  return full(all_) &&
         std::all_of(role_.begin(), role_.end(), [&](const auto& kv) { return full(kv.second); }) &&
         std::all_of(layer_.begin(), layer_.end(), [&](const auto& kv) { return full(kv.second); });
}

RowBits BitPolicy::row_bits(const QuantPoint& p, const at::Tensor& row_degree,
                            const at::Tensor& population) const {
  return quantizer(p).row_bits(row_degree, population);
}

void BitPolicy::set_default_bits(int b) {
  TORCH_CHECK(is_valid_bits(b), "BitPolicy: bits must be 1-8, 16 or 32, got ", b);
  all_.bits = b;
}

void BitPolicy::set_role_bits(QuantRole role, int b) {
  TORCH_CHECK(is_valid_bits(b), "BitPolicy: bits must be 1-8, 16 or 32, got ", b);
  role_[role].bits = b;
}

void BitPolicy::set_layer_bits(int64_t layer, QuantRole role, int b) {
  TORCH_CHECK(is_valid_bits(b), "BitPolicy: bits must be 1-8, 16 or 32, got ", b);
  layer_clauses(layer, role).bits = b;
}

void BitPolicy::set_taq(std::optional<QuantRole> role, DegreeBuckets b) {
  for (int x : b.bits) TORCH_CHECK(is_valid_bits(x), "BitPolicy: bad TAQ bits ", x);
  TORCH_CHECK(b.upper.empty() || b.upper.size() + 1 == b.bits.size(),
              "BitPolicy: TAQ needs one bound per bucket but the last");
  (role ? role_[*role] : all_).taq = std::move(b);
}

void BitPolicy::set_granularity(QuantRole role, Granularity g) { role_[role].gran = g; }
void BitPolicy::set_rounding(QuantRole role, Rounding r) { role_[role].round = r; }
void BitPolicy::set_column_scales(QuantRole role, bool on) { role_[role].cols = on; }
void BitPolicy::set_layer_rounding(int64_t layer, QuantRole role, Rounding r) {
  layer_clauses(layer, role).round = r;
}
void BitPolicy::set_layer_column_scales(int64_t layer, QuantRole role, bool on) {
  layer_clauses(layer, role).cols = on;
}

}  // namespace qgnn
