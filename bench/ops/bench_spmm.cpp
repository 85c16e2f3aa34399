// Micro-benchmarks of the sparse ops against libtorch baselines, in one run.
//
//   bench_ops [--benchmark_filter=...]
//   QGNN_BENCH_DATASET=data/cora.npz,/path/amazon_computers.npz bench_ops
//
// Graphs: a random power-law graph (always) and each dataset in QGNN_BENCH_DATASET
// (comma-separated .npz paths), used through gcn_normalized() like a GCN layer.
// SpMM bytes processed per call = E * (4F gathered x row + 8 index + 4 weight)
// + R * (4F output + 8 indptr); counter stream_frac = that rate / the STREAM triad
// bandwidth measured at start-up in this process (STREAM counts 3 x 4 bytes per element).
// Gathered rows of x may come from cache (x is 14 MB for Amazon Computers at F = 256), so
// stream_frac can exceed 1.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>
#include <malloc.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

// Internal header (run-time ISA switch); bench_ops has no src/ include directory.
#include "../bench_util.h"
#include "ops/cpu/kernels.h"
#include "qgnn/graph/csr_graph.h"
#include "qgnn/io/dataset.h"
#include "qgnn/ops/dropout.h"
#include "qgnn/ops/edge_softmax.h"
#include "qgnn/ops/sddmm.h"
#include "qgnn/ops/spmm.h"

namespace {

double g_stream_bytes_per_s = 0;  // best STREAM triad rate, bytes / s

// STREAM triad a = b + s * c over 3 x 64 MiB arrays, parallel like the kernels; best of 8.
// Power-law-ish directed graph: in-degrees Pareto(alpha = 2, mean avg_deg) capped at
// 4096; sources drawn with density ~ 1 / sqrt(rank) (hot nodes) under a random relabeling,
// rows unsorted.
qgnn::CsrGraph power_law_graph(int64_t n, double avg_deg, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(1e-9, 1.0);
  std::vector<int64_t> relabel(n);
  for (int64_t i = 0; i < n; ++i) relabel[i] = i;
  std::shuffle(relabel.begin(), relabel.end(), rng);
  std::vector<int64_t> indptr{0}, indices;
  indices.reserve(static_cast<size_t>(n * avg_deg * 1.2));
  for (int64_t i = 0; i < n; ++i) {
    const double deg = std::min(4096.0, avg_deg / 2 / std::sqrt(u(rng)));
    for (int64_t k = 0; k < static_cast<int64_t>(deg); ++k) {
      const double r = u(rng);
      indices.push_back(relabel[std::min<int64_t>(n - 1, static_cast<int64_t>(n * r * r))]);
    }
    indptr.push_back(static_cast<int64_t>(indices.size()));
  }
  return qgnn::CsrGraph(at::tensor(indptr, at::kLong), at::tensor(indices, at::kLong));
}

struct BenchGraph {
  std::string name;
  qgnn::CsrGraph g;  // weighted (GCN-normalized)
  at::Tensor coo;    // torch sparse COO of the same matrix (coalesced)
  at::Tensor row, col, w;
};

std::vector<std::shared_ptr<BenchGraph>> g_graphs;

std::shared_ptr<BenchGraph> make_bench_graph(const std::string& name, const qgnn::CsrGraph& a) {
  auto b = std::make_shared<BenchGraph>();
  b->name = name;
  b->g = a.gcn_normalized();
  b->g.transposed();  // built once, outside the timings (cached in the graph)
  b->row = b->g.row_ids();
  b->col = b->g.indices();
  b->w = b->g.weights();
  b->coo =
      at::sparse_coo_tensor(at::stack({b->row, b->col}), b->w, {b->g.num_rows(), b->g.num_cols()})
          .coalesce();
  return b;
}

void set_spmm_counters(benchmark::State& st, const qgnn::CsrGraph& g, int64_t f) {
  const double bytes = static_cast<double>(g.num_edges()) * (4.0 * f + 12.0) +
                       static_cast<double>(g.num_rows()) * (4.0 * f + 8.0);
  st.SetBytesProcessed(static_cast<int64_t>(bytes * st.iterations()));
  st.counters["stream_frac"] = benchmark::Counter(bytes / g_stream_bytes_per_s,
                                                  benchmark::Counter::kIsIterationInvariantRate);
  st.counters["E"] = static_cast<double>(g.num_edges());
}

enum class Impl { kQgnn, kQgnnAvx2, kTorchSparseCoo, kIndexAdd };

void bm_spmm(benchmark::State& st, std::shared_ptr<BenchGraph> b, Impl impl) {
  const int64_t f = st.range(0);
  torch::NoGradGuard no_grad;
  at::manual_seed(0);
  const at::Tensor x = at::randn({b->g.num_cols(), f});
  if (impl == Impl::kQgnnAvx2) qgnn::cpu::set_isa_limit(qgnn::cpu::Isa::kAvx2);
  for (auto _ : st) {
    at::Tensor y;
    switch (impl) {
      case Impl::kQgnn:
      case Impl::kQgnnAvx2:
        y = qgnn::spmm(b->g, x);
        break;
      case Impl::kTorchSparseCoo:
        y = at::mm(b->coo, x);
        break;
      case Impl::kIndexAdd:
        y = at::zeros({b->g.num_rows(), f})
                .index_add_(0, b->row, x.index_select(0, b->col) * b->w.unsqueeze(1));
        break;
    }
    benchmark::DoNotOptimize(y.data_ptr());
  }
  qgnn::cpu::set_isa_limit(qgnn::cpu::Isa::kAvx512);
  set_spmm_counters(st, b->g, f);
}

// Backward of Y = A X: dX = A^T dY through the cached transpose (one SpMM).
void bm_spmm_backward(benchmark::State& st, std::shared_ptr<BenchGraph> b) {
  const int64_t f = st.range(0);
  const at::Tensor x = at::randn({b->g.num_cols(), f}).requires_grad_();
  const at::Tensor y = qgnn::spmm(b->g, x);
  const at::Tensor dy = at::randn(y.sizes());
  for (auto _ : st) {
    auto g = torch::autograd::grad({y}, {x}, {dy}, /*retain_graph=*/true);
    benchmark::DoNotOptimize(g[0].data_ptr());
  }
  set_spmm_counters(st, b->g, f);
}

// GAT-style attention on the graph: H = 8 heads of D = 8.
void bm_gat_ops(benchmark::State& st, std::shared_ptr<BenchGraph> b, int which) {
  const int64_t n = b->g.num_rows(), e = b->g.num_edges(), h = 8, d = 8;
  torch::NoGradGuard no_grad;
  const at::Tensor x = at::randn({n, h, d});
  const at::Tensor s = at::randn({e, h});
  const at::Tensor alpha = qgnn::edge_softmax(b->g, s);
  for (auto _ : st) {
    at::Tensor y;
    if (which == 0) y = qgnn::spmm(b->g, x, qgnn::Reduce::kSum, alpha);
    if (which == 1) y = qgnn::edge_softmax(b->g, s);
    if (which == 2) y = qgnn::sddmm_dot(b->g, x, x);
    benchmark::DoNotOptimize(y.data_ptr());
  }
  st.counters["E"] = static_cast<double>(e);
}

void bm_dropout(benchmark::State& st, bool ours) {
  const at::Tensor x = at::rand({13752, 767});
  torch::NoGradGuard no_grad;
  for (auto _ : st) {
    const at::Tensor y = ours ? qgnn::dropout(x, 0.5, true) : torch::dropout(x, 0.5, true);
    benchmark::DoNotOptimize(y.data_ptr());
  }
  st.SetBytesProcessed(static_cast<int64_t>(2.0 * 4.0 * x.numel() * st.iterations()));
}

void bm_stream(benchmark::State& st) {
  for (auto _ : st) st.SetIterationTime(1.0);
  st.counters["triad_GBps"] = g_stream_bytes_per_s / 1e9;
}

void register_all() {
  benchmark::RegisterBenchmark("stream_triad", bm_stream)->Iterations(1)->UseManualTime();
  for (const auto& b : g_graphs) {
    const std::string p = "spmm/" + b->name + "/";
    const std::pair<const char*, Impl> impls[] = {{"qgnn", Impl::kQgnn},
                                                  {"qgnn_avx2", Impl::kQgnnAvx2},
                                                  {"torch_sparse_coo_mm", Impl::kTorchSparseCoo},
                                                  {"index_select_index_add", Impl::kIndexAdd}};
    for (const auto& [name, impl] : impls) {
      if (impl == Impl::kQgnnAvx2 && !qgnn::cpu::cpu_has_avx512()) continue;
      benchmark::RegisterBenchmark((p + name).c_str(), bm_spmm, b, impl)
          ->Arg(16)
          ->Arg(64)
          ->Arg(256)
          ->UseRealTime()
          ->Unit(benchmark::kMicrosecond);
    }
    benchmark::RegisterBenchmark(("spmm_backward_dx/" + b->name + "/qgnn").c_str(),
                                 bm_spmm_backward, b)
        ->Arg(16)
        ->Arg(64)
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
    const char* gat[] = {"spmm_h8d8", "edge_softmax_h8", "sddmm_dot_h8d8"};
    for (int k = 0; k < 3; ++k) {
      benchmark::RegisterBenchmark(("gat/" + b->name + "/" + gat[k]).c_str(), bm_gat_ops, b, k)
          ->UseRealTime()
          ->Unit(benchmark::kMicrosecond);
    }
  }
  benchmark::RegisterBenchmark("dropout_13752x767/qgnn", bm_dropout, true)
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("dropout_13752x767/torch", bm_dropout, false)
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  // glibc returns blocks >= 32 MiB to the OS on free, so every large tensor (the 42 MB
  // dropout output) pays ~10k page faults per call; keep freed memory in the heap instead,
  // as a training process should (QGNN_BENCH_LIBC_MALLOC=1 measures the libc default).
  const bool keep_heap = std::getenv("QGNN_BENCH_LIBC_MALLOC") == nullptr;
  if (keep_heap) {
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
  }
  benchmark::AddCustomContext("malloc", keep_heap ? "mmap/trim threshold 1 GiB" : "libc default");
  // Threads: QGNN_BENCH_THREADS, else one per hardware thread (REFERENCE.md uses 2).
  qgnn::bench::set_threads_from_env();
  g_stream_bytes_per_s = qgnn::bench::triad_gbs(int64_t{1} << 24, 8) * 1e9;
  g_graphs.push_back(make_bench_graph("powerlaw_n131072_d16", power_law_graph(131072, 16, 1)));
  for (const std::string& path : qgnn::bench::dataset_paths_from_env()) {
    const qgnn::Dataset d = qgnn::read_dataset(path);
    g_graphs.push_back(make_bench_graph(d.name, d.graph));
  }
  benchmark::AddCustomContext("threads", std::to_string(at::get_num_threads()));
  benchmark::AddCustomContext("isa", qgnn::cpu::isa_name(qgnn::cpu::active_isa()));
  benchmark::AddCustomContext("stream_triad_GBps", std::to_string(g_stream_bytes_per_s / 1e9));
  register_all();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
