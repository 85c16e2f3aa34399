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
  }
  return "?";
}

bool is_role_name(const std::string& s) {
  return s == "emb" || s == "att" || s == "w" || s == "lin" || s == "agg" || s == "hid";
}

// Components that TAQ and range granularity apply to (SGQuant's packed storage).
bool is_storage_role(const std::string& s) { return s == "emb" || s == "att"; }

const char* gran_name(Granularity g) {
  switch (g) {
    case Granularity::kTensor:
      return "tensor";
    case Granularity::kBucket:
      return "bucket";
    case Granularity::kRow:
      return "row";
  }
  return "?";
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

  int bits(const std::string& s) const {
    const int64_t b = integer(s, "bits (1-8, 16 or 32)");
    if (b > 32 || !is_valid_bits(static_cast<int>(b))) {  // no int truncation: 2^32 + 4 != 4
      fail("bits must be 1-8, 16 or 32, got " + s);
    }
    return static_cast<int>(b);
  }

  QuantRole role(const std::string& s) const {
    if (s == "emb") return QuantRole::kEmbedding;
    if (s == "att") return QuantRole::kAttention;
    if (s == "w") return QuantRole::kWeight;
    if (s == "lin") return QuantRole::kLinear;
    if (s == "agg") return QuantRole::kAggregate;
    if (s == "hid") return QuantRole::kHidden;
    fail("unknown component '" + s + "' (emb, att, w, lin, agg or hid)");
  }

  Granularity granularity(const std::string& s) const {
    if (s == "row") return Granularity::kRow;
    if (s == "tensor") return Granularity::kTensor;
    if (s == "bucket") return Granularity::kBucket;
    fail("unknown granularity '" + s + "' (row, tensor or bucket)");
  }

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
    if (key == "bits") {
      p.default_bits_ = ps.bits(value);
    } else if (is_role_name(key)) {
      p.role_bits_[ps.role(key)] = ps.bits(value);
    } else if (key == "taq") {
      p.taq_all_ = ps.buckets(value);
    } else if (key == "gran") {
      const Granularity g = ps.granularity(value);
      p.gran_[QuantRole::kEmbedding] = g;
      p.gran_[QuantRole::kAttention] = g;
    } else if (key == "round") {
      const Rounding r = ps.rounding(value);
      p.round_[QuantRole::kEmbedding] = r;
      p.round_[QuantRole::kAttention] = r;
    } else if (key == "cols") {
      const bool on = ps.on_off(value);
      p.cols_[QuantRole::kEmbedding] = on;
      p.cols_[QuantRole::kAttention] = on;
    } else if (parts.size() == 2 && is_storage_role(parts[0]) && parts[1] == "round") {
      p.round_[ps.role(parts[0])] = ps.rounding(value);
    } else if (parts.size() == 2 && is_storage_role(parts[0]) && parts[1] == "cols") {
      p.cols_[ps.role(parts[0])] = ps.on_off(value);
    } else if (parts.size() == 2 && is_storage_role(parts[0]) && parts[1] == "taq") {
      p.taq_role_[ps.role(parts[0])] = ps.buckets(value);
    } else if (parts.size() == 2 && is_storage_role(parts[0]) && parts[1] == "gran") {
      p.gran_[ps.role(parts[0])] = ps.granularity(value);
    } else if (parts.size() == 3 && parts[0].rfind("layer", 0) == 0 && is_storage_role(parts[1]) &&
               (parts[2] == "round" || parts[2] == "cols")) {
      const int64_t layer = ps.integer(parts[0].substr(5), "a layer number after 'layer'");
      const auto key = std::make_pair(layer, ps.role(parts[1]));
      if (parts[2] == "round") {
        p.layer_round_[key] = ps.rounding(value);
      } else {
        p.layer_cols_[key] = ps.on_off(value);
      }
    } else if (parts.size() == 2 && parts[0].rfind("layer", 0) == 0) {
      const int64_t layer = ps.integer(parts[0].substr(5), "a layer number after 'layer'");
      p.layer_bits_[{layer, ps.role(parts[1])}] = ps.bits(value);
    } else {
      ps.fail("unknown key '" + key + "'");
    }
  }
  return p;
}

std::string BitPolicy::to_string() const {
  std::vector<std::string> c;
  if (default_bits_ != 32) c.push_back("bits=" + std::to_string(default_bits_));
  for (const auto& [role, b] : role_bits_)
    c.push_back(std::string(role_name(role)) + "=" + std::to_string(b));
  for (const auto& [role, g] : gran_) {
    c.push_back(std::string(role_name(role)) + ".gran=" + gran_name(g));
  }
  for (const auto& [role, r] : round_) {
    if (r != Rounding::kNearest)
      c.push_back(std::string(role_name(role)) + ".round=" + qgnn::to_string(r));
  }
  for (const auto& [role, on] : cols_) {
    if (on) c.push_back(std::string(role_name(role)) + ".cols=on");
  }
  if (taq_all_) c.push_back("taq=" + buckets_to_string(*taq_all_));
  for (const auto& [role, b] : taq_role_) {
    c.push_back(std::string(role_name(role)) + ".taq=" + buckets_to_string(b));
  }
  for (const auto& [key, b] : layer_bits_) {
    c.push_back("layer" + std::to_string(key.first) + "." + role_name(key.second) + "=" +
                std::to_string(b));
  }
  // Layer overrides of rounding and column scales print when they differ from the role's.
  for (const auto& [key, r] : layer_round_) {
    if (r != role_rounding(key.second)) {
      c.push_back("layer" + std::to_string(key.first) + "." + role_name(key.second) +
                  ".round=" + qgnn::to_string(r));
    }
  }
  for (const auto& [key, on] : layer_cols_) {
    if (on != role_column_scales(key.second)) {
      c.push_back("layer" + std::to_string(key.first) + "." + role_name(key.second) +
                  ".cols=" + (on ? "on" : "off"));
    }
  }
  if (c.empty()) return "fp32";
  std::string out;
  for (size_t i = 0; i < c.size(); ++i) out += (i ? ";" : "") + c[i];
  return out;
}

int BitPolicy::bits(const QuantPoint& p) const {
  if (auto it = layer_bits_.find({p.layer, p.role}); it != layer_bits_.end()) return it->second;
  if (auto it = role_bits_.find(p.role); it != role_bits_.end()) return it->second;
  return default_bits_;
}

std::optional<DegreeBuckets> BitPolicy::buckets(QuantRole role) const {
  if (auto it = taq_role_.find(role); it != taq_role_.end()) return it->second;
  return taq_all_;
}

Granularity BitPolicy::granularity(QuantRole role) const {
  if (auto it = gran_.find(role); it != gran_.end()) return it->second;
  return role == QuantRole::kEmbedding ? Granularity::kRow : Granularity::kTensor;
}

bool BitPolicy::has_storage_options() const {
  bool any = taq_all_.has_value() || !taq_role_.empty() || !gran_.empty() ||
             !layer_round_.empty() || !layer_cols_.empty();
  for (const auto& [role, r] : round_) any = any || r != Rounding::kNearest;
  for (const auto& [role, on] : cols_) any = any || on;
  return any;
}

Rounding BitPolicy::role_rounding(QuantRole role) const {
  auto it = round_.find(role);
  return it != round_.end() ? it->second : Rounding::kNearest;
}

bool BitPolicy::role_column_scales(QuantRole role) const {
  auto it = cols_.find(role);
  return it != cols_.end() && it->second;
}

Rounding BitPolicy::rounding(const QuantPoint& p) const {
  auto it = layer_round_.find({p.layer, p.role});
  return it != layer_round_.end() ? it->second : role_rounding(p.role);
}

bool BitPolicy::column_scales(const QuantPoint& p) const {
  auto it = layer_cols_.find({p.layer, p.role});
  return it != layer_cols_.end() ? it->second : role_column_scales(p.role);
}

void BitPolicy::set_rounding(QuantRole role, Rounding r) { round_[role] = r; }
void BitPolicy::set_column_scales(QuantRole role, bool on) { cols_[role] = on; }
void BitPolicy::set_layer_rounding(int64_t layer, QuantRole role, Rounding r) {
  TORCH_CHECK(layer >= 0, "BitPolicy: layer must be >= 0, got ", layer);
  layer_round_[{layer, role}] = r;
}
void BitPolicy::set_layer_column_scales(int64_t layer, QuantRole role, bool on) {
  TORCH_CHECK(layer >= 0, "BitPolicy: layer must be >= 0, got ", layer);
  layer_cols_[{layer, role}] = on;
}

bool BitPolicy::is_full_precision() const {
  auto all32 = [](const auto& m) {
    return std::all_of(m.begin(), m.end(), [](const auto& kv) { return kv.second == 32; });
  };
  return default_bits_ == 32 && all32(role_bits_) && all32(layer_bits_);
}

RowBits BitPolicy::row_bits(const QuantPoint& p, const at::Tensor& row_degree,
                            const at::Tensor& population) const {
  const int b = bits(p);
  const auto taq = buckets(p.role);
  if (!taq || b == 32 || b == 16) return RowBits::uniform(b);
  TORCH_CHECK(row_degree.dim() == 1 && row_degree.scalar_type() == at::kLong,
              "BitPolicy::row_bits: row_degree must be [R] int64, got ", row_degree.sizes());
  std::vector<int64_t> upper = taq->upper;
  const int64_t groups = static_cast<int64_t>(taq->bits.size());
  if (taq->quantile()) {
    // Equal-count buckets: bound g is the (g+1)/G quantile of the degree population.
    auto sorted = std::get<0>((population.defined() ? population : row_degree).sort());
    const int64_t r = sorted.numel();
    for (int64_t g = 0; g + 1 < groups && r > 0; ++g) {
      const int64_t idx = std::min(r - 1, (g + 1) * r / groups);
      upper.push_back(sorted[idx].item<int64_t>());
    }
  }
  RowBits rb;
  rb.group_bits.resize(groups);
  for (int64_t g = 0; g < groups; ++g) rb.group_bits[g] = std::min(b, taq->bits[g]);
  // Group of a row: the first bucket whose bound holds, else the last.
  auto bounds = at::tensor(upper.empty() ? std::vector<int64_t>{} : upper, at::kLong);
  at::Tensor group = bounds.numel() == 0 ? at::zeros_like(row_degree)
                                         : at::searchsorted(bounds, row_degree, /*out_int32=*/false,
                                                            /*right=*/false);
  rb.row_group = group.clamp_max(groups - 1).to(at::kByte);
  return rb;
}

void BitPolicy::set_default_bits(int b) {
  TORCH_CHECK(is_valid_bits(b), "BitPolicy: bits must be 1-8, 16 or 32, got ", b);
  default_bits_ = b;
}

void BitPolicy::set_role_bits(QuantRole role, int b) {
  TORCH_CHECK(is_valid_bits(b), "BitPolicy: bits must be 1-8, 16 or 32, got ", b);
  role_bits_[role] = b;
}

void BitPolicy::set_layer_bits(int64_t layer, QuantRole role, int b) {
  TORCH_CHECK(is_valid_bits(b), "BitPolicy: bits must be 1-8, 16 or 32, got ", b);
  TORCH_CHECK(layer >= 0, "BitPolicy: layer must be >= 0, got ", layer);
  layer_bits_[{layer, role}] = b;
}

void BitPolicy::set_taq(std::optional<QuantRole> role, DegreeBuckets b) {
  for (int x : b.bits) TORCH_CHECK(is_valid_bits(x), "BitPolicy: bad TAQ bits ", x);
  TORCH_CHECK(b.upper.empty() || b.upper.size() + 1 == b.bits.size(),
              "BitPolicy: TAQ needs one bound per bucket but the last");
  if (role) {
    taq_role_[*role] = std::move(b);
  } else {
    taq_all_ = std::move(b);
  }
}

void BitPolicy::set_granularity(QuantRole role, Granularity g) { gran_[role] = g; }

}  // namespace qgnn
