#pragma once
// The multi-seed training protocol (DESIGN.md): the same model trained with seeds
// seed .. seed + runs - 1, each on its own random split when the dataset has no public
// one, reported as mean and sample standard deviation of test accuracy at the
// best-validation epoch. Optionally quantization-aware (Degree-Quant, Tailor et al.
// ICLR 2021). What `qgnn train` runs.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "qgnn/io/dataset.h"
#include "qgnn/nn/models.h"
#include "qgnn/quant/qat.h"
#include "qgnn/train/checkpoint.h"
#include "qgnn/train/trainer.h"
#include "qgnn/util/export.h"

namespace qgnn {

struct TrainConfig {
  std::string dataset;                // bundled name (cora) or .npz path
  std::string model = "gcn";          // gcn, gat, agnn, sage or gin
  std::string preset = "kipf";        // kipf or sgquant (make_preset)
  std::string feature_norm = "auto";  // parse_feature_norm
  // Overrides of the preset; 0 keeps the preset's value.
  int64_t epochs = 0, patience = 0, hidden = 0;
  double lr = 0;
  // Quantization-aware training: "" (off), "int8" or "int4" (QatConfig::preset).
  std::string qat;
  // With qat: a policy replacing the preset's, in BitPolicy's grammar resolved for
  // QuantTarget::kInteger (e.g. "bits=4;w=8;agg.range=percentile"); "" keeps the preset.
  std::string qat_policy;
  bool degree_quant = false;  // protective masking by in-degree (needs qat)
  std::string observer;       // "": percentile with degree_quant (the paper's), else momentum
  double p_min = 0.0, p_max = 0.2;
};

// A TrainConfig resolved against its dataset, before any training.
struct TrainSetup {
  std::string dataset_path;               // resolved
  Dataset dataset;                        // split for the first seed
  FeatureNorm norm = FeatureNorm::kNone;  // kAuto resolved
  Preset preset;                          // with the config's overrides
  std::optional<QatConfig> qat;           // set when QAT is on
  std::string observer;                   // resolved observer name ("" without QAT)
};

// Reads the dataset (split with `first_seed` when it has no public one) and resolves the
// preset, feature normalization and QAT configuration.
// Throws c10::Error on a bad value (naming the field) or an unreadable dataset.
QGNN_API TrainSetup prepare_training(const TrainConfig& config, int64_t first_seed = 0);

// One run of the protocol.
struct TrainRun {
  int64_t seed = 0;
  TrainResult result;
  std::shared_ptr<GnnModel> model;  // best-validation weights (QAT: with its hook)
};

// A run before training: its data and untrained model.
struct RunStart {
  std::shared_ptr<TrainData> data;
  std::shared_ptr<GnnModel> model;  // with a QAT hook when setup.qat
};
// Re-splits a random-split dataset with `seed`, builds the training data, seeds libtorch
// and builds the model.
QGNN_API RunStart start_run(TrainSetup& setup, int64_t seed);

// start_run, then full-batch training. Deterministic for a fixed seed and thread count.
QGNN_API TrainRun train_run(TrainSetup& setup, int64_t seed, const ProgressCallback& progress = {});

// The checkpoint metadata of a model of `setup` started with `seed`: dataset, preset,
// feature normalization, split and training seeds (no accuracies).
QGNN_API CheckpointMeta setup_checkpoint_meta(const TrainSetup& setup, int64_t seed);
// The same with the run's accuracies and QAT ranges, for save_checkpoint.
QGNN_API CheckpointMeta run_checkpoint_meta(const TrainSetup& setup, const TrainRun& run);

// Mean and spread over the runs of a protocol.
struct TrainSummary {
  std::vector<int64_t> seeds, best_epochs;
  std::vector<double> test_acc, val_acc;  // percent, per run
  double test_acc_mean = 0, test_acc_std = 0, val_acc_mean = 0;
  double epoch_ms_median = 0, infer_ms_median = 0;  // over every epoch of every run
};

// Runs train_run for seeds first_seed .. first_seed + runs - 1. `on_run(index, run)` is
// called after each run, while its model is still held (the caller saves or drops it);
// `progress(index, epoch)` after each epoch. Returns the summary; runs >= 1.
QGNN_API TrainSummary
train_runs(TrainSetup& setup, int64_t runs, int64_t first_seed,
           const std::function<void(int64_t, const TrainRun&)>& on_run = {},
           const std::function<void(int64_t, const EpochReport&)>& progress = {});

}  // namespace qgnn
