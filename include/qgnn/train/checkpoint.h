#pragma once
// Model checkpoints: configuration plus weights in one file, written atomically.
#include <map>
#include <memory>
#include <string>

#include "qgnn/io/dataset.h"
#include "qgnn/nn/models.h"
#include "qgnn/util/export.h"

namespace qgnn {

// Everything `qgnn eval` needs to reproduce a run besides the dataset file itself.
struct CheckpointMeta {
  std::string dataset;               // dataset name the model was trained on
  std::string preset;                // "kipf", "sgquant", ...
  std::string feature_norm;          // preprocessing applied to x ("row", "binarize", "none")
  int64_t split_seed = -1;           // seed of the random split, -1 for the file's public split
  int64_t seed = 0;                  // training seed
  double val_acc = 0, test_acc = 0;  // percent, at the best-validation epoch
  std::map<std::string, std::string> extra;  // free-form, for later formats
};

// Writes config, meta and every parameter and buffer of `model` (libtorch archive
// format) to `path` via a temporary file in the same directory and rename(2), so an
// existing checkpoint is never left half-written. Throws c10::Error naming the path.
QGNN_API void save_checkpoint(const std::string& path, GnnModel& model, const CheckpointMeta& meta);

struct LoadedCheckpoint {
  std::shared_ptr<GnnModel> model;
  CheckpointMeta meta;
  std::string path;  // file it was read from
};

// Reads a checkpoint written by save_checkpoint and rebuilds the model in eval mode.
// Throws c10::Error, one line "load_checkpoint(<path>): <problem>", for a missing,
// truncated or corrupt file, a missing tensor, or a tensor whose shape differs from the
// config.
QGNN_API LoadedCheckpoint load_checkpoint(const std::string& path);

// Checks that a dataset fits a checkpoint's model: F (num_features) equals the model's
// in_channels and C (num_classes) its out_channels.
// Throws c10::Error "check_checkpoint_fits(<checkpoint path>): <dataset path>: x: has F
// features; the checkpoint expects F' (got F)" (or "num_classes: has C classes; ...").
QGNN_API void check_checkpoint_fits(const LoadedCheckpoint& ck, const Dataset& d);

}  // namespace qgnn
