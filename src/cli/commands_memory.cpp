// `qgnn memory`: peak resident memory of full-graph inference under several bit policies,
// each measured in its own child process (fork) so that one policy's allocations cannot
// hide or inflate another's peak.
#include <sys/resource.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/outputs.h"
#include "cli/usage.h"
#include "qgnn/io/dataset.h"
#include "qgnn/io/text_file.h"
#include "qgnn/nn/models.h"
#include "qgnn/ops/features.h"
#include "qgnn/quant/bit_policy.h"
#include "qgnn/quant/packed_tensor.h"
#include "qgnn/quant/quant_hooks.h"
#include "qgnn/util/threads.h"

namespace qgnn::cli {
namespace {

enum class XStorage { kDense, kCsr, kPacked };

struct PolicyArg {
  std::string label;  // as given on the command line
  XStorage storage = XStorage::kDense;
  BitPolicy policy;  // full precision for kDense / kCsr
};

PolicyArg parse_policy_arg(const std::string& s) {
  PolicyArg a;
  a.label = s;
  if (s == "fp32") return a;
  if (s == "csr") {
    a.storage = XStorage::kCsr;
    return a;
  }
  const bool is_int = !s.empty() && std::all_of(s.begin(), s.end(), ::isdigit);
  a.policy = BitPolicy::parse(is_int ? "emb=" + s + ";emb.gran=row" : s);
  a.storage =
      a.policy.bits({0, QuantRole::kEmbedding}) == 32 ? XStorage::kDense : XStorage::kPacked;
  return a;
}

// A "<key>: <n> kB" line of /proc/self/status in MB (1e6 bytes); 0 when absent.
double proc_status_mb(const char* key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const size_t n = std::strlen(key);
  while (std::getline(in, line)) {
    if (line.compare(0, n, key) == 0 && line.size() > n && line[n] == ':') {
      return std::stod(line.substr(n + 1)) * 1024 / 1e6;
    }
  }
  return 0.0;
}

double ms_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

// Stacks CSR row blocks [r_i, F] into one [sum r_i, F] CSR matrix.
NodeFeatures concat_csr(const std::vector<CsrGraph>& parts, int64_t rows, int64_t cols) {
  std::vector<at::Tensor> indices, values;
  at::Tensor indptr = at::empty({rows + 1}, at::kLong);
  int64_t* ip = indptr.data_ptr<int64_t>();
  ip[0] = 0;
  int64_t row = 0;
  for (const CsrGraph& p : parts) {
    const int64_t* pp = p.indptr().data_ptr<int64_t>();
    for (int64_t r = 0; r < p.num_rows(); ++r) ip[row + r + 1] = ip[row] + pp[r + 1];
    row += p.num_rows();
    indices.push_back(p.indices());
    values.push_back(p.weights());
  }
  return NodeFeatures(CsrGraph(indptr, at::cat(indices), at::cat(values), cols));
}

// Loads the graph and x (binarized, min(x, 1)) as `arg` asks, runs full-graph inference of
// an untrained sgquant-preset model and returns the measurements. Runs in the child.
nlohmann::json measure_in_child(const MemoryOptions& o, const std::string& path,
                                const PolicyArg& arg) {
  nlohmann::json j;
  j["baseline_rss_mb"] = proc_status_mb("VmRSS");
  const auto load_start = std::chrono::steady_clock::now();
  Dataset d = read_dataset(path, o.seed, /*load_features=*/arg.storage == XStorage::kDense);
  GraphOperators ops(d.graph);
  const int64_t n = d.num_nodes(), f = d.num_features();
  NodeFeatures x;
  int64_t x_bytes = 0;
  InputCodeStats x_stats;  // packed x: exact input bytes in the memory report
  if (arg.storage == XStorage::kDense) {
    d.x.clamp_max_(1);  // in place: the reader's one copy is the only one
    x = NodeFeatures(d.x);
    x_bytes = d.x.numel() * 4;
  } else if (arg.storage == XStorage::kCsr) {
    std::vector<CsrGraph> parts;
    read_dataset_features(path, o.chunk_rows, [&](const at::Tensor& chunk, int64_t) {
      chunk.clamp_max_(1);  // each chunk is a fresh tensor: binarize it in place
      parts.push_back(NodeFeatures::from_dense(chunk, 1.0).sparse());
    });
    x = concat_csr(parts, n, f);
    parts.clear();
    x_bytes = (n + 1) * 8 + x.nnz() * (8 + 4);
  } else {
    const QuantPoint p0{0, QuantRole::kEmbedding};
    const RowBits rb = arg.policy.row_bits(p0, embedding_row_degree(ops));
    const Granularity gran = arg.policy.granularity(QuantRole::kEmbedding);
    TORCH_CHECK(rb.num_groups() == 1 && (gran == Granularity::kRow || rb.group_bits[0] >= 16),
                "memory: policy '", arg.label,
                "': streamed packing needs uniform layer-0 bits and emb.gran=row");
    std::vector<PackedTensor> parts;
    read_dataset_features(path, o.chunk_rows, [&](const at::Tensor& chunk, int64_t) {
      chunk.clamp_max_(1);
      x_stats.append_rows(chunk);
      parts.push_back(PackedTensor::pack(chunk, rb, gran));
    });
    auto packed = std::make_shared<const PackedTensor>(PackedTensor::concat_rows(std::move(parts)));
    x_bytes = packed->nbytes();
    j["x_layout"] = packed->layout() == PackedLayout::kIndexList ? "index list" : "bitmap";
    x = NodeFeatures(packed);
  }
  j["load_ms"] = ms_since(load_start);
  j["x_mb"] = x_bytes / 1e6;

  const ModelKind kind = parse_model_kind(o.model);
  Preset preset = make_preset("sgquant", kind, f, d.num_classes, DatasetFamily::kRandomSplit);
  manual_seed(static_cast<uint64_t>(o.seed));
  GnnModel model(preset.model);
  std::shared_ptr<PackedInferenceHook> hook;
  if (arg.storage == XStorage::kPacked) {
    hook = std::make_shared<PackedInferenceHook>(arg.policy);
    model.set_quant_hook(hook);
  }
  model.eval();
  torch::NoGradGuard no_grad;
  std::vector<double> times;
  at::Tensor logits;
  for (int64_t i = 0; i <= o.repeats; ++i) {
    const auto start = std::chrono::steady_clock::now();
    logits = model.forward(ops, x);
    if (i > 0) times.push_back(ms_since(start));  // i == 0 is the warm-up
  }
  std::sort(times.begin(), times.end());
  const MemoryReport mem =
      memory_report(model, ops, arg.policy, arg.storage == XStorage::kPacked ? &x_stats : nullptr);
  int64_t held = 0;
  if (hook) {
    for (const auto& [key, bytes] : hook->stored_bytes()) held += bytes;
  }
  j["infer_ms"] = times.empty() ? 0.0 : times[times.size() / 2];
  j["feature_mb"] = mem.dense_mb();
  j["stored_feature_mb"] = mem.stored_mb();
  j["fp32_feature_mb"] = mem.fp32_mb();
  j["avg_bits"] = mem.average_bits();
  j["packed_held_mb"] = held / 1e6;
  j["logits_sum"] = logits.sum().item<double>();
  j["num_nodes"] = n;
  j["num_features"] = f;
  j["nnz"] = x.is_sparse() ? x.nnz() : -1;
  j["peak_rss_mb"] = proc_status_mb("VmHWM");
  return j;
}

// Writes all of `s` to fd (retrying short writes); false on error.
bool write_all(int fd, const std::string& s) {
  size_t done = 0;
  while (done < s.size()) {
    const ssize_t w = ::write(fd, s.data() + done, s.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    done += static_cast<size_t>(w);
  }
  return true;
}

// Forks a child that measures `arg` and returns its report (with "error" on failure and
// "ru_maxrss_mb", the kernel's peak RSS of the child, added by the parent).
nlohmann::json run_child(const MemoryOptions& o, const std::string& path, const PolicyArg& arg) {
  int fds[2];
  TORCH_CHECK(::pipe(fds) == 0, "memory: pipe failed (", std::strerror(errno), ")");
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = ::fork();
  TORCH_CHECK(pid >= 0, "memory: fork failed (", std::strerror(errno), ")");
  if (pid == 0) {
    ::close(fds[0]);
    nlohmann::json j;
    int code = 0;
    try {
      set_num_threads(o.common.threads);
      j = measure_in_child(o, path, arg);
    } catch (const std::exception& e) {
      const std::string msg = e.what();
      j = {{"error", msg.substr(0, msg.find('\n'))}};
      code = 1;
    }
    write_all(fds[1], j.dump());
    ::close(fds[1]);
    ::_exit(code);
  }
  ::close(fds[1]);
  std::string text;
  char buf[4096];
  while (true) {
    const ssize_t r = ::read(fds[0], buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    text.append(buf, static_cast<size_t>(r));
  }
  ::close(fds[0]);
  int status = 0;
  struct rusage ru {};
  while (::wait4(pid, &status, 0, &ru) < 0 && errno == EINTR) {
  }
  nlohmann::json j;
  if (!text.empty()) j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) {
    j = {{"error", WIFSIGNALED(status)
                       ? "child killed by signal " + std::to_string(WTERMSIG(status))
                       : std::string("child sent no report")}};
  }
  j["policy"] = arg.label;
  j["policy_spec"] = arg.policy.to_string();
  j["x_storage"] = arg.storage == XStorage::kDense ? "dense fp32"
                   : arg.storage == XStorage::kCsr ? "csr fp32"
                                                   : "packed";
  j["ru_maxrss_mb"] = ru.ru_maxrss * 1024 / 1e6;  // Linux reports kB
  return j;
}

std::string fmt2(double v, int digits = 1) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

}  // namespace

int run_memory(const MemoryOptions& o) {
  TORCH_CHECK(o.chunk_rows >= 1, "memory: --chunk-rows must be >= 1 (got ", o.chunk_rows, ")");
  parse_model_kind(o.model);  // fail fast, before any child
  std::vector<PolicyArg> args;
  for (const std::string& s : o.policies) {
    try {
      args.push_back(parse_policy_arg(s));
    } catch (const c10::Error& e) {
      const std::string msg = e.what_without_backtrace();
      throw UsageError("--policies: " + msg.substr(0, msg.find('\n')));
    }
  }
  const std::string path = resolve_dataset_path(o.dataset);
  Outputs outputs;
  outputs.reserve("--json", o.common.json);
  // The parent runs no libtorch kernels: a child forked after OpenMP started its thread
  // pool could deadlock, and the parent's own memory would count in every child's peak.
  std::cout << "full-graph inference of an untrained " << o.model << " (sgquant preset) on " << path
            << ", x binarized (min(x, 1)); one child process per policy\n"
            << "| policy | x storage | peak RSS MB | baseline RSS MB | x held MB | feature MB "
               "(fp32 MB) | avg bits | load ms | infer ms |\n"
            << "| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n";
  nlohmann::json rows = nlohmann::json::array();
  int failures = 0;
  std::string first_failure;
  for (const PolicyArg& a : args) {
    nlohmann::json j = run_child(o, path, a);
    if (j.contains("error")) {
      if (failures++ == 0) first_failure = a.label + ": " + j["error"].get<std::string>();
      std::cout << "| " << a.label << " | " << j["x_storage"].get<std::string>()
                << " | error: " << j["error"].get<std::string>() << " |\n";
    } else {
      std::string storage = j["x_storage"].get<std::string>();
      if (j.contains("x_layout")) storage += " (" + j["x_layout"].get<std::string>() + ")";
      std::cout << "| " << a.label << " | " << storage << " | "
                << fmt2(j["peak_rss_mb"].get<double>()) << " | "
                << fmt2(j["baseline_rss_mb"].get<double>()) << " | "
                << fmt2(j["x_mb"].get<double>()) << " | " << fmt2(j["feature_mb"].get<double>())
                << " (" << fmt2(j["fp32_feature_mb"].get<double>()) << ") | "
                << fmt2(j["avg_bits"].get<double>(), 2) << " | "
                << fmt2(j["load_ms"].get<double>(), 0) << " | " << fmt2(j["infer_ms"].get<double>())
                << " |\n";
    }
    std::cout.flush();
    rows.push_back(std::move(j));
  }
  TORCH_CHECK(failures == 0, "memory: ", failures, " of ", args.size(),
              " policies failed (first: ", first_failure, ")");
  const nlohmann::json report = {
      {"dataset", path}, {"model", o.model},           {"preset", "sgquant"},
      {"seed", o.seed},  {"chunk_rows", o.chunk_rows}, {"threads", o.common.threads},
      {"rows", rows}};
  outputs.write_text(o.common.json, report.dump(2) + "\n");
  outputs.commit();
  return 0;
}

}  // namespace qgnn::cli
