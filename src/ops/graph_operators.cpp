#include "qgnn/ops/graph_operators.h"

#include <ATen/Parallel.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/full.h>

#include <atomic>
#include <cmath>
#include <mutex>
#include <vector>

#include "qgnn/ops/edge_softmax.h"
#include "qgnn/ops/sddmm.h"
#include "qgnn/ops/spmm.h"

namespace qgnn {

namespace {

uint64_t next_id() {
  static std::atomic<uint64_t> counter{0};
  return ++counter;
}

// Row lengths of a CSR row pointer, [R] int64.
at::Tensor row_lengths(const at::Tensor& indptr) {
  const int64_t r = indptr.numel() - 1;
  return indptr.narrow(0, 1, r) - indptr.narrow(0, 0, r);
}

}  // namespace

struct GraphOperators::Lazy {
  uint64_t id = next_id();
  std::once_flag loops_once, gcn_once, scale_once, added_once, loop_indptr_once, degree_once,
      loop_population_once;
  CsrGraph loops, gcn;
  at::Tensor gcn_scale, added_loops, loop_indptr, in_degree, loop_population;
  // A block's global view, set when it is built (a full graph derives these from A).
  bool block = false;
  int64_t num_targets = 0;
  at::Tensor population;
};

GraphOperators::GraphOperators(CsrGraph g) : graph_(std::move(g)), lazy_(std::make_shared<Lazy>()) {
  TORCH_CHECK(graph_.defined() && graph_.is_square(), "GraphOperators: graph must be square, got ",
              graph_.num_rows(), " x ", graph_.num_cols());
  lazy_->num_targets = graph_.num_rows();
}

uint64_t GraphOperators::id() const { return lazy_ ? lazy_->id : 0; }

int64_t GraphOperators::num_targets() const { return lazy_ ? lazy_->num_targets : 0; }

bool GraphOperators::is_block() const { return lazy_ && lazy_->block; }

const CsrGraph& GraphOperators::self_loops() const {
  std::call_once(lazy_->loops_once, [&] { lazy_->loops = graph_.with_self_loops(); });
  return lazy_->loops;
}

const CsrGraph& GraphOperators::gcn() const {
  if (!lazy_->block) return graph_.gcn_normalized();
  // diag(s) (A + I) diag(s) with the global scale s: the block's own degrees are wrong
  // for its halo.
  std::call_once(lazy_->gcn_once, [&] {
    const CsrGraph& loops = self_loops();
    const at::Tensor& s = gcn_scale();
    at::Tensor w = s.index_select(0, loops.row_ids()) * s.index_select(0, loops.indices());
    if (loops.has_weights()) w.mul_(loops.weights());
    lazy_->gcn = loops.with_weights(w);
  });
  return lazy_->gcn;
}

const CsrGraph& GraphOperators::mean() const { return graph_.mean_normalized(); }

const at::Tensor& GraphOperators::self_loops_indptr() const {
  std::call_once(lazy_->loop_indptr_once, [&] { lazy_->loop_indptr = graph_.self_loops_indptr(); });
  return lazy_->loop_indptr;
}

const at::Tensor& GraphOperators::added_loops() const {
  std::call_once(lazy_->added_once, [&] {
    // A row gains a loop exactly when its A + I row is longer than its A row.
    lazy_->added_loops =
        (row_lengths(self_loops_indptr()) - row_lengths(graph_.indptr())).to(at::kFloat);
  });
  return lazy_->added_loops;
}

const at::Tensor& GraphOperators::gcn_scale() const {
  std::call_once(lazy_->scale_once, [&] {
    // (in-degree of A + I)^-1/2: A's (weighted) row sums plus the loops A + I adds, one
    // pass over the CSR rows (no [E] row-id or A + I copy).
    const at::Tensor& added = added_loops();
    const int64_t n = graph_.num_rows();
    at::Tensor scale = at::empty({n}, at::kFloat);
    const int64_t* ip = graph_.indptr().data_ptr<int64_t>();
    const float* w = graph_.has_weights() ? graph_.weights().data_ptr<float>() : nullptr;
    const float* a = added.data_ptr<float>();
    float* sp = scale.data_ptr<float>();
    at::parallel_for(0, n, 1 << 12, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        float deg = 0.0f;
        if (w != nullptr) {
          for (int64_t k = ip[i]; k < ip[i + 1]; ++k) deg += w[k];
        } else {
          deg = static_cast<float>(ip[i + 1] - ip[i]);
        }
        deg += a[i];
        sp[i] = deg > 0.0f ? static_cast<float>(1.0 / std::sqrt(static_cast<double>(deg))) : 0.0f;
      }
    });
    lazy_->gcn_scale = scale;
  });
  return lazy_->gcn_scale;
}

const at::Tensor& GraphOperators::in_degree() const {
  std::call_once(lazy_->degree_once, [&] { lazy_->in_degree = graph_.in_degree(); });
  return lazy_->in_degree;
}

const at::Tensor& GraphOperators::degree_population() const {
  return lazy_->block ? lazy_->population : in_degree();
}

const at::Tensor& GraphOperators::loop_degree_population() const {
  std::call_once(lazy_->loop_population_once,
                 [&] { lazy_->loop_population = row_lengths(self_loops_indptr()); });
  return lazy_->loop_population;
}

at::Tensor GraphOperators::propagate(Propagation p, const at::Tensor& h,
                                     const at::Tensor& edge_values) const {
  TORCH_CHECK(!edge_values.defined() || p == Propagation::kSum || p == Propagation::kSumWithLoops,
              "GraphOperators::propagate: edge values need kSum or kSumWithLoops");
  switch (p) {
    case Propagation::kSum:
      return spmm(graph_, h, Reduce::kSum, edge_values);
    case Propagation::kSumWithLoops:
      return spmm(self_loops(), h, Reduce::kSum, edge_values);
    case Propagation::kMean:
      return spmm(mean(), h);
    case Propagation::kGcn:
      return spmm(gcn(), h);
  }
  TORCH_CHECK(false, "GraphOperators::propagate: unknown propagation");
}

at::Tensor GraphOperators::edge_scores_add(const at::Tensor& dst, const at::Tensor& src) const {
  return sddmm_add(self_loops(), dst, src);
}

at::Tensor GraphOperators::edge_scores_dot(const at::Tensor& dst, const at::Tensor& src) const {
  return sddmm_dot(self_loops(), dst, src);
}

at::Tensor GraphOperators::edge_softmax(const at::Tensor& scores) const {
  return qgnn::edge_softmax(self_loops(), scores);
}

at::Tensor GraphOperators::exchange(int64_t layer, const at::Tensor& h) const {
  if (!exchange_) return h;
  at::Tensor out = exchange_(layer, h);
  TORCH_CHECK(out.defined() && out.sizes() == h.sizes(),
              "GraphOperators: the halo exchange of layer ", layer, " returned shape ",
              out.defined() ? out.sizes() : at::IntArrayRef{}, ", expected ", h.sizes());
  return out;
}

bool GraphOperators::has_exchange() const { return static_cast<bool>(exchange_); }

GraphOperators GraphOperators::with_exchange(HaloExchange exchange) const {
  GraphOperators copy = *this;
  copy.exchange_ = std::move(exchange);
  return copy;
}

struct BlockBuilder {
  static GraphOperators make(CsrGraph g, int64_t num_targets, const GraphOperators& full,
                             const at::Tensor& node_ids, HaloExchange exchange) {
    GraphOperators ops(std::move(g));
    GraphOperators::Lazy& z = *ops.lazy_;
    z.block = true;
    z.num_targets = num_targets;
    // Global quantities at the block's nodes; every flag is consumed so that nothing is
    // recomputed from the block's partial rows.
    std::call_once(z.scale_once, [&] { z.gcn_scale = full.gcn_scale().index_select(0, node_ids); });
    std::call_once(z.degree_once,
                   [&] { z.in_degree = full.in_degree().index_select(0, node_ids); });
    std::call_once(z.loop_population_once,
                   [&] { z.loop_population = full.loop_degree_population(); });
    z.population = full.degree_population();
    ops.exchange_ = std::move(exchange);
    return ops;
  }
};

GraphBlock induced_block(const GraphOperators& full, const at::Tensor& nodes,
                         HaloExchange exchange) {
  TORCH_CHECK(full.graph().defined() && !full.is_block(),
              "induced_block: needs the full graph's operators");
  TORCH_CHECK(nodes.defined() && nodes.dim() == 1 &&
                  (nodes.scalar_type() == at::kLong || nodes.scalar_type() == at::kInt),
              "induced_block: nodes must be a 1-D integer tensor");
  const CsrGraph& g = full.graph();
  const int64_t n_full = g.num_nodes();
  const at::Tensor targets = nodes.to(at::kLong).contiguous();
  const int64_t t = targets.numel();
  const int64_t* tp = targets.data_ptr<int64_t>();
  std::vector<int64_t> local(static_cast<size_t>(n_full), -1);
  for (int64_t i = 0; i < t; ++i) {
    TORCH_CHECK(tp[i] >= 0 && tp[i] < n_full, "induced_block: nodes[", i, "] = ", tp[i],
                " is not a node of the graph (N = ", n_full, ")");
    TORCH_CHECK(local[tp[i]] < 0, "induced_block: node ", tp[i], " appears twice in nodes");
    local[tp[i]] = i;
  }
  const int64_t* ip = g.indptr().data_ptr<int64_t>();
  const int64_t* ix = g.indices().data_ptr<int64_t>();
  // The halo: in-neighbours of the targets outside them, ascending.
  std::vector<char> in_halo(static_cast<size_t>(n_full), 0);
  int64_t edges = 0;
  for (int64_t i = 0; i < t; ++i) {
    for (int64_t e = ip[tp[i]]; e < ip[tp[i] + 1]; ++e) {
      if (local[ix[e]] < 0) in_halo[ix[e]] = 1;
    }
    edges += ip[tp[i] + 1] - ip[tp[i]];
  }
  std::vector<int64_t> ids(tp, tp + t);
  for (int64_t j = 0; j < n_full; ++j) {
    if (in_halo[j]) {
      local[j] = static_cast<int64_t>(ids.size());
      ids.push_back(j);
    }
  }
  const int64_t n = static_cast<int64_t>(ids.size());
  at::Tensor indptr = at::zeros({n + 1}, at::kLong);
  at::Tensor indices = at::empty({edges}, at::kLong);
  at::Tensor weights = g.has_weights() ? at::empty({edges}, at::kFloat) : at::Tensor();
  int64_t* bp = indptr.data_ptr<int64_t>();
  int64_t* bx = indices.data_ptr<int64_t>();
  int64_t k = 0;
  for (int64_t i = 0; i < t; ++i) {
    for (int64_t e = ip[tp[i]]; e < ip[tp[i] + 1]; ++e, ++k) {
      bx[k] = local[ix[e]];
      if (weights.defined()) weights.data_ptr<float>()[k] = g.weights().data_ptr<float>()[e];
    }
    bp[i + 1] = k;
  }
  for (int64_t i = t; i < n; ++i) bp[i + 1] = k;  // halo rows: empty
  GraphBlock b;
  b.node_ids = at::tensor(ids, at::kLong);
  b.num_targets = t;
  b.ops = BlockBuilder::make(CsrGraph(indptr, indices, weights), t, full, b.node_ids,
                             std::move(exchange));
  return b;
}

}  // namespace qgnn
