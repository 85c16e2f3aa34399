#include "qgnn/pipeline/train.h"

#include <torch/torch.h>

#include "qgnn/util/stats.h"
#include "qgnn/util/threads.h"

namespace qgnn {

TrainSetup prepare_training(const TrainConfig& c, int64_t first_seed) {
  layer_type(c.model);  // throws for an unknown model, before the dataset is read
  const FeatureNorm norm_arg = parse_feature_norm(c.feature_norm);
  TORCH_CHECK(c.qat.empty() || c.qat == "int8" || c.qat == "int4",
              "train: qat must be int8 or int4, got '", c.qat, "'");
  TORCH_CHECK(!c.qat.empty() || !c.degree_quant, "train: degree_quant needs qat int8|int4");
  TORCH_CHECK(c.p_min <= c.p_max, "train: p_min (", c.p_min, ") must not exceed p_max (", c.p_max,
              ")");
  TrainSetup s;
  s.dataset_path = resolve_dataset_path(c.dataset);
  s.dataset = read_dataset(s.dataset_path, first_seed);
  s.norm = resolve_feature_norm(s.dataset, norm_arg);
  s.preset = make_preset(c.preset, c.model, s.dataset.num_features(), s.dataset.num_classes,
                         dataset_family(s.dataset));
  if (c.epochs > 0) s.preset.optim.epochs = c.epochs;
  if (c.patience > 0) s.preset.optim.patience = c.patience;
  if (c.hidden > 0) s.preset.model.hidden_channels = c.hidden;
  if (c.lr > 0) s.preset.optim.lr = c.lr;
  s.preset.model.row_normalize_input = model_normalizes_rows(s.norm);
  if (!c.qat.empty()) {
    // Degree-Quant is protective masking plus percentile ranges (Tailor et al., Sec. 4);
    // an explicit observer wins.
    s.observer = !c.observer.empty() ? c.observer : c.degree_quant ? "percentile" : "momentum";
    QatConfig q = QatConfig::preset(c.qat);
    if (!c.qat_policy.empty()) q.policy = BitPolicy::parse(c.qat_policy);
    q.observer = parse_observer(s.observer);
    q.degree_quant = c.degree_quant;
    q.p_min = c.p_min;
    q.p_max = c.p_max;
    QatHook check(q);  // refuses, before any training, what the integer kernels cannot do
    s.qat = q;
  }
  return s;
}

RunStart start_run(TrainSetup& s, int64_t seed) {
  if (!s.dataset.has_public_split) split_random(s.dataset, seed);
  RunStart r;
  r.data = std::make_shared<TrainData>(make_train_data(s.dataset, s.norm));
  manual_seed(static_cast<uint64_t>(seed));
  r.model = std::make_shared<GnnModel>(s.preset.model);
  if (s.qat) r.model->set_quant_hook(std::make_shared<QatHook>(*s.qat));
  return r;
}

TrainRun train_run(TrainSetup& s, int64_t seed, const ProgressCallback& progress) {
  const RunStart start = start_run(s, seed);
  TrainRun run;
  run.seed = seed;
  run.model = start.model;
  run.result = train_full_batch(*run.model, *start.data, s.preset.optim, progress);
  return run;
}

CheckpointMeta setup_checkpoint_meta(const TrainSetup& s, int64_t seed) {
  CheckpointMeta meta;
  meta.dataset = s.dataset.name;
  meta.preset = s.preset.name;
  meta.feature_norm = to_string(s.norm);
  meta.split_seed = s.dataset.has_public_split ? -1 : seed;
  meta.seed = seed;
  return meta;
}

CheckpointMeta run_checkpoint_meta(const TrainSetup& s, const TrainRun& run) {
  CheckpointMeta meta = setup_checkpoint_meta(s, run.seed);
  meta.val_acc = run.result.best_val_acc;
  meta.test_acc = run.result.test_acc;
  if (s.qat && run.model->quant_hook()) meta.extra["qat"] = run.model->quant_hook()->save_state();
  return meta;
}

TrainSummary train_runs(TrainSetup& s, int64_t runs, int64_t first_seed,
                        const std::function<void(int64_t, const TrainRun&)>& on_run,
                        const std::function<void(int64_t, const EpochReport&)>& progress) {
  TORCH_CHECK(runs >= 1, "train: runs must be >= 1, got ", runs);
  TrainSummary sum;
  std::vector<double> epoch_ms, infer_ms;
  for (int64_t r = 0; r < runs; ++r) {
    ProgressCallback cb;
    if (progress) cb = [&](const EpochReport& e) { progress(r, e); };
    TrainRun run = train_run(s, first_seed + r, cb);
    const TrainResult& res = run.result;
    sum.seeds.push_back(run.seed);
    sum.best_epochs.push_back(res.best_epoch);
    sum.test_acc.push_back(res.test_acc);
    sum.val_acc.push_back(res.best_val_acc);
    epoch_ms.insert(epoch_ms.end(), res.epoch_ms.begin(), res.epoch_ms.end());
    infer_ms.insert(infer_ms.end(), res.infer_ms.begin(), res.infer_ms.end());
    if (on_run) on_run(r, run);
  }
  sum.test_acc_mean = mean(sum.test_acc);
  sum.test_acc_std = sample_stddev(sum.test_acc);
  sum.val_acc_mean = mean(sum.val_acc);
  sum.epoch_ms_median = median(epoch_ms);
  sum.infer_ms_median = median(infer_ms);
  return sum;
}

}  // namespace qgnn
