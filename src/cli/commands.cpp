#include "cli/commands.h"

#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <sstream>

#include "cli/outputs.h"
#include "qgnn/autobit/search.h"
#include "qgnn/io/dataset.h"
#include "qgnn/io/text_file.h"
#include "qgnn/nn/models.h"
#include "qgnn/quant/int8_ops.h"
#include "qgnn/quant/int_model.h"
#include "qgnn/quant/qat.h"
#include "qgnn/train/checkpoint.h"
#include "qgnn/train/trainer.h"
#include "qgnn/util/threads.h"

namespace qgnn::cli {

namespace {

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

void write_json(const Outputs& out, const CommonOptions& c, const nlohmann::json& j) {
  out.write_text(c.json, j.dump(2) + "\n");
}

void apply_threads(const CommonOptions& c) { set_num_threads(c.threads); }

int64_t count(const torch::Tensor& mask) { return mask.sum().item<int64_t>(); }

// Accuracy of the real quantized model: input and hidden embeddings held packed,
// attention packed and read back (PackedInferenceHook).
struct PackedEval {
  EvalResult eval;
  int64_t stored_bytes = 0;
};

PackedEval evaluate_packed(GnnModel& model, const TrainData& data, const BitPolicy& policy) {
  auto hook = std::make_shared<PackedInferenceHook>(policy);
  model.set_quant_hook(hook);
  TrainData packed = data;
  if (policy.bits({0, QuantRole::kEmbedding}) != 32) {
    packed.x = NodeFeatures(pack_input(data.x, data.ops, policy));
  }
  PackedEval r;
  r.eval = evaluate(model, packed);
  for (const auto& [key, bytes] : hook->stored_bytes()) r.stored_bytes += bytes;
  model.set_quant_hook(nullptr);
  return r;
}

struct QuantizeOutcome {
  EvalResult fp32;
  PolicyResult chosen;  // after the final fine-tuning
  PackedEval packed;
  SearchResult search;  // empty unless --policy auto
  bool searched = false;
};

// Chooses (or parses) the policy, fine-tunes and evaluates. `model` holds fp32 weights on
// entry and the fine-tuned weights on return.
QuantizeOutcome quantize_model(GnnModel& model, const TrainData& data, const OptimConfig& optim,
                               const QuantizeOptions& o) {
  QuantizeOutcome out;
  model.set_quant_hook(nullptr);
  out.fp32 = evaluate(model, data);
  const ModelState fp32 = capture_state(model);
  BitPolicy policy;
  const bool progress = show_progress(o.common);
  if (o.policy == "auto") {
    SearchOptions so;
    so.n_measure = o.measure;
    so.n_sample = o.sample;
    so.n_iter = o.rounds;
    so.max_drop = o.max_drop;
    so.margin_sigmas = o.margin_sigmas;
    so.finetune_epochs = o.search_finetune_epochs;
    so.random_search = o.random_search;
    so.granularity = parse_search_granularity(o.granularity);
    so.max_avg_bits = o.max_avg_bits;
    so.seed = static_cast<uint64_t>(o.seed);
    SearchProgress cb;
    if (progress) {
      cb = [](const SearchPoint& p, int64_t done, int64_t total) {
        std::fprintf(stderr, "\r  search %lld/%lld  val %.2f  saving %.1fx ",
                     static_cast<long long>(done), static_cast<long long>(total), p.result.val_acc,
                     p.result.memory.saving());
        std::fflush(stderr);
      };
    }
    out.search = search_bits(model, fp32, data, out.fp32.val_acc, optim, so, cb);
    if (progress) std::fprintf(stderr, "\r\033[K");
    out.searched = true;
    TORCH_CHECK(out.search.best >= 0, "quantize: no ", o.granularity, " configuration fits ",
                o.max_avg_bits, " average bits; raise --max-avg-bits");
    if (!out.search.within_budget) {
      std::cout << "note: no configuration kept validation accuracy within " << o.max_drop
                << " points of fp32 (" << fmt(out.fp32.val_acc) << ") with a margin of "
                << o.margin_sigmas
                << " standard errors; using the most accurate measured one (raise --max-drop, "
                   "--rounds or --measure to search further)\n";
    }
    policy = out.search.points[out.search.best].result.policy;
  } else {
    policy = BitPolicy::parse(o.policy);
  }
  // For auto, the default final fine-tuning repeats the search's (same epochs, same seed)
  // and so returns exactly the model whose validation accuracy won the search. A longer
  // final fine-tuning would pick its epoch on the same 500 validation nodes again and
  // add selection noise, not accuracy (Cora AGNN, 5 seeds: test drop 0.84 with 100
  // epochs vs 0.22 for the measured models; bench/RESULTS.md).
  const int64_t epochs = o.finetune_epochs >= 0 ? o.finetune_epochs
                         : o.policy == "auto"   ? o.search_finetune_epochs
                                                : 100;
  out.chosen =
      evaluate_policy(model, fp32, data, policy, epochs, optim, static_cast<uint64_t>(o.seed));
  out.packed = evaluate_packed(model, data, policy);
  return out;
}

// Bytes of the model input held as qgnn's own fp32 CSR (int64 indptr [N + 1], int64
// column indices and float32 values [nnz]), the baseline of the storage figures.
int64_t input_csr_fp32_bytes(const NodeFeatures& x) {
  if (x.is_sparse()) {
    const CsrGraph& g = x.sparse();
    return g.indptr().nbytes() + g.indices().nbytes() +
           (g.has_weights() ? g.weights().nbytes() : 4 * g.num_edges());
  }
  const at::Tensor d = x.to_dense();
  return 8 * (d.size(0) + 1) + 12 * d.ne(0).sum().item<int64_t>();
}

// The lossless storage format of the input point, apart from the headline: what pack()
// holds for it vs. its fp32 CSR (empty when no input point is quantized).
struct InputStorage {
  bool quantized = false;
  PackedLayout layout = PackedLayout::kBitmap;
  int64_t stored_bytes = 0;
  int64_t csr_fp32_bytes = 0;
  double saving_vs_csr() const {
    return stored_bytes ? double(csr_fp32_bytes) / stored_bytes : 0.0;
  }
};

InputStorage input_storage(const MemoryReport& m, const NodeFeatures& x) {
  InputStorage s;
  for (const PointMemory& p : m.points) {
    if (p.point.layer != 0 || p.point.attention || p.bits == 32) continue;
    s.quantized = true;
    s.layout = p.layout;
    s.stored_bytes = p.stored_bytes;
    s.csr_fp32_bytes = input_csr_fp32_bytes(x);
  }
  return s;
}

const char* layout_name(PackedLayout l) {
  return l == PackedLayout::kIndexList ? "index_list" : "bitmap";
}

// The labelled storage line printed under the headline (empty when x is not quantized).
std::string storage_line(const MemoryReport& m, const InputStorage& in) {
  if (!in.quantized) return "";
  return "storage (lossless format, not in the headline): input x as " +
         std::string(in.layout == PackedLayout::kIndexList ? "an index list" : "a bitmap") + " " +
         fmt(in.stored_bytes / 1e6, 3) + " MB vs " + fmt(in.csr_fp32_bytes / 1e6, 3) +
         " MB as fp32 CSR (" + fmt(in.saving_vs_csr()) + "x); all features as stored " +
         fmt(m.stored_mb(), 3) + " MB (" + fmt(m.stored_saving()) + "x vs dense fp32)\n";
}

// The figures every report carries: dense codes + parameters lead (comparable with
// SGQuant's Table III), the storage format follows under its own names.
void add_memory_json(nlohmann::json& j, const MemoryReport& m, const InputStorage& in) {
  j["avg_bits"] = m.average_bits();
  j["fp32_feature_mb"] = m.fp32_mb();
  j["quant_feature_mb"] = m.dense_mb();
  j["saving"] = m.saving();
  j["stored_feature_mb"] = m.stored_mb();
  j["stored_saving"] = m.stored_saving();
  j["input_layout"] = in.quantized ? layout_name(in.layout) : "fp32";
  j["input_stored_mb"] = in.stored_bytes / 1e6;
  j["input_csr_fp32_mb"] = in.csr_fp32_bytes / 1e6;
  j["storage_saving_vs_csr"] = in.saving_vs_csr();
}

void print_table_row(const std::string& dataset, const std::string& model, const QuantizeOutcome& q,
                     const InputStorage& in) {
  const MemoryReport& m = q.chosen.memory;
  std::cout
      << "| dataset | model | fp32 acc | quant acc | avg bits | fp32 MB | quant MB | saving |\n"
      << "| --- | --- | --- | --- | --- | --- | --- | --- |\n"
      << "| " << dataset << " | " << model << " | " << fmt(q.fp32.test_acc) << " | "
      << fmt(q.packed.eval.test_acc) << " | " << fmt(m.average_bits()) << " | " << fmt(m.fp32_mb())
      << " | " << fmt(m.dense_mb(), 3) << " | " << fmt(m.saving()) << "x |\n"
      << "policy: " << q.chosen.policy.to_string() << "\n"
      << storage_line(m, in);
}

nlohmann::json quantize_json(const std::string& dataset, const std::string& model,
                             const std::string& preset, const QuantizeOutcome& q,
                             const InputStorage& in) {
  const MemoryReport& m = q.chosen.memory;
  nlohmann::json points = nlohmann::json::array();
  for (const PointMemory& p : m.points) {
    points.push_back({{"layer", p.point.layer},
                      {"component", p.point.attention ? "attention" : "embedding"},
                      {"rows", p.point.rows},
                      {"cols", p.point.cols},
                      {"bits", p.bits},
                      {"fp32_bytes", p.fp32_bytes},
                      {"dense_bytes", p.dense_bytes},
                      {"stored_bytes", p.stored_bytes},
                      {"layout", layout_name(p.layout)}});
  }
  nlohmann::json j = {{"dataset", dataset},
                      {"model", model},
                      {"preset", preset},
                      {"policy", q.chosen.policy.to_string()},
                      {"fp32_val_acc", q.fp32.val_acc},
                      {"fp32_test_acc", q.fp32.test_acc},
                      {"quant_val_acc", q.packed.eval.val_acc},
                      {"quant_test_acc", q.packed.eval.test_acc},
                      {"fake_quant_test_acc", q.chosen.test_acc},
                      {"finetune_best_epoch", q.chosen.best_epoch},
                      {"packed_feature_mb", q.packed.stored_bytes / 1e6},
                      {"points", points},
                      {"threads", get_num_threads()}};
  add_memory_json(j, m, in);
  if (q.searched) {
    j["search"] = {
        {"measured", q.search.points.size()},
        {"cost_model_ms", q.search.cost_model_ms},
        {"best_val_acc", q.search.points[q.search.best].result.val_acc},
        {"best_val_margin", q.search.points[q.search.best].val_margin},
        {"best_val_disagreements", q.search.points[q.search.best].val_disagreements},
        {"best_saving", q.search.points[q.search.best].result.memory.saving()},
        {"best_stored_saving", q.search.points[q.search.best].result.memory.stored_saving()}};
  }
  return j;
}

}  // namespace

int run_info(const InfoOptions& o) {
  apply_threads(o.common);
  Outputs out;
  out.reserve("--json", o.common.json);
  const std::string path = resolve_dataset_path(o.dataset);
  Dataset d = read_dataset(path);
  const auto deg = d.graph.in_degree().to(torch::kFloat64);
  const int64_t nnz = d.x.ne(0).sum().item<int64_t>();
  const double density = static_cast<double>(nnz) / std::max<int64_t>(1, d.x.numel());
  const int64_t isolated =
      (d.graph.in_degree().eq(0) & d.graph.out_degree().eq(0)).sum().item<int64_t>();
  const int64_t self_loops = d.graph.row_ids().eq(d.graph.indices()).sum().item<int64_t>();
  std::cout << "dataset      " << d.name << "  (" << path << ")\n"
            << "nodes        " << d.num_nodes() << "\n"
            << "edges        " << d.graph.num_edges() << " (directed entries)\n"
            << "features     " << d.num_features() << "  (" << fmt(100 * density) << "% non-zero"
            << (d.x_source_dtype != "float32"
                    ? "; x stored as " + d.x_source_dtype + ", converted to float32"
                    : std::string())
            << ")\n"
            << "classes      " << d.num_classes << "\n"
            << "in-degree    mean " << fmt(deg.mean().item<double>()) << ", max "
            << deg.max().item<double>() << ", isolated nodes " << isolated << ", self loops "
            << self_loops << "\n"
            << "split        " << (d.has_public_split ? "public" : "random (seed 0)") << ": "
            << count(d.train_mask) << " train / " << count(d.val_mask) << " val / "
            << count(d.test_mask) << " test\n";
  write_json(out, o.common,
             {{"dataset", d.name},
              {"path", path},
              {"num_nodes", d.num_nodes()},
              {"num_edges", d.graph.num_edges()},
              {"num_features", d.num_features()},
              {"x_source_dtype", d.x_source_dtype},
              {"feature_density", density},
              {"num_classes", d.num_classes},
              {"max_in_degree", deg.max().item<double>()},
              {"isolated_nodes", isolated},
              {"public_split", d.has_public_split},
              {"train", count(d.train_mask)},
              {"val", count(d.val_mask)},
              {"test", count(d.test_mask)}});
  out.commit();
  return 0;
}

int run_train(const TrainOptions& o) {
  apply_threads(o.common);
  Outputs out;
  out.reserve("--json", o.common.json);
  out.reserve("--save", o.save);
  const ModelKind kind = parse_model_kind(o.model);
  const FeatureNorm norm_arg = parse_feature_norm(o.feature_norm);
  const std::string path = resolve_dataset_path(o.dataset);
  Dataset d = read_dataset(path, o.seed);
  const FeatureNorm norm = resolve_feature_norm(d, norm_arg);
  Preset preset = make_preset(o.preset, kind, d.num_features(), d.num_classes, dataset_family(d));
  if (o.epochs > 0) preset.optim.epochs = o.epochs;
  if (o.patience > 0) preset.optim.patience = o.patience;
  if (o.hidden > 0) preset.model.hidden_channels = o.hidden;
  if (o.lr > 0) preset.optim.lr = o.lr;
  preset.model.row_normalize_input = model_normalizes_rows(norm);

  TORCH_CHECK(o.qat.empty() || o.qat == "int8" || o.qat == "int4",
              "train: --qat must be int8 or int4, got '", o.qat, "'");
  TORCH_CHECK(!o.qat.empty() || !o.degree_quant, "train: --degree-quant needs --qat int8|int4");
  TORCH_CHECK(o.p_min <= o.p_max, "train: --dq-pmin (", o.p_min, ") must not exceed --dq-pmax (",
              o.p_max, ")");
  // Degree-Quant is protective masking plus percentile ranges (Tailor et al., Sec. 4); an
  // explicit --observer wins.
  const std::string observer = !o.observer.empty() ? o.observer
                               : o.degree_quant    ? "percentile"
                                                   : "momentum";
  QatConfig qat;
  if (!o.qat.empty()) {
    qat = QatConfig::preset(o.qat);
    qat.observer = parse_observer(observer);
    qat.degree_quant = o.degree_quant;
    qat.p_min = o.p_min;
    qat.p_max = o.p_max;
  }
  const bool progress = show_progress(o.common);
  std::vector<double> test_acc, val_acc, epoch_ms, infer_ms;
  std::vector<int64_t> seeds, best_epochs;
  std::cout << "dataset " << d.name << ", model " << o.model << ", preset " << preset.name
            << ", features " << to_string(norm) << ", threads " << get_num_threads();
  if (!o.qat.empty()) {
    std::cout << ", QAT " << o.qat << (o.degree_quant ? " Degree-Quant" : " plain") << " ("
              << observer << " observer)";
  }
  std::cout << "\n";
  std::cout << "run  seed  best_epoch  epochs  val_acc  test_acc  epoch_ms  infer_ms\n";
  for (int64_t r = 0; r < o.runs; ++r) {
    const int64_t seed = o.seed + r;
    if (!d.has_public_split) split_random(d, seed);
    TrainData data = make_train_data(d, norm);
    manual_seed(static_cast<uint64_t>(seed));
    GnnModel model(preset.model);
    if (!o.qat.empty()) model.set_quant_hook(std::make_shared<QatHook>(qat));
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
      meta.feature_norm = to_string(norm);
      meta.split_seed = d.has_public_split ? -1 : seed;
      meta.seed = seed;
      meta.val_acc = res.best_val_acc;
      meta.test_acc = res.test_acc;
      if (!o.qat.empty()) meta.extra["qat"] = model.quant_hook()->save_state();
      save_checkpoint(out.temp(o.save), model, meta);
    }
  }
  std::cout << "test accuracy " << fmt(mean(test_acc)) << " +- " << fmt(stddev(test_acc))
            << " % over " << o.runs << " run(s); val " << fmt(mean(val_acc)) << " %; epoch "
            << fmt(median(epoch_ms), 3) << " ms, inference " << fmt(median(infer_ms), 3)
            << " ms (medians)\n";
  write_json(out, o.common,
             {{"dataset", d.name},
              {"model", o.model},
              {"preset", preset.name},
              {"feature_norm", to_string(norm)},
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
              {"patience", preset.optim.patience},
              {"qat", o.qat.empty() ? "none" : o.qat},
              {"degree_quant", o.degree_quant},
              {"observer", o.qat.empty() ? "" : observer}});
  out.commit();
  if (!o.save.empty()) std::cout << "saved " << o.save << "\n";
  return 0;
}

}  // namespace qgnn::cli

namespace qgnn::cli {

namespace {

// Loads a dataset for a checkpoint's model with the checkpoint's split and features.
TrainData data_for_checkpoint(const LoadedCheckpoint& ck, const std::string& dataset,
                              Dataset* out_dataset) {
  const std::string path = resolve_dataset_path(dataset);
  Dataset d = read_dataset(path, ck.meta.split_seed >= 0 ? ck.meta.split_seed : 0);
  check_checkpoint_fits(ck, d);
  TrainData data = make_train_data(d, parse_feature_norm(ck.meta.feature_norm));
  if (out_dataset != nullptr) *out_dataset = std::move(d);
  return data;
}

int quantize_and_report(Outputs& out, GnnModel& model, const TrainData& data,
                        const OptimConfig& optim, const QuantizeOptions& o,
                        const std::string& dataset, const std::string& preset,
                        CheckpointMeta meta) {
  const std::string model_name = to_string(model.config().kind);
  QuantizeOutcome q = quantize_model(model, data, optim, o);
  if (q.searched) {
    double ms = 0;
    for (double t : q.search.cost_model_ms) ms += t;
    std::cout << "searched " << q.search.points.size() << " configurations"
              << (o.random_search ? " (random search)" : "") << "; cost model (XGBoost) "
              << fmt(q.search.cost_model_ms.empty() ? 0.0 : ms / q.search.cost_model_ms.size(), 1)
              << " ms per round\n";
    out.write_text(o.csv, search_points_csv(q.search));
  }
  const InputStorage in = input_storage(q.chosen.memory, data.x);
  print_table_row(dataset, model_name, q, in);
  if (!o.save.empty()) {
    meta.extra["policy"] = q.chosen.policy.to_string();
    meta.val_acc = q.packed.eval.val_acc;
    meta.test_acc = q.packed.eval.test_acc;
    model.set_quant_hook(nullptr);
    save_checkpoint(out.temp(o.save), model, meta);
  }
  nlohmann::json j = quantize_json(dataset, model_name, preset, q, in);
  if (q.searched) {
    j["search"]["granularity"] = o.granularity;
    j["search"]["max_avg_bits"] = o.max_avg_bits;
    j["search"]["random_search"] = o.random_search;
    j["search"]["within_budget"] = q.search.within_budget;
    j["search"]["max_drop"] = o.max_drop;
    j["search"]["margin_sigmas"] = o.margin_sigmas;
  }
  write_json(out, o.common, j);
  out.commit();
  if (!o.save.empty()) std::cout << "saved " << o.save << "\n";
  return 0;
}

// Reserves the outputs of `qgnn quantize` / `qgnn run`.
void reserve_quantize_outputs(Outputs& out, const QuantizeOptions& o) {
  out.reserve("--json", o.common.json);
  out.reserve("--save", o.save);
  out.reserve("--csv", o.csv);
}

}  // namespace

int run_quantize(const QuantizeOptions& o) {
  apply_threads(o.common);
  Outputs out;
  reserve_quantize_outputs(out, o);
  if (o.policy != "auto") BitPolicy::parse(o.policy);  // fail fast on a bad spec
  LoadedCheckpoint ck = load_checkpoint(o.checkpoint);
  TORCH_CHECK(ck.meta.extra.count("qat") == 0, "quantize: ", o.checkpoint,
              " was trained with QAT; SGQuant starts from an fp32 checkpoint");
  TORCH_CHECK(ck.meta.extra.count("policy") == 0, "quantize: ", o.checkpoint,
              " is already quantized (policy ", ck.meta.extra["policy"],
              "); start from an fp32 checkpoint");
  Dataset d;
  TrainData data = data_for_checkpoint(ck, o.dataset, &d);
  Preset preset = make_preset(ck.meta.preset, ck.model->config().kind, d.num_features(),
                              d.num_classes, dataset_family(d));
  manual_seed(static_cast<uint64_t>(o.seed));
  return quantize_and_report(out, *ck.model, data, preset.optim, o, d.name, ck.meta.preset,
                             ck.meta);
}

int run_main_job(const RunOptions& o) {
  apply_threads(o.common);
  QuantizeOptions q = o.quantize;
  q.common = o.common;
  q.seed = o.seed;  // the search and fine-tuning follow the run's seed
  Outputs out;
  reserve_quantize_outputs(out, q);
  const ModelKind kind = parse_model_kind(o.model);
  const std::string path = resolve_dataset_path(o.dataset);
  Dataset d = read_dataset(path, o.seed);
  const FeatureNorm norm = resolve_feature_norm(d, parse_feature_norm(o.feature_norm));
  Preset preset = make_preset(o.preset, kind, d.num_features(), d.num_classes, dataset_family(d));
  preset.model.row_normalize_input = model_normalizes_rows(norm);
  TrainData data = make_train_data(d, norm);
  manual_seed(static_cast<uint64_t>(o.seed));
  GnnModel model(preset.model);
  std::cout << "qgnn run: " << o.model << " (" << preset.name << " preset) on " << d.name
            << ", then automatic bit selection (SGQuant) and fine-tuning\n";
  TrainResult fp32 = train_full_batch(model, data, preset.optim);
  std::cout << "fp32: val " << fmt(fp32.best_val_acc) << " %, test " << fmt(fp32.test_acc)
            << " % (epoch " << fp32.best_epoch << ")\n";
  CheckpointMeta meta;
  meta.dataset = d.name;
  meta.preset = preset.name;
  meta.feature_norm = to_string(norm);
  meta.split_seed = d.has_public_split ? -1 : o.seed;
  meta.seed = o.seed;
  manual_seed(static_cast<uint64_t>(o.seed));
  return quantize_and_report(out, model, data, preset.optim, q, d.name, preset.name, meta);
}

int run_eval(const EvalOptions& o) {
  apply_threads(o.common);
  Outputs out;
  out.reserve("--json", o.common.json);
  LoadedCheckpoint ck = load_checkpoint(o.checkpoint);
  Dataset d;
  TrainData data = data_for_checkpoint(ck, o.dataset, &d);
  const ModelConfig& cfg = ck.model->config();
  if (auto qat = ck.meta.extra.find("qat"); qat != ck.meta.extra.end()) {
    auto hook = std::make_shared<QatHook>(QatConfig{});
    hook->load_state(qat->second);
    ck.model->set_quant_hook(hook);
  }
  const auto policy_it = ck.meta.extra.find("policy");
  const bool quantized = policy_it != ck.meta.extra.end();
  BitPolicy policy = quantized ? BitPolicy::parse(policy_it->second) : BitPolicy();
  EvalResult r;
  std::vector<double> times;
  const InputCodeStats input(data.x);
  MemoryReport mem = memory_report(*ck.model, data.ops, policy, &input);
  const InputStorage in = input_storage(mem, data.x);
  for (int i = 0; i < 11; ++i) {
    EvalResult e =
        quantized ? evaluate_packed(*ck.model, data, policy).eval : evaluate(*ck.model, data);
    if (i == 0)
      r = e;
    else
      times.push_back(e.infer_ms);
  }
  std::cout << "checkpoint " << o.checkpoint << ": " << to_string(cfg.kind) << " on " << d.name
            << " (trained on " << ck.meta.dataset << ", preset " << ck.meta.preset << ")\n"
            << "policy " << policy.to_string() << ": " << fmt(mem.average_bits())
            << " average bits, feature memory " << fmt(mem.dense_mb(), 3) << " MB (fp32 "
            << fmt(mem.fp32_mb()) << " MB, saving " << fmt(mem.saving()) << "x)\n"
            << storage_line(mem, in) << "val_acc " << fmt(r.val_acc) << "  test_acc "
            << fmt(r.test_acc) << "  (at save: val " << fmt(ck.meta.val_acc) << ", test "
            << fmt(ck.meta.test_acc) << ")  infer " << fmt(median(times), 3) << " ms\n";
  nlohmann::json j = {{"dataset", d.name},
                      {"model", to_string(cfg.kind)},
                      {"preset", ck.meta.preset},
                      {"checkpoint", o.checkpoint},
                      {"policy", policy.to_string()},
                      {"val_acc", r.val_acc},
                      {"test_acc", r.test_acc},
                      {"saved_val_acc", ck.meta.val_acc},
                      {"saved_test_acc", ck.meta.test_acc},
                      {"infer_ms_median", median(times)},
                      {"threads", get_num_threads()}};
  add_memory_json(j, mem, in);
  write_json(out, o.common, j);
  out.commit();
  return 0;
}

namespace {

double accuracy(const at::Tensor& pred, const at::Tensor& y, const at::Tensor& mask) {
  const int64_t n = count(mask);
  return n ? 100.0 * pred.masked_select(mask).eq(y.masked_select(mask)).sum().item<double>() / n
           : 0.0;
}

}  // namespace

int run_infer(const InferOptions& o) {
  apply_threads(o.common);
  Outputs out;
  out.reserve("--json", o.common.json);
  TORCH_CHECK(o.precision == "fp32" || o.precision == "int8" || o.precision == "int4",
              "infer: --precision must be fp32, int8 or int4, got '", o.precision, "'");
  TORCH_CHECK(o.repeat >= 1, "infer: --repeat must be >= 1, got ", o.repeat);
  LoadedCheckpoint ck = load_checkpoint(o.checkpoint);
  Dataset d;
  TrainData data = data_for_checkpoint(ck, o.dataset, &d);
  GnnModel& model = *ck.model;
  model.eval();
  std::shared_ptr<QatHook> hook;
  if (auto it = ck.meta.extra.find("qat"); it != ck.meta.extra.end()) {
    hook = std::make_shared<QatHook>(QatConfig{});
    hook->load_state(it->second);
  }
  const bool integer = o.precision != "fp32";
  if (integer) {
    TORCH_CHECK(hook, "infer: ", o.checkpoint, " was not trained with --qat; --precision ",
                o.precision, " needs a checkpoint from qgnn train --qat ", o.precision);
    const int want = o.precision == "int8" ? 8 : 4;
    const int have = hook->bits(0, QuantRole::kEmbedding);
    TORCH_CHECK(have == want, "infer: ", o.checkpoint, " was trained with --qat int", have,
                "; run it with --precision int", have);
  }
  torch::NoGradGuard no_grad;
  // The fake-quantized model's predictions: what the integer model must reproduce.
  at::Tensor fake_pred;
  if (hook) {
    model.set_quant_hook(hook);
    fake_pred = model.forward(data.ops, data.x).argmax(1);
    model.set_quant_hook(nullptr);
  }
  using Clock = std::chrono::steady_clock;
  auto ms_since = [](Clock::time_point t) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
  };
  std::vector<double> total, linear, aggregate, other;
  at::Tensor logits;
  double quantize_ms = 0;
  int64_t input_bytes = 0, weight_bytes = 0;
  if (integer) {
    const IntegerModel im = IntegerModel::convert(model, *hook);
    auto t0 = Clock::now();
    const QuantizedInput qx = im.quantize_input(data.x);
    quantize_ms = ms_since(t0);
    input_bytes = qx.nbytes();
    weight_bytes = im.weight_bytes();
    for (int64_t r = 0; r <= o.repeat; ++r) {
      IntegerTiming t;
      t0 = Clock::now();
      logits = im.forward(data.ops, qx, &t);
      const double ms = ms_since(t0);
      if (r == 0) continue;  // warm-up
      total.push_back(ms);
      linear.push_back(t.linear_ms);
      aggregate.push_back(t.aggregate_ms);
      other.push_back(t.other_ms);
    }
  } else {
    input_bytes = data.x.is_sparse()
                      ? data.x.sparse().indices().nbytes() + data.x.sparse().indptr().nbytes() +
                            (data.x.sparse().has_weights() ? data.x.sparse().weights().nbytes() : 0)
                      : data.x.to_dense().nbytes();
    for (const auto& p : model.parameters()) weight_bytes += p.nbytes();
    for (int64_t r = 0; r <= o.repeat; ++r) {
      const auto t0 = Clock::now();
      logits = model.forward(data.ops, data.x);
      const double ms = ms_since(t0);
      if (r > 0) total.push_back(ms);
    }
  }
  const at::Tensor pred = logits.argmax(1);
  const double test_acc = accuracy(pred, data.y, data.test_mask);
  const double val_acc = accuracy(pred, data.y, data.val_mask);
  double agreement = -1, fake_test_acc = -1;
  if (fake_pred.defined()) {
    agreement = 100.0 * pred.eq(fake_pred).sum().item<double>() / pred.numel();
    fake_test_acc = accuracy(fake_pred, data.y, data.test_mask);
  }
  std::cout << "checkpoint " << o.checkpoint << ": " << to_string(model.config().kind) << " on "
            << d.name << ", precision " << o.precision
            << (integer ? std::string(" (integer kernels: ") + int8_kernel_isa() + ")" : "")
            << ", threads " << get_num_threads() << "\n"
            << "val_acc " << fmt(val_acc) << "  test_acc " << fmt(test_acc);
  if (agreement >= 0) {
    std::cout << "  (fake-quant model: test " << fmt(fake_test_acc) << ", same prediction on "
              << fmt(agreement, 3) << "% of nodes)";
  }
  std::cout << "\nlatency " << fmt(median(total), 3) << " ms (median of " << o.repeat << ")";
  if (integer) {
    std::cout << ": linear " << fmt(median(linear), 3) << ", aggregation "
              << fmt(median(aggregate), 3) << ", other " << fmt(median(other), 3)
              << " ms; input quantized once in " << fmt(quantize_ms, 1) << " ms";
  }
  std::cout << "\n";
  nlohmann::json j = {{"dataset", d.name},
                      {"model", to_string(model.config().kind)},
                      {"checkpoint", o.checkpoint},
                      {"precision", o.precision},
                      {"threads", get_num_threads()},
                      {"repeat", o.repeat},
                      {"val_acc", val_acc},
                      {"test_acc", test_acc},
                      {"latency_ms_median", median(total)},
                      {"latency_ms", total},
                      {"input_bytes", input_bytes},
                      {"weight_bytes", weight_bytes}};
  if (integer) {
    j["isa"] = int8_kernel_isa();
    j["linear_ms_median"] = median(linear);
    j["aggregate_ms_median"] = median(aggregate);
    j["other_ms_median"] = median(other);
    j["quantize_input_ms"] = quantize_ms;
  }
  if (agreement >= 0) {
    j["fake_quant_test_acc"] = fake_test_acc;
    j["agreement_pct"] = agreement;
  }
  write_json(out, o.common, j);
  out.commit();
  return 0;
}

}  // namespace qgnn::cli
