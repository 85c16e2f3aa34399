#include "cli/options.h"

#include <c10/util/Exception.h>

#include <cmath>
#include <cstdio>

#include "qgnn/nn/layer.h"
#include "qgnn/quant/bit_policy.h"

namespace qgnn::cli {

std::string number_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// Validators whose messages read "<flag> must be >= 0, got -1" once main() joins them
// with the flag name (CLI11 reports "<flag>: <message>").
CLI::Validator number_in(double lo, double hi, bool integer) {
  return CLI::Validator(
      [lo, hi, integer](std::string& s) -> std::string {
        double v = 0;
        size_t used = 0;
        try {
          v = std::stod(s, &used);
        } catch (const std::exception&) {
          used = 0;
        }
        if (used == 0 || used != s.size() || !std::isfinite(v) || (integer && v != std::floor(v))) {
          return std::string("must be ") + (integer ? "an integer" : "a number") + ", got '" + s +
                 "'";
        }
        if (v < lo || v > hi) {
          if (hi == HUGE_VAL) return "must be >= " + number_text(lo) + ", got " + s;
          return "must be in [" + number_text(lo) + ", " + number_text(hi) + "], got " + s;
        }
        return "";
      },
      "", "number_in");
}
CLI::Validator at_least(double lo) { return number_in(lo, HUGE_VAL, false); }
CLI::Validator positive() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        std::string copy = s;
        const std::string err = number_in(0, HUGE_VAL, false)(copy);
        if (!err.empty()) return err.rfind("must be >=", 0) == 0 ? "must be > 0, got " + s : err;
        return std::stod(s) > 0 ? "" : "must be > 0, got " + s;
      },
      "", "positive");
}
CLI::Validator integer_at_least(double lo) { return number_in(lo, HUGE_VAL, true); }

CLI::Validator one_of(std::vector<std::string> choices) {
  std::string list;
  for (const auto& c : choices) list += (list.empty() ? "" : ", ") + c;
  return CLI::Validator(
      [choices, list](std::string& s) -> std::string {
        for (const auto& c : choices) {
          if (s == c) return "";
        }
        return "must be one of " + list + ", got '" + s + "'";
      },
      "", "one_of");
}

// The registered layer types (libqgnn registers them before this initialiser runs).
const std::vector<std::string> kModels = layer_type_names();

std::string model_choices() {
  std::string s;
  for (size_t i = 0; i < kModels.size(); ++i) {
    s += (i == 0 ? "" : i + 1 == kModels.size() ? " or " : ", ") + kModels[i];
  }
  return s;
}
const std::vector<std::string> kPresets = {"kipf", "sgquant"};
const std::vector<std::string> kFeatureNorms = {"auto", "none", "row", "binarize", "tfidf"};
const char* const kFeatureNormHelp =
    "auto (row with a public split, binarize for counts, none for continuous features), "
    "none, row, binarize or tfidf (tf x log(N / df), then row-normalized)";

// A bit-policy spec (include/qgnn/quant/bit_policy.h), or "auto" where allowed.
CLI::Validator policy_spec(bool allow_auto) {
  return CLI::Validator(
      [allow_auto](std::string& s) -> std::string {
        if (allow_auto && s == "auto") return "";
        try {
          qgnn::BitPolicy::parse(s);
        } catch (const c10::Error& e) {
          const std::string msg = e.what_without_backtrace();
          return "is not a valid policy: " + msg.substr(0, msg.find('\n'));
        }
        return "";
      },
      "", "policy_spec");
}

void add_common(CLI::App* app, CommonOptions& c, bool with_json) {
  app->add_option("--threads", c.threads, "intra-op threads (default: all cores)")
      ->check(integer_at_least(0));
  app->add_flag("-q,--quiet", c.quiet, "no progress output");
  if (with_json) app->add_option("--json", c.json, "write a JSON report to this file");
}

}  // namespace qgnn::cli
