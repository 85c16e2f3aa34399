#include "qgnn/pipeline/memory.h"

#include <malloc.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "qgnn/io/dataset.h"
#include "qgnn/nn/models.h"
#include "qgnn/quant/node_features.h"
#include "qgnn/quant/packed_tensor.h"
#include "qgnn/quant/quant_hooks.h"
#include "qgnn/train/checkpoint.h"
#include "qgnn/train/trainer.h"
#include "qgnn/util/threads.h"
#include "qgnn/util/timing.h"

namespace qgnn {

MemoryPolicy parse_memory_policy(const std::string& s) {
  MemoryPolicy a;
  a.label = s;
  if (s == "fp32") return a;
  if (s == "csr") {
    a.storage = XStorage::kCsr;
    return a;
  }
  const bool is_int = !s.empty() && std::all_of(s.begin(), s.end(),
                                                [](unsigned char c) { return std::isdigit(c); });
  // B: every point (embeddings and attention) at B bits, embeddings with per-row ranges.
  a.policy = BitPolicy::parse(is_int ? "bits=" + s + ";emb.gran=row" : s);
  a.storage =
      a.policy.bits({0, QuantRole::kEmbedding}) == 32 ? XStorage::kDense : XStorage::kPacked;
  return a;
}

namespace {

// Field names of InferenceMemory in its JSON form, one list for both directions.
#define QGNN_MEMORY_FIELDS(X)                                                                   \
  X(policy)                                                                                     \
  X(policy_spec)                                                                                \
  X(x_storage)                                                                                  \
  X(feature_norm)                                                                               \
  X(baseline_rss_mb)                                                                            \
  X(load_ms)                                                                                    \
  X(load_peak_rss_mb) X(loaded_rss_mb) X(x_mb) X(rss_after_forward_mb) X(peak_after_forward_mb) \
      X(infer_ms) X(infer_ms_all) X(feature_mb) X(stored_feature_mb) X(fp32_feature_mb)         \
          X(avg_bits) X(packed_held_mb) X(test_acc) X(num_nodes) X(num_features) X(num_edges)   \
              X(nnz) X(peak_rss_mb) X(ru_maxrss_mb)

InferenceMemory from_json(const nlohmann::json& j) {
  InferenceMemory m;
#define QGNN_READ(f) \
  if (j.contains(#f)) j.at(#f).get_to(m.f);
  QGNN_MEMORY_FIELDS(QGNN_READ)
  QGNN_READ(error)
  QGNN_READ(x_layout)
  QGNN_READ(fake_quant_agreement_pct)
#undef QGNN_READ
  return m;
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

// Column document frequencies of the file's x (rows with x != 0 per column), streamed.
at::Tensor streamed_df(const std::string& path, int64_t chunk_rows, int64_t f) {
  at::Tensor df = at::zeros({f}, at::kDouble);
  read_dataset_features(path, chunk_rows, [&](const at::Tensor& chunk, int64_t) {
    df.add_(chunk.ne(0).sum(0).to(at::kDouble));
  });
  return df;
}

// True when every value of the file's x is a non-negative integer (auto_feature_norm's
// test for counts), streamed.
bool streamed_counts(const std::string& path, int64_t chunk_rows) {
  bool counts = true;
  read_dataset_features(path, chunk_rows, [&](const at::Tensor& chunk, int64_t) {
    counts = counts && holds_counts(chunk);
  });
  return counts;
}

// Applies the stored part of a feature normalization to rows of x in place: min(x, 1)
// for kBinarize, x * idf for kTfidf (row normalizations happen inside the model).
void normalize_in_place(at::Tensor& rows, FeatureNorm norm, const at::Tensor& idf) {
  if (norm == FeatureNorm::kBinarize) rows.clamp_max_(1);
  if (norm == FeatureNorm::kTfidf) rows.mul_(idf.unsqueeze(0));
}

// Loads the graph and x (normalized as the model was trained, or as --feature-norm says)
// as `arg` asks, runs full-graph inference of the checkpoint's model (or an untrained
// sgquant-preset --model) and returns the measurements. Runs in the child.
InferenceMemory measure_in_child(const MemoryConfig& o, const MemoryPolicy& arg) {
  const std::string& path = o.dataset_path;
  InferenceMemory j;
  j.baseline_rss_mb = proc_status_mb("VmRSS");
  const auto load_start = std::chrono::steady_clock::now();
  std::optional<LoadedCheckpoint> ck;
  if (!o.checkpoint.empty()) {
    ck = load_checkpoint(o.checkpoint);
    TORCH_CHECK(ck->meta.extra.count("qat") == 0, "memory: ", o.checkpoint,
                " was trained with QAT; measure it with qgnn infer");
  }
  const int64_t split_seed = ck && ck->meta.split_seed >= 0 ? ck->meta.split_seed : o.seed;
  Dataset d = read_dataset(path, split_seed, /*load_features=*/arg.storage == XStorage::kDense);
  if (ck) check_checkpoint_fits(*ck, d);
  GraphOperators ops(d.graph);
  const int64_t n = d.num_nodes(), f = d.num_features();
  FeatureNorm norm =
      ck ? parse_feature_norm(ck->meta.feature_norm) : parse_feature_norm(o.feature_norm);
  if (norm == FeatureNorm::kAuto) {
    norm = d.x.defined()                         ? auto_feature_norm(d)
           : d.has_public_split                  ? FeatureNorm::kRow
           : streamed_counts(path, o.chunk_rows) ? FeatureNorm::kBinarize
                                                 : FeatureNorm::kNone;
  }
  at::Tensor idf;
  if (norm == FeatureNorm::kTfidf) {
    const at::Tensor df =
        d.x.defined() ? at::zeros({f}, at::kDouble) : streamed_df(path, o.chunk_rows, f);
    if (d.x.defined()) {  // row blocks: no [N, F] temporary beside x
      for (int64_t r = 0; r < n; r += o.chunk_rows) {
        df.add_(d.x.narrow(0, r, std::min(o.chunk_rows, n - r)).ne(0).sum(0).to(at::kDouble));
      }
    }
    idf = inverse_document_frequency(df, n);
  }
  j.feature_norm = to_string(norm);
  NodeFeatures x;
  int64_t x_bytes = 0;
  InputCodeStats x_stats;  // packed x: exact input bytes in the memory report
  if (arg.storage == XStorage::kDense) {
    normalize_in_place(d.x, norm, idf);  // in place: the reader's one copy is the only one
    x = NodeFeatures(d.x);
    x_bytes = d.x.numel() * 4;
  } else if (arg.storage == XStorage::kCsr) {
    std::vector<CsrGraph> parts;
    read_dataset_features(path, o.chunk_rows, [&](const at::Tensor& chunk, int64_t) {
      at::Tensor c = chunk;  // a fresh tensor per chunk: normalized in place
      normalize_in_place(c, norm, idf);
      parts.push_back(NodeFeatures::from_dense(c, 1.0).sparse());
    });
    x = concat_csr(parts, n, f);
    parts.clear();
    x_bytes = (n + 1) * 8 + x.nnz() * (8 + 4);
  } else {
    const Quantizer q0 = arg.policy.quantizer({0, QuantRole::kEmbedding});
    const QuantSpec& s0 = q0.spec();
    const RowBits rb = q0.row_bits(embedding_row_degree(ops));
    TORCH_CHECK(rb.num_groups() == 1 &&
                    (s0.granularity == Granularity::kRow || !s0.quantized() ||
                     s0.scheme == QuantScheme::kHalf) &&
                    !s0.column_scales && s0.layout == LayoutRule::kAuto,
                "memory: policy '", arg.label,
                "': streamed packing needs uniform layer-0 bits, emb.gran=row, layout auto and "
                "no column scales");
    std::vector<PackedTensor> parts;
    read_dataset_features(path, o.chunk_rows, [&](const at::Tensor& chunk, int64_t) {
      at::Tensor c = chunk;
      normalize_in_place(c, norm, idf);
      x_stats.append_rows(c);
      parts.push_back(q0.pack(c, rb));
    });
    auto packed = std::make_shared<const PackedTensor>(PackedTensor::concat_rows(std::move(parts)));
    x_bytes = packed->nbytes();
    j.x_layout = packed->layout() == PackedLayout::kIndexList ? "index list" : "bitmap";
    x = NodeFeatures(packed);
  }
  j.load_ms = ms_since(load_start);
  // Loading staged x in many small chunks (and, packed, their codes before concat_rows);
  // glibc keeps such freed heap mapped. Hand it back so that the peak below measures what
  // inference holds; the loading peak is reported on its own.
  ::malloc_trim(0);
  j.load_peak_rss_mb = proc_status_mb("VmHWM");
  j.loaded_rss_mb = proc_status_mb("VmRSS");
  j.x_mb = x_bytes / 1e6;

  std::shared_ptr<GnnModel> model_ptr;
  if (ck) {
    model_ptr = ck->model;
  } else {
    Preset preset = make_preset("sgquant", o.model, f, d.num_classes, DatasetFamily::kRandomSplit);
    preset.model.row_normalize_input = model_normalizes_rows(norm);
    manual_seed(static_cast<uint64_t>(o.seed));
    model_ptr = std::make_shared<GnnModel>(preset.model);
  }
  GnnModel& model = *model_ptr;
  std::shared_ptr<PackedInferenceHook> hook;
  if (arg.storage == XStorage::kPacked) {
    hook = std::make_shared<PackedInferenceHook>(arg.policy);
    model.set_quant_hook(hook);
  } else {
    model.set_quant_hook(nullptr);
  }
  model.eval();
  torch::NoGradGuard no_grad;
  std::vector<double> times;
  at::Tensor pred;
  std::vector<double> rss_after;  // VmRSS after each forward: anything a forward leaves
  std::vector<double> hwm_after;
  for (int64_t i = 0; i <= o.repeats; ++i) {
    pred = at::Tensor();  // the last forward's result is not part of this one's footprint
    const auto start = std::chrono::steady_clock::now();
    pred = model.forward(ops, x).argmax(1);
    if (i > 0) times.push_back(ms_since(start));  // i == 0 is the warm-up
    // glibc keeps some of a forward's freed blocks (its mmap threshold adapts upward), so
    // without this, peak RSS grows by tens of MB per repeat on the 2M-node graph: the peak
    // then measures one forward, not the allocator's retention across repeats.
    ::malloc_trim(0);
    rss_after.push_back(proc_status_mb("VmRSS"));
    hwm_after.push_back(proc_status_mb("VmHWM"));
  }
  j.rss_after_forward_mb = rss_after;
  j.peak_after_forward_mb = hwm_after;
  std::sort(times.begin(), times.end());
  const MemoryReport mem =
      memory_report(model, ops, arg.policy, arg.storage == XStorage::kPacked ? &x_stats : nullptr);
  int64_t held = 0;
  if (hook) {
    for (const auto& [key, bytes] : hook->stored_bytes()) held += bytes;
  }
  j.infer_ms = times.empty() ? 0.0 : times[times.size() / 2];
  j.infer_ms_all = times;
  j.feature_mb = mem.dense_mb();
  j.stored_feature_mb = mem.stored_mb();
  j.fp32_feature_mb = mem.fp32_mb();
  j.avg_bits = mem.average_bits();
  j.packed_held_mb = held / 1e6;
  j.test_acc = prediction_accuracy(pred, d.y, d.test_mask);
  j.num_nodes = n;
  j.num_features = f;
  j.num_edges = d.graph.num_edges();
  j.nnz = x.is_sparse() ? x.nnz() : -1;
  j.peak_rss_mb = proc_status_mb("VmHWM");  // before the optional check below
  if (o.check_fake && hook) {
    // The fake-quantized model on the float features: what packed inference must equal.
    x = NodeFeatures();
    Dataset full = read_dataset(path, split_seed);
    normalize_in_place(full.x, norm, idf);
    model.set_quant_hook(std::make_shared<FakeQuantHook>(arg.policy));
    const at::Tensor fake = model.forward(ops, NodeFeatures(full.x)).argmax(1);
    j.fake_quant_agreement_pct = 100.0 * fake.eq(pred).sum().item<double>() / n;
  }
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
InferenceMemory run_child(const MemoryConfig& o, const MemoryPolicy& arg) {
  int fds[2];
  TORCH_CHECK(::pipe(fds) == 0, "memory: pipe failed (", std::strerror(errno), ")");
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = ::fork();
  TORCH_CHECK(pid >= 0, "memory: fork failed (", std::strerror(errno), ")");
  if (pid == 0) {
    ::close(fds[0]);
    std::string report;
    int code = 0;
    try {
      set_num_threads(o.threads);
      report = to_json(measure_in_child(o, arg));
    } catch (const std::exception& e) {
      const std::string msg = e.what();
      report = nlohmann::json{{"error", msg.substr(0, msg.find('\n'))}}.dump();
      code = 1;
    }
    write_all(fds[1], report);
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
  nlohmann::json parsed;
  if (!text.empty()) parsed = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  InferenceMemory j;
  if (!parsed.is_object()) {
    j.error = WIFSIGNALED(status) ? "child killed by signal " + std::to_string(WTERMSIG(status))
                                  : std::string("child sent no report");
  } else {
    j = from_json(parsed);
  }
  j.policy = arg.label;
  j.policy_spec = arg.policy.to_string();
  j.x_storage = arg.storage == XStorage::kDense ? "dense fp32"
                : arg.storage == XStorage::kCsr ? "csr fp32"
                                                : "packed";
  j.ru_maxrss_mb = ru.ru_maxrss * 1024 / 1e6;  // Linux reports kB
  return j;
}

}  // namespace

InferenceMemory measure_inference_memory(const MemoryConfig& config, const MemoryPolicy& policy) {
  TORCH_CHECK(config.chunk_rows >= 1, "memory: chunk_rows must be >= 1 (got ", config.chunk_rows,
              ")");
  return run_child(config, policy);
}

std::string to_json(const InferenceMemory& m) {
  nlohmann::json j;
  if (!m.error.empty()) {
    j = {{"error", m.error},
         {"policy", m.policy},
         {"policy_spec", m.policy_spec},
         {"x_storage", m.x_storage},
         {"ru_maxrss_mb", m.ru_maxrss_mb}};
    return j.dump();
  }
#define QGNN_WRITE(f) j[#f] = m.f;
  QGNN_MEMORY_FIELDS(QGNN_WRITE)
#undef QGNN_WRITE
  j["feature_mb_source"] = "shapes (memory_report: dense codes + parameters)";
  if (!m.x_layout.empty()) j["x_layout"] = m.x_layout;
  if (m.fake_quant_agreement_pct >= 0) j["fake_quant_agreement_pct"] = m.fake_quant_agreement_pct;
  return j.dump();
}

}  // namespace qgnn
