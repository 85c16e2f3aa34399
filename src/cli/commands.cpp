#include "cli/commands.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <numeric>
#include <sstream>

#include "qgnn/io/dataset.h"
#include "qgnn/io/text_file.h"
#include "qgnn/nn/models.h"
#include "qgnn/train/checkpoint.h"
#include "qgnn/train/trainer.h"
#include "qgnn/util/threads.h"

namespace qgnn::cli {

namespace {

std::string feature_norm_name(FeatureNorm n) {
  switch (n) {
    case FeatureNorm::kNone:
      return "none";
    case FeatureNorm::kRow:
      return "row";
    case FeatureNorm::kBinarize:
      return "binarize";
    case FeatureNorm::kAuto:
      return "auto";
  }
  return "?";
}


double mean(const std::vector<double>& v) {
  return v.empty() ? 0.0 : std::accumulate(v.begin(), v.end(), 0.0) / v.size();
}

// Sample standard deviation (n - 1); 0 for fewer than two values.
double stddev(const std::vector<double>& v) {
  if (v.size() < 2) return 0.0;
  const double m = mean(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / (v.size() - 1));
}

double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::string fmt(double v, int digits = 2) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

bool show_progress(const CommonOptions& c) { return !c.quiet && ::isatty(STDERR_FILENO); }

void write_json(const CommonOptions& c, const nlohmann::json& j) {
  if (!c.json.empty()) write_file_atomic(c.json, j.dump(2) + "\n");
}

void apply_threads(const CommonOptions& c) { set_num_threads(c.threads); }

int64_t count(const torch::Tensor& mask) { return mask.sum().item<int64_t>(); }

}  // namespace

int run_info(const InfoOptions& o) {
  apply_threads(o.common);
  const std::string path = resolve_dataset_path(o.dataset);
  Dataset d = read_dataset(path);
  const auto deg = d.graph.in_degree().to(torch::kFloat64);
  const int64_t nnz = d.x.ne(0).sum().item<int64_t>();
  const double density = static_cast<double>(nnz) / std::max<int64_t>(1, d.x.numel());
  const int64_t isolated = (d.graph.in_degree().eq(0) & d.graph.out_degree().eq(0)).sum()
                               .item<int64_t>();
  const int64_t self_loops =
      d.graph.row_ids().eq(d.graph.indices()).sum().item<int64_t>();
  std::cout << "dataset      " << d.name << "  (" << path << ")\n"
            << "nodes        " << d.num_nodes() << "\n"
            << "edges        " << d.graph.num_edges() << " (directed entries)\n"
            << "features     " << d.num_features() << "  (" << fmt(100 * density)
            << "% non-zero)\n"
            << "classes      " << d.num_classes << "\n"
            << "in-degree    mean " << fmt(deg.mean().item<double>()) << ", max "
            << deg.max().item<double>() << ", isolated nodes " << isolated << ", self loops "
            << self_loops << "\n"
            << "split        " << (d.has_public_split ? "public" : "random (seed 0)") << ": "
            << count(d.train_mask) << " train / " << count(d.val_mask) << " val / "
            << count(d.test_mask) << " test\n";
  write_json(o.common, {{"dataset", d.name},
                        {"path", path},
                        {"num_nodes", d.num_nodes()},
                        {"num_edges", d.graph.num_edges()},
                        {"num_features", d.num_features()},
                        {"feature_density", density},
                        {"num_classes", d.num_classes},
                        {"max_in_degree", deg.max().item<double>()},
                        {"isolated_nodes", isolated},
                        {"public_split", d.has_public_split},
                        {"train", count(d.train_mask)},
                        {"val", count(d.val_mask)},
                        {"test", count(d.test_mask)}});
  return 0;
}

int run_train(const TrainOptions& o) {
  apply_threads(o.common);
  const ModelKind kind = parse_model_kind(o.model);
  const FeatureNorm norm_arg = parse_feature_norm(o.feature_norm);
  const std::string path = resolve_dataset_path(o.dataset);
  Dataset d = read_dataset(path, o.seed);
  const FeatureNorm norm = resolve_feature_norm(d, norm_arg);
  Preset preset = make_preset(o.preset, kind, d.num_features(), d.num_classes,
                              d.has_public_split ? DatasetFamily::kCitation
                                                 : DatasetFamily::kRandomSplit);
  if (o.epochs > 0) preset.optim.epochs = o.epochs;
  if (o.patience > 0) preset.optim.patience = o.patience;
  if (o.hidden > 0) preset.model.hidden_channels = o.hidden;
  if (o.lr > 0) preset.optim.lr = o.lr;
  preset.model.row_normalize_input = norm == FeatureNorm::kRow;

  const bool progress = show_progress(o.common);
  std::vector<double> test_acc, val_acc, epoch_ms, infer_ms;
  std::vector<int64_t> seeds, best_epochs;
  std::cout << "dataset " << d.name << ", model " << o.model << ", preset " << preset.name
            << ", features " << feature_norm_name(norm) << ", threads " << get_num_threads()
            << "\n";
  std::cout << "run  seed  best_epoch  epochs  val_acc  test_acc  epoch_ms  infer_ms\n";
  for (int64_t r = 0; r < o.runs; ++r) {
    const int64_t seed = o.seed + r;
    if (!d.has_public_split) split_random(d, seed);
    TrainData data = make_train_data(d, norm);
    manual_seed(static_cast<uint64_t>(seed));
    GnnModel model(preset.model);
    ProgressCallback cb;
    if (progress) {
      cb = [&](const EpochReport& e) {
        std::fprintf(stderr, "\r  run %lld/%lld  epoch %lld/%lld  loss %.4f  val %.2f  best %.2f ",
                     static_cast<long long>(r + 1), static_cast<long long>(o.runs),
                     static_cast<long long>(e.epoch), static_cast<long long>(e.max_epochs),
                     e.train_loss, e.val_acc, e.best_val_acc);
        std::fflush(stderr);
      };
    }
    TrainResult res = train_full_batch(model, data, preset.optim, cb);
    if (progress) std::fprintf(stderr, "\r\033[K");
    const double run_epoch_ms = median(res.epoch_ms), run_infer_ms = median(res.infer_ms);
    test_acc.push_back(res.test_acc);
    val_acc.push_back(res.best_val_acc);
    seeds.push_back(seed);
    best_epochs.push_back(res.best_epoch);
    epoch_ms.insert(epoch_ms.end(), res.epoch_ms.begin(), res.epoch_ms.end());
    infer_ms.insert(infer_ms.end(), res.infer_ms.begin(), res.infer_ms.end());
    std::printf("%3lld  %4lld  %10lld  %6lld  %7s  %8s  %8s  %8s\n", static_cast<long long>(r),
                static_cast<long long>(seed), static_cast<long long>(res.best_epoch),
                static_cast<long long>(res.epochs_run), fmt(res.best_val_acc).c_str(),
                fmt(res.test_acc).c_str(), fmt(run_epoch_ms, 3).c_str(),
                fmt(run_infer_ms, 3).c_str());
    std::fflush(stdout);
    if (r == 0 && !o.save.empty()) {
      CheckpointMeta meta;
      meta.dataset = d.name;
      meta.preset = preset.name;
      meta.feature_norm = feature_norm_name(norm);
      meta.split_seed = d.has_public_split ? -1 : seed;
      meta.seed = seed;
      meta.val_acc = res.best_val_acc;
      meta.test_acc = res.test_acc;
      save_checkpoint(o.save, model, meta);
    }
  }
  std::cout << "test accuracy " << fmt(mean(test_acc)) << " +- " << fmt(stddev(test_acc))
            << " % over " << o.runs << " run(s); val " << fmt(mean(val_acc)) << " %; epoch "
            << fmt(median(epoch_ms), 3) << " ms, inference " << fmt(median(infer_ms), 3)
            << " ms (medians)\n";
  if (!o.save.empty()) std::cout << "saved " << o.save << "\n";
  write_json(o.common, {{"dataset", d.name},
                        {"model", o.model},
                        {"preset", preset.name},
                        {"feature_norm", feature_norm_name(norm)},
                        {"split", d.has_public_split ? "public" : "random"},
                        {"runs", o.runs},
                        {"seeds", seeds},
                        {"test_acc", test_acc},
                        {"val_acc", val_acc},
                        {"best_epoch", best_epochs},
                        {"test_acc_mean", mean(test_acc)},
                        {"test_acc_std", stddev(test_acc)},
                        {"val_acc_mean", mean(val_acc)},
                        {"epoch_ms_median", median(epoch_ms)},
                        {"infer_ms_median", median(infer_ms)},
                        {"threads", get_num_threads()},
                        {"model_config", nlohmann::json::parse(preset.model.to_json())},
                        {"lr", preset.optim.lr},
                        {"weight_decay", preset.optim.weight_decay},
                        {"epochs", preset.optim.epochs},
                        {"patience", preset.optim.patience}});
  return 0;
}

int run_eval(const EvalOptions& o) {
  apply_threads(o.common);
  LoadedCheckpoint ck = load_checkpoint(o.checkpoint);
  const std::string path = resolve_dataset_path(o.dataset);
  Dataset d = read_dataset(path, ck.meta.split_seed >= 0 ? ck.meta.split_seed : 0);
  const ModelConfig& cfg = ck.model->config();
  TORCH_CHECK(d.num_features() == cfg.in_channels && d.num_classes == cfg.out_channels, "eval: ",
              path, " has ", d.num_features(), " features and ", d.num_classes,
              " classes; the checkpoint expects ", cfg.in_channels, " and ", cfg.out_channels);
  const FeatureNorm norm = parse_feature_norm(ck.meta.feature_norm);
  TrainData data = make_train_data(d, norm);
  EvalResult r = evaluate(*ck.model, data);
  std::vector<double> times;
  for (int i = 0; i < 10; ++i) times.push_back(evaluate(*ck.model, data).infer_ms);
  std::cout << "checkpoint " << o.checkpoint << ": " << to_string(cfg.kind) << " on " << d.name
            << " (trained on " << ck.meta.dataset << ", preset " << ck.meta.preset << ")\n"
            << "val_acc " << fmt(r.val_acc) << "  test_acc " << fmt(r.test_acc)
            << "  (at save: val " << fmt(ck.meta.val_acc) << ", test " << fmt(ck.meta.test_acc)
            << ")  infer " << fmt(median(times), 3) << " ms\n";
  write_json(o.common, {{"dataset", d.name},
                        {"model", to_string(cfg.kind)},
                        {"preset", ck.meta.preset},
                        {"checkpoint", o.checkpoint},
                        {"val_acc", r.val_acc},
                        {"test_acc", r.test_acc},
                        {"saved_val_acc", ck.meta.val_acc},
                        {"saved_test_acc", ck.meta.test_acc},
                        {"infer_ms_median", median(times)},
                        {"threads", get_num_threads()}});
  return 0;
}

}  // namespace qgnn::cli
