#include "qgnn/train/trainer.h"

#include <torch/nn/functional.h>
#include <torch/optim/adam.h>

#include <chrono>
#include <limits>

#include "qgnn/util/timing.h"

namespace qgnn {

namespace {

// Restores a module's training flag when leaving a scope.
class TrainingModeGuard {
 public:
  TrainingModeGuard(torch::nn::Module& m, bool training) : m_(m), was_(m.is_training()) {
    m_.train(training);
  }
  ~TrainingModeGuard() { m_.train(was_); }

 private:
  torch::nn::Module& m_;
  bool was_;
};

}  // namespace

namespace {

// Percent of the masked rows whose class equals y; cls(idx) gives the classes of rows idx.
template <typename Cls>
double accuracy_on(const torch::Tensor& y, const torch::Tensor& mask, const Cls& cls) {
  auto idx = mask.nonzero().view({-1});
  if (idx.numel() == 0) return 0.0;
  const torch::Tensor classes = cls(idx);
  const auto correct = classes.eq(y.index_select(0, idx)).sum().item<int64_t>();
  return 100.0 * static_cast<double>(correct) / static_cast<double>(idx.numel());
}

}  // namespace

double prediction_accuracy(const torch::Tensor& pred, const torch::Tensor& y,
                           const torch::Tensor& mask) {
  return accuracy_on(y, mask, [&](const torch::Tensor& idx) { return pred.index_select(0, idx); });
}

double masked_accuracy(const torch::Tensor& logits, const torch::Tensor& y,
                       const torch::Tensor& mask) {
  // argmax of the masked rows only: evaluation runs this three times per epoch.
  return accuracy_on(
      y, mask, [&](const torch::Tensor& idx) { return logits.index_select(0, idx).argmax(1); });
}

TrainData::TrainData(GraphOperators o, NodeFeatures f, torch::Tensor labels, torch::Tensor train,
                     torch::Tensor val, torch::Tensor test)
    : ops(std::move(o)),
      x(std::move(f)),
      y(std::move(labels)),
      train_mask(std::move(train)),
      val_mask(std::move(val)),
      test_mask(std::move(test)) {
  const int64_t n = ops.num_nodes();
  TORCH_CHECK(x.num_rows() == n, "TrainData: features have ", x.num_rows(), " rows, graph has ", n,
              " nodes");
  for (const auto* m : {&y, &train_mask, &val_mask, &test_mask}) {
    TORCH_CHECK(m->dim() == 1 && m->size(0) == n, "TrainData: labels and masks must be [", n,
                "], got ", m->sizes());
  }
  train_index = train_mask.nonzero().view({-1});
  TORCH_CHECK(train_index.numel() > 0, "TrainData: the train mask is empty");
}

FeatureNorm resolve_feature_norm(const Dataset& d, FeatureNorm norm) {
  return norm != FeatureNorm::kAuto ? norm : auto_feature_norm(d);
}

bool model_normalizes_rows(FeatureNorm norm) {
  return norm == FeatureNorm::kRow || norm == FeatureNorm::kTfidf;
}

DatasetFamily dataset_family(const Dataset& d) {
  return d.has_public_split ? DatasetFamily::kCitation : DatasetFamily::kRandomSplit;
}

TrainData make_train_data(const Dataset& d, FeatureNorm norm) {
  norm = resolve_feature_norm(d, norm);
  // Row normalization happens inside the model (model_normalizes_rows), so the stored
  // (quantized) input keeps the values before it.
  at::Tensor x = norm == FeatureNorm::kRow     ? d.x.clone()
                 : norm == FeatureNorm::kTfidf ? tfidf_weight(d.x)
                                               : preprocess_features(d, norm);
  return TrainData(GraphOperators(d.graph), NodeFeatures::from_dense(x), d.y, d.train_mask,
                   d.val_mask, d.test_mask);
}

EvalResult evaluate(GnnModel& model, const TrainData& data) {
  TrainingModeGuard mode(model, /*training=*/false);
  torch::NoGradGuard no_grad;
  EvalResult r;
  const auto start = std::chrono::steady_clock::now();
  auto logits = model.forward(data.ops, data.x);
  r.infer_ms = ms_since(start);
  r.train_acc = masked_accuracy(logits, data.y, data.train_mask);
  r.val_acc = masked_accuracy(logits, data.y, data.val_mask);
  r.test_acc = masked_accuracy(logits, data.y, data.test_mask);
  auto val_idx = data.val_mask.nonzero().view({-1});
  r.val_pred = logits.index_select(0, val_idx).argmax(1);
  if (val_idx.numel() > 0) {
    r.val_loss = torch::nn::functional::cross_entropy(logits.index_select(0, val_idx),
                                                      data.y.index_select(0, val_idx))
                     .item<double>();
  }
  return r;
}

TrainResult train_full_batch(GnnModel& model, const TrainData& data, const OptimConfig& optim,
                             const ProgressCallback& progress) {
  TORCH_CHECK(optim.epochs >= 1, "train: epochs must be >= 1, got ", optim.epochs);
  TORCH_CHECK(optim.lr > 0, "train: lr must be > 0, got ", optim.lr);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  if (optim.weight_decay_first_layer_only) {
    groups.emplace_back(model.first_layer_parameters(),
                        std::make_unique<torch::optim::AdamOptions>(
                            torch::optim::AdamOptions(optim.lr).weight_decay(optim.weight_decay)));
    groups.emplace_back(model.other_parameters(),
                        std::make_unique<torch::optim::AdamOptions>(
                            torch::optim::AdamOptions(optim.lr).weight_decay(0.0)));
  } else {
    groups.emplace_back(model.parameters(),
                        std::make_unique<torch::optim::AdamOptions>(
                            torch::optim::AdamOptions(optim.lr).weight_decay(optim.weight_decay)));
  }
  torch::optim::Adam adam(groups, torch::optim::AdamOptions(optim.lr));

  const auto y_train = data.y.index_select(0, data.train_index);
  TrainResult result;
  result.best_val_acc = -1;
  result.best_val_loss = std::numeric_limits<double>::infinity();
  double min_val_loss = std::numeric_limits<double>::infinity();
  double max_val_acc = -1;
  int64_t bad_epochs = 0;
  std::vector<torch::Tensor> best_state;
  std::string best_hook_state;  // e.g. QAT's observed ranges, kept with the best weights
  auto params = model.parameters();

  for (int64_t epoch = 1; epoch <= optim.epochs; ++epoch) {
    model.train();
    const auto start = std::chrono::steady_clock::now();
    adam.zero_grad();
    auto logits = model.forward(data.ops, data.x);
    auto loss =
        torch::nn::functional::cross_entropy(logits.index_select(0, data.train_index), y_train);
    loss.backward();
    adam.step();
    result.epoch_ms.push_back(ms_since(start));
    const double train_loss = loss.item<double>();

    const EvalResult ev = evaluate(model, data);
    result.infer_ms.push_back(ev.infer_ms);
    result.epochs_run = epoch;
    if (ev.val_acc > result.best_val_acc ||
        (ev.val_acc == result.best_val_acc && ev.val_loss < result.best_val_loss)) {
      result.best_val_acc = ev.val_acc;
      result.best_val_loss = ev.val_loss;
      result.test_acc = ev.test_acc;
      result.best_epoch = epoch;
      torch::NoGradGuard no_grad;
      best_state.clear();
      for (const auto& p : params) best_state.push_back(p.detach().clone());
      if (model.quant_hook()) best_hook_state = model.quant_hook()->save_state();
    }
    if (ev.val_acc > max_val_acc || ev.val_loss < min_val_loss) {
      max_val_acc = std::max(max_val_acc, ev.val_acc);
      min_val_loss = std::min(min_val_loss, ev.val_loss);
      bad_epochs = 0;
    } else {
      ++bad_epochs;
    }
    if (progress) {
      EpochReport rep;
      rep.epoch = epoch;
      rep.max_epochs = optim.epochs;
      rep.train_loss = train_loss;
      rep.val_acc = ev.val_acc;
      rep.val_loss = ev.val_loss;
      rep.best_val_acc = result.best_val_acc;
      rep.test_acc_at_best = result.test_acc;
      progress(rep);
    }
    if (bad_epochs >= optim.patience) break;
  }
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < params.size(); ++i) params[i].copy_(best_state[i]);
  if (model.quant_hook()) model.quant_hook()->load_state(best_hook_state);
  model.eval();
  return result;
}

}  // namespace qgnn
