// End-to-end benchmark driver (issue 2): in one run, on this machine,
//   1. STREAM-like triad bandwidth a = b + s c (3 x 128 MiB arrays),
//   2. SpMM forward ms and effective GB/s on amazon_computers (F = 16, 64, 256),
//   3. training epoch and full-graph inference ms for GCN and GAT (kipf preset) on
//      cora, citeseer, amazon_computers and coauthor_cs,
// each at 1 and 2 threads. Prints Markdown tables (stdout) and writes JSON (--json).
// Usage: bench_suite --data-dir DIR [--epochs N] [--json FILE] [--datasets a,b,c]
#include <ATen/Parallel.h>
#include <malloc.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "bench_util.h"
#include "qgnn/io/dataset.h"
#include "qgnn/io/text_file.h"
#include "qgnn/nn/models.h"
#include "qgnn/ops/spmm.h"
#include "qgnn/train/trainer.h"
#include "qgnn/util/threads.h"

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

struct SpmmPoint {
  int64_t f;
  double ms, gbs;
};

// SpMM forward on the GCN operator of `g` (weighted), median of reps. Effective bytes:
// indptr (8 per row) + indices and weights (12 per edge) + one gathered x row per edge
// (4 F) + one output row per node (4 F).
SpmmPoint bench_spmm(const qgnn::CsrGraph& g, int64_t f, int reps) {
  auto x = torch::rand({g.num_cols(), f});
  auto out = torch::empty({g.num_rows(), f});
  std::vector<double> t;
  for (int r = 0; r < reps + 3; ++r) {
    const auto s = Clock::now();
    qgnn::cpu::spmm_sum_kernel(g, x, g.weights(), 1, out);
    if (r >= 3) t.push_back(ms_since(s));
  }
  const double ms = median(t);
  const double bytes =
      8.0 * (g.num_rows() + 1) + 12.0 * g.num_edges() + 4.0 * f * (g.num_edges() + g.num_rows());
  return {f, ms, bytes / (ms * 1e6)};
}

// PyTorch Geometric 2.4 on torch 1.13.1, 2 threads, measured on this kind of machine
// (shared/REFERENCE.md): epoch ms, inference ms.
const std::map<std::string, std::pair<double, double>> kPygTwoThreads = {
    {"cora/gcn", {63.1, 1.9}},
    {"cora/gat", {75.5, 8.1}},
    {"citeseer/gcn", {184.2, 5.0}},
    {"citeseer/gat", {198.5, 16.2}},
    {"amazon_computers/gcn", {202.0, 29.5}},
    {"amazon_computers/gat", {704.0, 175.4}}};
const std::map<std::string, std::pair<double, double>> kPygOneThread = {
    {"cora/gcn", {64.8, 3.4}},
    {"cora/gat", {77.2, 9.6}},
    {"citeseer/gcn", {196.6, 8.1}},
    {"citeseer/gat", {223.1, 22.4}},
    {"amazon_computers/gcn", {235.1, 31.0}},
    {"amazon_computers/gat", {925.1, 242.4}}};

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(item);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  mallopt(M_MMAP_THRESHOLD, 1 << 30);  // as the qgnn command does (src/cli/main.cpp)
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  std::string data_dir = "../shared/datasets", json_path;
  std::string datasets = "cora,citeseer,amazon_computers,coauthor_cs";
  int64_t epochs = 200;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--data-dir")
      data_dir = argv[i + 1];
    else if (k == "--json")
      json_path = argv[i + 1];
    else if (k == "--epochs")
      epochs = std::stoll(argv[i + 1]);
    else if (k == "--datasets")
      datasets = argv[i + 1];
    else {
      std::fprintf(stderr, "bench_suite: unknown option %s\n", k.c_str());
      return 2;
    }
  }
  nlohmann::json report;
  const std::vector<int> thread_counts = {1, 2};
  try {
    // 1. Triad.
    std::map<int, double> triad;
    std::cout << "## Memory bandwidth (triad a = b + s c, 3 x 128 MiB)\n\n| threads | GB/s |\n"
              << "| --- | --- |\n";
    for (int t : thread_counts) {
      qgnn::set_num_threads(t);
      triad[t] = qgnn::bench::triad_gbs(int64_t{32} << 20, 10);
      std::cout << "| " << t << " | " << triad[t] << " |\n";
      report["triad_gbs"][std::to_string(t)] = triad[t];
    }

    // 2. SpMM on amazon_computers.
    {
      qgnn::Dataset d = qgnn::read_dataset(data_dir + "/amazon_computers.npz");
      const qgnn::CsrGraph& a = d.graph.gcn_normalized();
      std::cout << "\n## SpMM forward, amazon_computers GCN operator (N " << a.num_rows() << ", E "
                << a.num_edges() << ")\n\n"
                << "| threads | F | ms | effective GB/s | % of triad |\n| --- | --- | --- | --- | "
                   "--- |\n";
      for (int t : thread_counts) {
        qgnn::set_num_threads(t);
        for (int64_t f : {16, 64, 256}) {
          SpmmPoint p = bench_spmm(a, f, 20);
          const double pct = 100.0 * p.gbs / triad[t];
          std::printf("| %d | %lld | %.3f | %.1f | %.0f%% |\n", t, static_cast<long long>(f), p.ms,
                      p.gbs, pct);
          report["spmm"].push_back(
              {{"threads", t}, {"F", f}, {"ms", p.ms}, {"gbs", p.gbs}, {"pct_triad", pct}});
        }
      }
    }

    // 3. Training and inference.
    std::cout << "\n## Full-batch training epoch and inference (kipf preset, " << epochs
              << " epochs, medians)\n\n"
              << "| dataset | model | threads | epoch ms | inference ms | PyG epoch ms | "
                 "PyG inference ms | epoch ratio | inference ratio | test acc (1 seed) |\n"
              << "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n";
    for (const std::string& name : split(datasets)) {
      qgnn::Dataset d = qgnn::read_dataset(data_dir + "/" + name + ".npz", 0);
      const auto norm = qgnn::resolve_feature_norm(d, qgnn::FeatureNorm::kAuto);
      qgnn::TrainData data = qgnn::make_train_data(d, norm);
      for (const char* model_name : {"gcn", "gat"}) {
        for (int t : thread_counts) {
          qgnn::set_num_threads(t);
          qgnn::manual_seed(0);
          auto preset = qgnn::make_preset("kipf", model_name, d.num_features(), d.num_classes);
          preset.model.row_normalize_input = qgnn::model_normalizes_rows(norm);
          preset.optim.epochs = epochs;
          preset.optim.patience = epochs;  // fixed number of epochs for timing
          qgnn::GnnModel model(preset.model);
          qgnn::TrainResult r = qgnn::train_full_batch(model, data, preset.optim);
          const double ep = median(r.epoch_ms), inf = median(r.infer_ms);
          const std::string key = name + "/" + model_name;
          const auto& pyg = t == 1 ? kPygOneThread : kPygTwoThreads;
          auto it = pyg.find(key);
          char line[512];
          if (it != pyg.end()) {
            std::snprintf(line, sizeof line,
                          "| %s | %s | %d | %.2f | %.3f | %.1f | %.1f | %.3fx | %.3fx | %.1f |",
                          name.c_str(), model_name, t, ep, inf, it->second.first, it->second.second,
                          ep / it->second.first, inf / it->second.second, r.test_acc);
          } else {
            std::snprintf(line, sizeof line,
                          "| %s | %s | %d | %.2f | %.3f | - | - | - | - | %.1f |", name.c_str(),
                          model_name, t, ep, inf, r.test_acc);
          }
          std::cout << line << "\n" << std::flush;
          report["train"].push_back({{"dataset", name},
                                     {"model", model_name},
                                     {"threads", t},
                                     {"epoch_ms", ep},
                                     {"infer_ms", inf},
                                     {"test_acc", r.test_acc}});
        }
      }
    }
  } catch (const c10::Error& e) {
    std::cerr << "bench_suite: " << e.what_without_backtrace() << "\n";
    return 1;
  }
  if (!json_path.empty()) qgnn::write_file_atomic(json_path, report.dump(2) + "\n");
  return 0;
}
