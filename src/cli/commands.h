#pragma once
// The `qgnn` subcommands: options parsed by main.cpp, work done by the library, output
// printed here. Each returns the process exit code.
#include <cstdint>
#include <string>

namespace qgnn::cli {

struct CommonOptions {
  int64_t threads = 0;  // 0: libtorch's default
  bool quiet = false;
  std::string json;     // path of the JSON report, empty for none
};

struct InfoOptions {
  CommonOptions common;
  std::string dataset;
};

struct TrainOptions {
  CommonOptions common;
  std::string dataset;
  std::string model;
  std::string preset = "kipf";
  std::string feature_norm = "auto";
  int64_t runs = 1;
  int64_t seed = 0;
  int64_t epochs = 0;    // 0: the preset's
  int64_t patience = 0;  // 0: the preset's
  int64_t hidden = 0;    // 0: the preset's
  double lr = 0;         // 0: the preset's
  std::string save;
};

struct EvalOptions {
  CommonOptions common;
  std::string checkpoint;
  std::string dataset;
};

int run_info(const InfoOptions& o);
int run_train(const TrainOptions& o);
int run_eval(const EvalOptions& o);

}  // namespace qgnn::cli
