// Micro-benchmarks of packed quantized storage against the float32 operations it replaces.
//
//   bench_quant [--benchmark_filter=...]
//   QGNN_BENCH_DATASET=/path/amazon_computers.npz bench_quant   (adds a real graph)
//   QGNN_BENCH_THREADS=1 bench_quant                             (default: all hardware threads)
//
// Sizes follow Amazon Computers (N = 13752 nodes, E ~ 491722 edges): a seeded random graph
// of that size (in-degrees uniform in [0, 71], uniform sources) with random edge weights.
//   pack/<bits>, decode/<bits>, fake_quantize/<bits>: [N, F = 256] matrix, per-row ranges.
//     bytes_per_second = float32 bytes (input of pack, output of decode); counter
//     packed_GBps = the same rate in packed bytes.
//   spmm/<graph>/float: the qgnn float SpMM (cpu::spmm_sum_kernel) on the decoded matrix;
//   spmm/<graph>/packed_b<bits>: packed_spmm on the packed matrix (fused dequantization);
//     Args = {F, bits}; bits 432 = row groups of 4, 3 and 2 bits (topology-aware).
//   linear/float: at::linear on the decoded matrix; linear/packed: packed_linear.
//   linear_sparse: a sparse 0/1 bag-of-words input at 1 bit, per-row ranges: Cora-like
//     (data 0: N = 2708, F = 1433, 1.3% ones) and CiteSeer-like (data 1: 3327 x 3703,
//     0.85%); Args = {data, out, layout}: layout 0 = packed_linear on the bitmap
//     (PackLayoutChoice::kBitmap: decode tiles + GEMM), 1 = on the index list (what pack()
//     chooses), 2 = at::linear on the dense float matrix. Counter nbytes_KB: stored bytes.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <cstdlib>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

// Internal headers (run-time ISA switch, packed_linear's GEMM switch); bench_quant has no
// src/ include directory.
#include "../bench_util.h"
#include "ops/cpu/kernels.h"
#include "qgnn/graph/csr_graph.h"
#include "qgnn/io/dataset.h"
#include "qgnn/ops/spmm.h"
#include "qgnn/quant/packed_tensor.h"
#include "quant/cpu/pack_kernel.h"

namespace {

constexpr int64_t kNodes = 13752;
constexpr double kAvgDeg = 35.76;

qgnn::CsrGraph random_graph(int64_t n, double avg_deg, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> deg(0, static_cast<int64_t>(2 * avg_deg));
  std::uniform_int_distribution<int64_t> src(0, n - 1);
  std::uniform_real_distribution<float> wdist(0.05f, 1.0f);
  std::vector<int64_t> indptr{0}, indices;
  std::vector<float> w;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t d = deg(rng);
    for (int64_t k = 0; k < d; ++k) {
      indices.push_back(src(rng));
      w.push_back(wdist(rng));
    }
    indptr.push_back(static_cast<int64_t>(indices.size()));
  }
  return qgnn::CsrGraph(at::tensor(indptr, at::kLong), at::tensor(indices, at::kLong),
                        at::tensor(w, at::kFloat));
}

struct BenchGraph {
  std::string name;
  qgnn::CsrGraph g;
};
std::vector<std::shared_ptr<BenchGraph>> g_graphs;

qgnn::RowBits bits_arg(int64_t code, int64_t n) {
  if (code != 432) return qgnn::RowBits::uniform(static_cast<int>(code));
  // Topology-aware style: a third of the rows at each of 4, 3, 2 bits.
  at::Tensor group = at::arange(n, at::kLong).remainder(3).to(at::kByte);
  return qgnn::RowBits{group, {4, 3, 2}};
}

at::Tensor features(int64_t n, int64_t f) {
  at::manual_seed(0);
  return at::randn({n, f});
}

void bm_pack(benchmark::State& st) {
  const int64_t f = st.range(0);
  const at::Tensor x = features(kNodes, f);
  const qgnn::RowBits rows = bits_arg(st.range(1), kNodes);
  int64_t code_bytes = 0;
  for (auto _ : st) {
    const qgnn::PackedTensor p = qgnn::PackedTensor::pack(x, rows);
    code_bytes = p.code_bytes();
    benchmark::DoNotOptimize(p.row_data(0));
  }
  st.SetBytesProcessed(4 * x.numel() * st.iterations());
  st.counters["packed_GBps"] = benchmark::Counter(static_cast<double>(code_bytes) / 1e9,
                                                  benchmark::Counter::kIsIterationInvariantRate);
}

void bm_decode(benchmark::State& st) {
  const int64_t f = st.range(0);
  const qgnn::PackedTensor p =
      qgnn::PackedTensor::pack(features(kNodes, f), bits_arg(st.range(1), kNodes));
  at::Tensor out = at::empty({kNodes, f});
  for (auto _ : st) {
    p.decode_rows(0, kNodes, out.data_ptr<float>());
    benchmark::DoNotOptimize(out.data_ptr());
  }
  st.SetBytesProcessed(4 * out.numel() * st.iterations());
  st.counters["packed_GBps"] = benchmark::Counter(static_cast<double>(p.code_bytes()) / 1e9,
                                                  benchmark::Counter::kIsIterationInvariantRate);
}

// Reference point for decode: copying the float matrix (what 32-bit storage costs).
void bm_float_copy(benchmark::State& st) {
  const at::Tensor x = features(kNodes, st.range(0));
  at::Tensor out = at::empty_like(x);
  for (auto _ : st) {
    out.copy_(x);
    benchmark::DoNotOptimize(out.data_ptr());
  }
  st.SetBytesProcessed(4 * out.numel() * st.iterations());
}

void bm_fake_quantize(benchmark::State& st) {
  torch::NoGradGuard no_grad;
  const at::Tensor x = features(kNodes, st.range(0));
  const qgnn::RowBits rows = bits_arg(st.range(1), kNodes);
  for (auto _ : st) {
    const at::Tensor y = qgnn::fake_quantize(x, rows);
    benchmark::DoNotOptimize(y.data_ptr());
  }
  st.SetBytesProcessed(4 * x.numel() * st.iterations());
}

void bm_spmm_float(benchmark::State& st, std::shared_ptr<BenchGraph> b) {
  const int64_t f = st.range(0);
  const at::Tensor x = features(b->g.num_cols(), f);
  at::Tensor out = at::empty({b->g.num_rows(), f});
  for (auto _ : st) {
    qgnn::cpu::spmm_sum_kernel(b->g, x, b->g.weights(), 1, out);
    benchmark::DoNotOptimize(out.data_ptr());
  }
  st.counters["E"] = static_cast<double>(b->g.num_edges());
}

void bm_spmm_packed(benchmark::State& st, std::shared_ptr<BenchGraph> b) {
  const int64_t f = st.range(0);
  const qgnn::PackedTensor x = qgnn::PackedTensor::pack(features(b->g.num_cols(), f),
                                                        bits_arg(st.range(1), b->g.num_cols()));
  for (auto _ : st) {
    const at::Tensor y = qgnn::packed_spmm(b->g, x);
    benchmark::DoNotOptimize(y.data_ptr());
  }
  st.counters["E"] = static_cast<double>(b->g.num_edges());
  st.counters["nbytes_MB"] = static_cast<double>(x.nbytes()) / 1e6;
}

// Args = {F, out, bits, blas}; bits 0 = at::linear on the decoded float matrix; blas 1 =
// packed_linear's fallback (BLAS blocks) instead of oneDNN tiles.
void bm_linear(benchmark::State& st) {
  torch::NoGradGuard no_grad;
  const int64_t f = st.range(0), o = st.range(1), bits = st.range(2);
  qgnn::quant_cpu::set_packed_linear_onednn(st.range(3) == 0);
  const at::Tensor w = at::randn({o, f});
  const at::Tensor bias = at::randn({o});
  const qgnn::PackedTensor x =
      qgnn::PackedTensor::pack(features(kNodes, f), bits_arg(bits == 0 ? 8 : bits, kNodes));
  const at::Tensor xf = x.decode();
  for (auto _ : st) {
    const at::Tensor y = bits == 0 ? at::linear(xf, w, bias) : qgnn::packed_linear(x, w, bias);
    benchmark::DoNotOptimize(y.data_ptr());
  }
  qgnn::quant_cpu::set_packed_linear_onednn(true);
  st.counters["GFLOPs"] =
      benchmark::Counter(2.0 * kNodes * f * o / 1e9, benchmark::Counter::kIsIterationInvariantRate);
}

struct SparseInput {
  int64_t n, f;
  double density;
};
constexpr SparseInput kSparseInputs[] = {{2708, 1433, 0.013}, {3327, 3703, 0.0085}};

void bm_linear_sparse(benchmark::State& st) {
  torch::NoGradGuard no_grad;
  const SparseInput in = kSparseInputs[st.range(0)];
  const int64_t o = st.range(1), layout = st.range(2);
  at::manual_seed(0);
  const at::Tensor xf = (at::rand({in.n, in.f}) < in.density).to(at::kFloat);
  const at::Tensor w = at::randn({o, in.f});
  const at::Tensor bias = at::randn({o});
  const qgnn::PackedTensor x = qgnn::PackedTensor::pack(
      xf, qgnn::RowBits::uniform(1), qgnn::Granularity::kRow,
      layout == 1 ? qgnn::PackLayoutChoice::kAuto : qgnn::PackLayoutChoice::kBitmap);
  if ((layout == 1) != (x.layout() == qgnn::PackedLayout::kIndexList)) {
    st.SkipWithError("unexpected layout");
    return;
  }
  for (auto _ : st) {
    const at::Tensor y = layout == 2 ? at::linear(xf, w, bias) : qgnn::packed_linear(x, w, bias);
    benchmark::DoNotOptimize(y.data_ptr());
  }
  st.counters["nbytes_KB"] = static_cast<double>(layout == 2 ? 4 * xf.numel() : x.nbytes()) / 1e3;
}

void register_all() {
  for (const char* name : {"pack", "decode", "fake_quantize"}) {
    auto fn = std::string(name) == "pack"     ? bm_pack
              : std::string(name) == "decode" ? bm_decode
                                              : bm_fake_quantize;
    auto* b = benchmark::RegisterBenchmark(name, fn);
    for (int64_t bits : {1, 2, 3, 4, 5, 8, 16, 32, 432}) b->Args({256, bits});
    b->ArgNames({"F", "bits"})->UseRealTime()->Unit(benchmark::kMicrosecond);
  }
  benchmark::RegisterBenchmark("float_copy", bm_float_copy)
      ->Arg(256)
      ->ArgName("F")
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
  for (const auto& g : g_graphs) {
    benchmark::RegisterBenchmark(("spmm/" + g->name + "/float").c_str(), bm_spmm_float, g)
        ->Arg(64)
        ->Arg(256)
        ->ArgName("F")
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
    auto* b =
        benchmark::RegisterBenchmark(("spmm/" + g->name + "/packed").c_str(), bm_spmm_packed, g);
    for (int64_t f : {64, 256})
      for (int64_t bits : {1, 2, 4, 8, 432}) b->Args({f, bits});
    b->ArgNames({"F", "bits"})->UseRealTime()->Unit(benchmark::kMicrosecond);
  }
  auto* lin = benchmark::RegisterBenchmark("linear", bm_linear);
  for (int64_t f : {64, 256, 767}) {
    lin->Args({f, 64, 0, 0});
    for (int64_t bits : {4, 8}) lin->Args({f, 64, bits, 0});
    lin->Args({f, 64, 4, 1});
  }
  lin->ArgNames({"F", "out", "bits", "blas"})->UseRealTime()->Unit(benchmark::kMicrosecond);
  auto* sparse = benchmark::RegisterBenchmark("linear_sparse", bm_linear_sparse);
  for (int64_t data : {0, 1})
    for (int64_t out : {16, 64})
      for (int64_t layout : {0, 1, 2}) sparse->Args({data, out, layout});
  sparse->ArgNames({"data", "out", "layout"})->UseRealTime()->Unit(benchmark::kMicrosecond);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  qgnn::bench::set_threads_from_env();
  g_graphs.push_back(std::make_shared<BenchGraph>(
      BenchGraph{"random_n13752_d36", random_graph(kNodes, kAvgDeg, 1)}));
  for (const std::string& path : qgnn::bench::dataset_paths_from_env()) {
    const qgnn::Dataset d = qgnn::read_dataset(path);
    g_graphs.push_back(std::make_shared<BenchGraph>(BenchGraph{d.name, d.graph.gcn_normalized()}));
  }
  benchmark::AddCustomContext("threads", std::to_string(at::get_num_threads()));
  benchmark::AddCustomContext("isa", qgnn::cpu::isa_name(qgnn::cpu::active_isa()));
  register_all();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
