#pragma once
// Full-batch node-classification training with early stopping on validation.
#include <torch/types.h>

#include <functional>
#include <string>
#include <vector>

#include "qgnn/io/dataset.h"
#include "qgnn/nn/models.h"
#include "qgnn/util/export.h"

namespace qgnn {

// Accuracy in percent of argmax(logits[mask]) == y[mask]; 0 for an empty mask.
//   logits: [N, C] float32; y: [N] int64; mask: [N] bool.
QGNN_API double masked_accuracy(const torch::Tensor& logits, const torch::Tensor& y,
                                const torch::Tensor& mask);
// Accuracy in percent of pred[mask] == y[mask]; 0 for an empty mask.
//   pred, y: [N] int64 (class per node); mask: [N] bool.
QGNN_API double prediction_accuracy(const torch::Tensor& pred, const torch::Tensor& y,
                                    const torch::Tensor& mask);

// What one epoch reports to a progress callback.
struct EpochReport {
  int64_t epoch = 0;  // 1-based
  int64_t max_epochs = 0;
  double train_loss = 0;
  double val_acc = 0, val_loss = 0;
  double best_val_acc = 0;
  double test_acc_at_best = 0;
};
using ProgressCallback = std::function<void(const EpochReport&)>;

// The labelled problem a model trains on: operators, features, labels and masks.
struct QGNN_API TrainData {
  GraphOperators ops;
  NodeFeatures x;
  torch::Tensor y;                                // [N] int64
  torch::Tensor train_mask, val_mask, test_mask;  // [N] bool
  torch::Tensor train_index;                      // [n_train] int64 (derived)
  TrainData(GraphOperators o, NodeFeatures f, torch::Tensor labels, torch::Tensor train,
            torch::Tensor val, torch::Tensor test);
};

// kAuto resolved for a dataset (auto_feature_norm: kRow with a public split, kBinarize
// for counts, kNone for continuous features); other values are returned as they are.
QGNN_API FeatureNorm resolve_feature_norm(const Dataset& d, FeatureNorm norm);
// True when `norm` ends with a row normalization (kRow, kTfidf), which make_train_data
// leaves to the model (ModelConfig::row_normalize_input) so that the stored, quantized
// input holds the values before it.
QGNN_API bool model_normalizes_rows(FeatureNorm norm);

// Benchmark family of a dataset: kCitation when it has a public (Planetoid) split,
// else kRandomSplit (Shchur et al.'s setting); selects preset variants (make_preset).
QGNN_API DatasetFamily dataset_family(const Dataset& d);

// The training problem for a dataset and its current masks. Features are preprocessed by
// `norm`, except its row normalization (kRow, kTfidf: model_normalizes_rows), which
// models apply themselves (ModelConfig::row_normalize_input) so that the stored input
// holds the values before it; callers set that flag when model_normalizes_rows(norm).
// Features are stored sparse when at most 40% are non-zero (quant/node_features.h).
QGNN_API TrainData make_train_data(const Dataset& d, FeatureNorm norm);

struct EvalResult {
  double train_acc = 0, val_acc = 0, test_acc = 0;  // percent
  double val_loss = 0;
  double infer_ms = 0;     // one full-graph forward, eval mode, no autograd
  torch::Tensor val_pred;  // [n_val] int64: argmax class of each validation node, in order
};

struct TrainResult {
  double best_val_acc = 0;  // percent
  double test_acc = 0;      // percent, at the best-validation epoch
  double best_val_loss = 0;
  int64_t best_epoch = 0;  // 1-based
  int64_t epochs_run = 0;
  std::vector<double> epoch_ms;  // zero_grad + forward + loss + backward + step
  std::vector<double> infer_ms;  // one eval-mode forward per epoch
};

// Evaluates `model` in eval mode without autograd (restores its training flag).
QGNN_API EvalResult evaluate(GnnModel& model, const TrainData& data);

// Trains with Adam (L2 weight decay as torch::optim::Adam; first layer only when the
// config says so) and cross-entropy on the train mask. After each epoch it evaluates;
// the best epoch is the highest validation accuracy (ties: lower validation loss), and
// training stops after `patience` epochs improving neither. The model ends holding the
// parameters of the best epoch. Deterministic for a fixed seed (set before construction
// of the model) and thread count.
QGNN_API TrainResult train_full_batch(GnnModel& model, const TrainData& data,
                                      const OptimConfig& optim,
                                      const ProgressCallback& progress = {});

}  // namespace qgnn
