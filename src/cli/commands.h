#pragma once
// The `qgnn` subcommands: options parsed by main.cpp, work done by the library, output
// printed here. Each returns the process exit code.
#include <cstdint>
#include <string>
#include <vector>

namespace qgnn::cli {

struct CommonOptions {
  int64_t threads = 0;  // 0: libtorch's default
  bool quiet = false;
  std::string json;  // path of the JSON report, empty for none
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
  // Quantization-aware training (quant/qat.h): "" (off), "int8" or "int4".
  std::string qat;
  bool degree_quant = false;
  std::string observer;  // "": percentile with --degree-quant, else momentum
  double p_min = 0.0, p_max = 0.2;
};

struct EvalOptions {
  CommonOptions common;
  std::string checkpoint;
  std::string dataset;
};

struct QuantizeOptions {
  CommonOptions common;
  std::string checkpoint;
  std::string dataset;
  std::string policy = "auto";
  double max_drop = 0.5;
  double margin_sigmas = 1.0;    // auto: validation-noise margin, standard errors
  int64_t finetune_epochs = -1;  // -1: search_finetune_epochs for auto, else 100
  int64_t search_finetune_epochs = 20;
  int64_t measure = 10;   // N_mea
  int64_t sample = 2000;  // N_sample
  int64_t rounds = 5;     // N_iter
  bool random_search = false;
  std::string granularity = "taq";  // search space: uniform, cwq, lwq or taq (all)
  double max_avg_bits = 0;          // > 0: best accuracy within this memory instead
  int64_t seed = 0;
  std::string save;
  std::string csv;
};

// The main job: train (fp32), select bits automatically, fine-tune, report.
struct RunOptions {
  CommonOptions common;
  std::string dataset = "cora";
  std::string model = "gcn";
  std::string preset = "sgquant";
  std::string feature_norm = "auto";
  int64_t seed = 0;
  QuantizeOptions quantize;
};

// Full-graph inference at a precision: the float model, or a QAT checkpoint converted to
// an integer model (quant/int_model.h).
struct InferOptions {
  CommonOptions common;
  std::string checkpoint;
  std::string dataset;
  std::string precision = "fp32";  // fp32, int8 or int4
  int64_t repeat = 20;             // timed forwards after one warm-up
};

// Peak memory of full-graph inference: one child process per policy (commands_memory.cpp).
struct MemoryOptions {
  CommonOptions common;
  std::string dataset;
  // A trained fp32 checkpoint (train / quantize --save): its model, weights, feature
  // normalization and split. Empty: an untrained --model (sgquant preset).
  std::string checkpoint;
  std::string model = "gcn";
  std::string feature_norm = "auto";  // without a checkpoint
  bool check_fake = false;            // also run the fake-quantized model and compare predictions
  // "fp32" (dense float x, as PyG holds it), "csr" (fp32, x stored sparse), B (an integer:
  // "bits=B;emb.gran=row", every point) or a bit-policy spec with uniform layer-0 bits and
  // row ranges.
  std::vector<std::string> policies = {"fp32", "csr", "4", "2"};
  // Rows of x read (and packed) at a time. Chunks above glibc's 32 MB mmap threshold are
  // returned to the system when freed; smaller ones fragment the heap between packed parts.
  int64_t chunk_rows = 1024;
  int64_t seed = 0;     // split and weight seed
  int64_t repeats = 3;  // timed forwards after one warm-up
};

int run_info(const InfoOptions& o);
int run_memory(const MemoryOptions& o);
int run_quantize(const QuantizeOptions& o);
int run_main_job(const RunOptions& o);
int run_train(const TrainOptions& o);
int run_eval(const EvalOptions& o);
int run_infer(const InferOptions& o);

}  // namespace qgnn::cli
