// Integer kernels (qgnn/quant/int8_ops.h) against the float32 operations they replace, at 1
// and 2 threads in one run; prints one markdown table.
//
//   bench_int8 [reps] [filter] [threads]   (default 7 timed calls per cell; filter: run only
//                                           the groups whose name contains it, e.g. "spmm";
//                                           threads: a comma list, default 1,2)
//   QGNN_BENCH_DATASET=/path/amazon_computers.npz      (default: /work/shared/datasets/...)
//   QGNN_ISA=avx2 bench_int8                           (the AVX2 paths)
//
// Cells are the best and the median wall time of `reps` calls after one warm-up call (speedup
// and GB/s from the best); every call allocates its output, as a layer does. Freed blocks stay
// in the heap (QGNN_BENCH_LIBC_MALLOC=1: glibc's default, which unmaps large outputs so that
// every call pays their page faults again).
//   linear:  fp32 = at::linear(x, W, b) (OpenBLAS sgemm); int8 = int8_linear (fused bias,
//            per-channel requantization, ReLU; int8 out), int8_s32 = int8_linear_s32,
//            int4 = int4_linear (int4-packed input, int4 codes out).
//   spmm:    fp32 = qgnn::spmm (unweighted sum, our AVX-512 kernel); int8_s32 = int8_spmm_s32,
//            int8 = int8_spmm (per-row requantization), int4 = int4_spmm (packed rows).
//   gcn layer: linear then aggregation over A + I, D^-1/2 on both sides (bench_gcn_layer).
//   requantize_rows: the integer model's glue; "speedup" is against the former scalar loop.
// GB/s counts compulsory bytes: linear = x + y + W; spmm = per edge the gathered row and its
// int64 index, per row the output row and indptr entry.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <malloc.h>
#include <sys/stat.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "../bench_util.h"
#include "qgnn/graph/csr_graph.h"
#include "qgnn/io/dataset.h"
#include "qgnn/ops/spmm.h"
#include "qgnn/quant/int8_ops.h"
#include "qgnn/util/threads.h"

namespace {

int g_reps = 7;
std::string g_filter;

bool selected(const std::string& name) {
  return g_filter.empty() || name.find(g_filter) != std::string::npos;
}

struct Timing {
  double best = 0, median = 0;  // ms
};

// Wall times of g_reps calls after one warm-up call. The machine may be shared: the best call
// is the least disturbed one, the median shows the spread.
Timing time_ms(const std::function<void()>& fn) {
  fn();
  std::vector<double> t;
  for (int r = 0; r < g_reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    t.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return {t.front(), t[t.size() / 2]};
}

// Power-law directed graph: in-degrees Pareto(alpha = 2) with the given mean, capped at
// 20000; sources with density ~ 1 / sqrt(rank) under a random relabeling (hot rows, as in
// R-MAT), rows unsorted.
qgnn::CsrGraph power_law_graph(int64_t n, double avg_deg, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(1e-12, 1.0);
  std::vector<int64_t> relabel(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) relabel[static_cast<size_t>(i)] = i;
  std::shuffle(relabel.begin(), relabel.end(), rng);
  std::vector<int64_t> indptr{0}, indices;
  indices.reserve(static_cast<size_t>(n * avg_deg * 1.1));
  for (int64_t i = 0; i < n; ++i) {
    const double deg = std::min(20000.0, avg_deg / 2 / std::sqrt(u(rng)));
    for (int64_t k = 0; k < static_cast<int64_t>(deg); ++k) {
      const double r = u(rng);
      indices.push_back(
          relabel[static_cast<size_t>(std::min<int64_t>(n - 1, static_cast<int64_t>(n * r * r)))]);
    }
    indptr.push_back(static_cast<int64_t>(indices.size()));
  }
  return qgnn::CsrGraph(at::tensor(indptr, at::kLong), at::tensor(indices, at::kLong));
}

struct Row {
  std::string op, shape, variant;
  int threads;
  double fp32_ms;  // best fp32 time of the same op and threads
  Timing t;
  double bytes;
};
std::vector<Row> g_rows;

void add_row(const std::string& op, const std::string& shape, const std::string& variant,
             int threads, const Timing& fp32, const Timing& t, double bytes) {
  g_rows.push_back({op, shape, variant, threads, fp32.best, t, bytes});
}

void print_rows() {
  std::printf(
      "| op | shape | threads | variant | best ms | median ms | speedup vs fp32 | GB/s |\n");
  std::printf("|---|---|---|---|---|---|---|---|\n");
  for (const Row& r : g_rows) {
    std::printf("| %s | %s | %d | %s | %.3f | %.3f | %.2fx | %.1f |\n", r.op.c_str(),
                r.shape.c_str(), r.threads, r.variant.c_str(), r.t.best, r.t.median,
                r.fp32_ms / r.t.best, r.bytes / (r.t.best * 1e6));
  }
}

at::Tensor codes(int64_t n, int64_t f, int lo, int hi) {
  return at::randint(lo, hi + 1, {n, f}, at::kChar);
}

void bench_linear(const std::string& name, int64_t n, int64_t k, int64_t o, int threads) {
  if (!selected(name)) return;
  torch::NoGradGuard no_grad;
  at::manual_seed(0);
  const at::Tensor xq = codes(n, k, -127, 127), wq = codes(o, k, -127, 127);
  const at::Tensor x = xq.to(at::kFloat) * 0.01, w = wq.to(at::kFloat) * 0.002;
  const at::Tensor b = at::randn({o});
  const qgnn::Int8Linear lin = qgnn::pack_int8_linear(wq);
  qgnn::LinearRequant rq;
  rq.col_multiplier = qgnn::fixed_point_multipliers(at::full({o}, 2e-4, at::kDouble) *
                                                    (at::rand({o}, at::kDouble) + 0.5));
  rq.bias = at::randint(-3000, 3000, {o}, at::kInt);
  rq.out = qgnn::QuantRange::int8(true);
  qgnn::LinearRequant rq4 = rq;
  rq4.out = qgnn::QuantRange::int4(true);
  const at::Tensor x4 = qgnn::pack_int4(codes(n, k, -7, 7));

  const Timing fp32 = time_ms([&] { at::linear(x, w, b); });
  const std::string shape =
      "N=" + std::to_string(n) + " in=" + std::to_string(k) + " out=" + std::to_string(o);
  const double wb = static_cast<double>(k * o);
  add_row(name, shape, "fp32 (OpenBLAS)", threads, fp32, fp32, 4.0 * n * k + 4.0 * n * o + 4 * wb);
  add_row(name, shape, "int8 fused", threads, fp32,
          time_ms([&] { qgnn::int8_linear(xq, lin, rq); }), 1.0 * n * k + 1.0 * n * o + wb);
  add_row(name, shape, "int8 s32", threads, fp32, time_ms([&] { qgnn::int8_linear_s32(xq, lin); }),
          1.0 * n * k + 4.0 * n * o + wb);
  add_row(name, shape, "int4 fused", threads, fp32,
          time_ms([&] { qgnn::int4_linear(x4, lin, rq4); }), 0.5 * n * k + 1.0 * n * o + wb);
}

void bench_spmm(const std::string& name, const qgnn::CsrGraph& g, int64_t f, int threads) {
  if (!selected(name)) return;
  torch::NoGradGuard no_grad;
  at::manual_seed(1);
  const int64_t r = g.num_rows(), e = g.num_edges();
  const at::Tensor xq = codes(g.num_cols(), f, -127, 127);
  const at::Tensor x = xq.to(at::kFloat) * 0.01;
  const at::Tensor xp = qgnn::pack_int4(codes(g.num_cols(), f, -7, 7));
  qgnn::SpmmRequant rq;
  rq.row_multiplier =
      qgnn::fixed_point_multipliers(1.0 / (g.in_degree().to(at::kDouble) + 1.0).sqrt() * 0.05);
  rq.out = qgnn::QuantRange::int8(true);
  qgnn::SpmmRequant rq4 = rq;
  rq4.out = qgnn::QuantRange::int4(true);

  const Timing fp32 = time_ms([&] { qgnn::spmm(g, x); });
  const std::string shape =
      "R=" + std::to_string(r) + " E=" + std::to_string(e) + " F=" + std::to_string(f);
  auto bytes = [&](double row_bytes, double out_bytes) {
    return static_cast<double>(e) * (row_bytes + 8) + static_cast<double>(r) * (out_bytes + 8);
  };
  add_row(name, shape, "fp32 (qgnn::spmm)", threads, fp32, fp32, bytes(4.0 * f, 4.0 * f));
  add_row(name, shape, "int8 fused", threads, fp32, time_ms([&] { qgnn::int8_spmm(g, xq, rq); }),
          bytes(f, f));
  add_row(name, shape, "int8 s32", threads, fp32, time_ms([&] { qgnn::int8_spmm_s32(g, xq); }),
          bytes(f, 4.0 * f));
  add_row(name, shape, "int4 fused", threads, fp32,
          time_ms([&] { qgnn::int4_spmm(g, xp, f, rq4); }), bytes((f + 1) / 2, f));
}

// One GCN layer (Kipf & Welling, Eq. 2): Y = D^-1/2 (A + I) D^-1/2 X W^T.
//   fp32: at::linear, then qgnn::spmm over the normalized graph.
//   int8: int8_linear with per-channel x per-row multipliers (s_x s_w[o] d_j^-1/2 / s_h),
//         then int8_spmm over A + I with per-row multipliers (s_h d_i^-1/2 / s_y), ReLU.
void bench_gcn_layer(const std::string& name, const qgnn::CsrGraph& a, int64_t k, int64_t o,
                     int threads) {
  if (!selected(name)) return;
  torch::NoGradGuard no_grad;
  at::manual_seed(2);
  const qgnn::CsrGraph g = a.with_self_loops();
  const qgnn::CsrGraph& gn = g.gcn_normalized();
  const int64_t n = g.num_rows(), e = g.num_edges();
  const at::Tensor xq = codes(n, k, -127, 127), wq = codes(o, k, -127, 127);
  const at::Tensor x = xq.to(at::kFloat) * 0.01, w = wq.to(at::kFloat) * 0.002;
  const qgnn::Int8Linear lin = qgnn::pack_int8_linear(wq);
  const at::Tensor dinv = 1.0 / g.in_degree().to(at::kDouble).sqrt();
  qgnn::LinearRequant lrq;
  lrq.col_multiplier = qgnn::fixed_point_multipliers(at::full({o}, 2e-4, at::kDouble));
  lrq.row_multiplier = qgnn::fixed_point_multipliers(dinv);
  qgnn::SpmmRequant arq;
  arq.row_multiplier = qgnn::fixed_point_multipliers(dinv * 0.5);
  arq.out = qgnn::QuantRange::int8(true);
  const Timing fp32 = time_ms([&] { qgnn::spmm(gn, at::linear(x, w)); });
  const std::string shape = "N=" + std::to_string(n) + " E=" + std::to_string(e) +
                            " in=" + std::to_string(k) + " out=" + std::to_string(o);
  add_row(name, shape, "fp32", threads, fp32, fp32,
          4.0 * n * k + 8.0 * n * o + static_cast<double>(e) * (4.0 * o + 12));
  add_row(name, shape, "int8", threads, fp32,
          time_ms([&] { qgnn::int8_spmm(g, qgnn::int8_linear(xq, lin, lrq), arq); }),
          1.0 * n * k + 2.0 * n * o + static_cast<double>(e) * (1.0 * o + 8));
}

// The integer model's former glue: a scalar int64 loop (int8 input converted to int32 first).
at::Tensor scalar_requantize_rows(const at::Tensor& acc, const qgnn::RowRequant& rq) {
  const int64_t n = acc.size(0), f = acc.size(1);
  const at::Tensor a32 = acc.scalar_type() == at::kInt ? acc.contiguous() : acc.to(at::kInt);
  at::Tensor out = at::empty({n, f}, at::kChar);
  const int32_t* ap = a32.data_ptr<int32_t>();
  const int8_t* sp = rq.self_weight != 0 ? rq.self.data_ptr<int8_t>() : nullptr;
  const int32_t* bp = rq.bias.defined() ? rq.bias.data_ptr<int32_t>() : nullptr;
  const int32_t* mp = rq.row_multiplier.data_ptr<int32_t>();
  const bool per_row = rq.row_multiplier.size(0) == n && n != 1;
  int8_t* op = out.data_ptr<int8_t>();
  const qgnn::QuantRange& r = rq.out;
  const int32_t lo = r.relu ? std::max(r.qmin, r.zero_point) : r.qmin;
  const int32_t hi = r.qmax, zp = r.zero_point;
  at::parallel_for(0, n, 1024, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const int64_t m = mp[per_row ? 2 * i : 0];
      const int s = 31 - mp[per_row ? 2 * i + 1 : 1];
      const int64_t half = int64_t{1} << (s - 1);
      for (int64_t k = 0; k < f; ++k) {
        int64_t v = static_cast<int64_t>(ap[i * f + k]) << rq.pre_shift;
        if (sp) v += static_cast<int64_t>(sp[i * f + k]) * rq.self_weight;
        if (bp) v += bp[k];
        const int64_t p = v * m;
        const int64_t q = ((p + half - (p < 0 ? 1 : 0)) >> s) + zp;
        op[i * f + k] = static_cast<int8_t>(std::clamp<int64_t>(q, lo, hi));
      }
    }
  });
  return out;
}

// requantize_rows as the integer model uses it (glue between the fused kernels):
//   gcn glue: int8 acc << 8 + bias, per-tensor multiplier, ReLU (bias + ReLU + next scale);
//   gin self: int32 acc << 8 + c * self (GIN's (1 + eps) term), per-tensor multiplier;
//   per-row:  int32 acc + bias with per-row multipliers.
// Baseline: the former scalar loop. GB/s counts acc + self + out.
void bench_requant(const std::string& name, int64_t n, int64_t f, int threads) {
  if (!selected(name)) return;
  torch::NoGradGuard no_grad;
  at::manual_seed(3);
  const at::Tensor acc8 = codes(n, f, -127, 127);
  const at::Tensor acc32 = at::randint(-(1 << 20), 1 << 20, {n, f}, at::kInt);
  const at::Tensor self = codes(n, f, -127, 127);
  const std::string shape = "N=" + std::to_string(n) + " F=" + std::to_string(f);
  struct Case {
    std::string variant;
    at::Tensor acc;
    qgnn::RowRequant rq;
  };
  std::vector<Case> cases(3);
  cases[0].variant = "gcn glue (int8)";
  cases[0].acc = acc8;
  cases[0].rq.pre_shift = 8;
  cases[0].rq.bias = at::randint(-3000, 3000, {f}, at::kInt);
  cases[0].rq.row_multiplier = qgnn::fixed_point_multipliers(at::full({1}, 1.0 / 512, at::kDouble));
  cases[0].rq.out = qgnn::QuantRange::int8(true);
  cases[1].variant = "gin self (int32)";
  cases[1].acc = acc32;
  cases[1].rq.pre_shift = 8;
  cases[1].rq.self = self;
  cases[1].rq.self_weight = 300;
  cases[1].rq.row_multiplier = qgnn::fixed_point_multipliers(at::full({1}, 1e-7, at::kDouble));
  cases[2].variant = "per-row (int32)";
  cases[2].acc = acc32;
  cases[2].rq.bias = at::randint(-3000, 3000, {f}, at::kInt);
  cases[2].rq.row_multiplier =
      qgnn::fixed_point_multipliers(at::rand({n}, at::kDouble) * 1e-4 + 1e-5);
  for (const Case& c : cases) {
    const double bytes = static_cast<double>(n * f) * (static_cast<double>(c.acc.element_size()) +
                                                       1.0 + (c.rq.self_weight ? 1 : 0));
    const Timing ref = time_ms([&] { scalar_requantize_rows(c.acc, c.rq); });
    add_row(name, shape, c.variant + ": scalar loop", threads, ref, ref, bytes);
    add_row(name, shape, c.variant + ": requantize_rows", threads, ref,
            time_ms([&] { qgnn::requantize_rows(c.acc, c.rq); }), bytes);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1) g_reps = std::max(1, std::atoi(argv[1]));
  if (argc > 2) g_filter = argv[2];
  std::vector<int> thread_counts{1, 2};
  if (argc > 3) {
    thread_counts.clear();
    std::stringstream list(argv[3]);
    for (std::string t; std::getline(list, t, ',');) {
      thread_counts.push_back(std::max(1, std::atoi(t.c_str())));
    }
  }
  if (std::getenv("QGNN_BENCH_LIBC_MALLOC") == nullptr) {
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
  }
  std::string dataset = "/work/shared/datasets/amazon_computers.npz";
  if (const char* env = std::getenv("QGNN_BENCH_DATASET")) dataset = env;
  struct stat st;
  qgnn::CsrGraph amazon;
  if (stat(dataset.c_str(), &st) == 0) {
    amazon = qgnn::read_dataset(dataset, 0, /*load_features=*/false).graph;
  }
  const qgnn::CsrGraph big = power_law_graph(1000000, 20.0, 7);
  std::printf("int8 kernel path: %s; powerlaw graph: %lld nodes, %lld edges; %d reps\n\n",
              qgnn::int8_kernel_isa(), static_cast<long long>(big.num_rows()),
              static_cast<long long>(big.num_edges()), g_reps);
  // Memory bandwidth of the same run, to read the GB/s columns against.
  std::printf("| threads | triad GB/s (3 x 128 MiB) |\n| --- | --- |\n");
  for (int threads : thread_counts) {
    qgnn::set_num_threads(threads);
    std::printf("| %d | %.1f |\n", threads, qgnn::bench::triad_gbs(int64_t{32} << 20, 10));
  }
  std::printf("\n");
  for (int threads : thread_counts) {
    qgnn::set_num_threads(threads);
    bench_linear("linear amazon_computers", 13752, 767, 64, threads);
    bench_linear("linear 1M", 1000000, 128, 64, threads);
    // F = 10 and 16: the last GCN layer aggregates C classes (per-edge cost dominates).
    for (int64_t f : {10, 16, 64}) {
      if (amazon.defined()) bench_spmm("spmm amazon_computers", amazon, f, threads);
      bench_spmm("spmm powerlaw 1M", big, f, threads);
    }
    bench_requant("requantize_rows amazon_computers", 13752, 64, threads);
    bench_requant("requantize_rows 1M", 1000000, 64, threads);
    if (amazon.defined()) bench_gcn_layer("gcn layer amazon_computers", amazon, 767, 64, threads);
    bench_gcn_layer("gcn layer powerlaw 1M", big, 128, 64, threads);
  }
  print_rows();
  return 0;
}
