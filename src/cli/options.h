#pragma once
// Option helpers shared by the `qgnn` subcommands: the common flags and validators whose
// messages read "<flag> must be >= 0, got -1" once main() joins them with the flag name.
#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

namespace qgnn::cli {

struct CommonOptions {
  int64_t threads = 0;  // 0: libtorch's default
  bool quiet = false;
  std::string json;  // path of the JSON report, empty for none
};

// --threads, -q/--quiet and (with_json) --json.
void add_common(CLI::App* app, CommonOptions& c, bool with_json = true);

// "%g" of v.
std::string number_text(double v);

CLI::Validator number_in(double lo, double hi, bool integer);
CLI::Validator at_least(double lo);
CLI::Validator positive();
CLI::Validator integer_at_least(double lo);
CLI::Validator one_of(std::vector<std::string> choices);
// A bit-policy spec (include/qgnn/quant/bit_policy.h), or "auto" where allowed.
CLI::Validator policy_spec(bool allow_auto);

extern const std::vector<std::string> kModels;
// "agnn, gat, gcn, gin or sage": the registered layer types, for help texts.
std::string model_choices();
extern const std::vector<std::string> kPresets;
extern const std::vector<std::string> kFeatureNorms;
extern const char* const kFeatureNormHelp;

}  // namespace qgnn::cli
