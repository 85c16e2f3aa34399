#pragma once
// The aggregation seam: everything a layer learns about the graph it propagates over
// comes from a GraphOperators. Two implementations share the type:
//   full graph   GraphOperators(g): every node is a target, degrees are g's own.
//   block        induced_block(full, nodes, exchange): an induced subgraph (the targets,
//                rows [0, T)) plus its 1-hop halo (the in-neighbours outside it, rows
//                [T, n)), the halo's rows empty, with the degrees of the global graph.
//                Layers compute as on a full graph; the targets' rows are exact when the
//                halo rows of every layer's input hold the global graph's values, which
//                the HaloExchange supplies (from another rank, a history of embeddings,
//                or the full model in a test). What mini-batch training and each rank
//                of a distributed run need.
// Derived matrices are built on first use and cached in the object (copies share them),
// keyed by the object's identity (id()), never by a tensor's address.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <memory>

#include "qgnn/graph/csr_graph.h"
#include "qgnn/util/export.h"

namespace qgnn {

// Fills the halo rows of a layer's input. Called by the model before the layer's input
// point with the layer index (>= 1; layer 0's input is the features, which the caller
// provides for every node of the block) and the input embeddings [n, F] float32 of every
// node of the block, whose halo rows [T, n) are stale; returns [n, F] with those rows
// replaced (target rows unchanged; out of place under autograd).
using HaloExchange = std::function<at::Tensor(int64_t layer, const at::Tensor& h)>;

// The propagation matrix P of an aggregation (rows: targets, columns: sources).
//   kSum           A                      (GIN's neighbour sum)
//   kSumWithLoops  A + I                  (GAT / AGNN with edge values, QAT GCN)
//   kMean          row-mean of A          (SAGE; 1 / local in-degree, exact on targets)
//   kGcn           D^-1/2 (A + I) D^-1/2  (Kipf & Welling Eq. 2, D the global degrees)
enum class Propagation { kSum, kSumWithLoops, kMean, kGcn };

class QGNN_API GraphOperators {
 public:
  GraphOperators() = default;
  // The full graph. g: square, without requirements on self loops (CsrGraph convention).
  explicit GraphOperators(CsrGraph g);

  // Which object's caches: equal for copies, distinct for every constructed object.
  uint64_t id() const;

  const CsrGraph& graph() const { return graph_; }  // A (a block: its rows of A)
  const CsrGraph& self_loops() const;               // A + I (missing loops added)
  // D^-1/2 (A + I) D^-1/2 with D the global in-degree of A + I (gcn_scale()).
  const CsrGraph& gcn() const;
  const CsrGraph& mean() const;  // row-mean of A (1 / in-degree; exact on target rows)
  // (in-degree of A + I)^-1/2 of every node, [n] float32, from the global graph:
  // gcn() = diag(s) (A + I) diag(s). Weighted graphs use weighted in-degrees.
  const at::Tensor& gcn_scale() const;
  // The diagonal self_loops() adds, [n] float32: 1 where row i of A has no self loop,
  // else 0 (A + I = A + diag(added_loops())). Lets inference propagate with
  // D^-1/2 (A + I) D^-1/2 without holding A + I or the normalized graph.
  const at::Tensor& added_loops() const;
  // The row pointer of A + I, [n + 1] int64 (equal to self_loops().indptr(), without
  // building A + I): row i has A's in-edges plus, where added_loops(), its self loop,
  // placed as self_loops() places it (before the first neighbour > i).
  const at::Tensor& self_loops_indptr() const;
  int64_t num_nodes() const { return graph_.num_nodes(); }  // n: targets and halo

  // Rows whose outputs are exact: all of them for a full graph, T for a block.
  int64_t num_targets() const;
  bool is_block() const;
  // In-degree of A in the global graph of every node, [n] int64 (TAQ buckets,
  // Degree-Quant masks).
  const at::Tensor& in_degree() const;
  // The global graph's in-degrees of A over all its nodes, [N_global] int64: the
  // population of which degree quantiles (TAQ) and CDFs (Degree-Quant) are taken.
  const at::Tensor& degree_population() const;
  // The same for A + I: every global node's in-degree with its loop, [N_global] int64
  // (attention TAQ quantiles are over edges: node i counted in-degree(A + I) times).
  const at::Tensor& loop_degree_population() const;
  // The layers' propagation, with autograd (ops/spmm.h, ops/sddmm.h,
  // ops/edge_softmax.h on the matrices above):
  //   propagate: out_i = sum_j P_ij h_j over P's edges, h [n, F] or [n, H, D] float32;
  //   with edge_values ([E_P] or [E_P, H], one per edge of P in CSR order; kSum and
  //   kSumWithLoops only) those replace P's values.
  at::Tensor propagate(Propagation p, const at::Tensor& h,
                       const at::Tensor& edge_values = {}) const;
  // Attention scores on the edges of A + I, [E', H] float32: dst_i + src_j (dst, src
  // [n, H]) or the dot product <dst_i, src_j> (dst, src [n, D] -> [E', 1]).
  at::Tensor edge_scores_add(const at::Tensor& dst, const at::Tensor& src) const;
  at::Tensor edge_scores_dot(const at::Tensor& dst, const at::Tensor& src) const;
  // Softmax of scores [E', H] over each target's in-edges of A + I.
  at::Tensor edge_softmax(const at::Tensor& scores) const;
  // Replaces the halo rows of layer `layer`'s input (identity without an exchange).
  at::Tensor exchange(int64_t layer, const at::Tensor& h) const;
  bool has_exchange() const;
  // A copy sharing this object's caches, with `exchange` called before each layer >= 1
  // (on a full graph it sees every layer's input: a test records them this way).
  GraphOperators with_exchange(HaloExchange exchange) const;

 private:
  friend struct BlockBuilder;
  struct Lazy;
  CsrGraph graph_;
  std::shared_ptr<Lazy> lazy_;
  HaloExchange exchange_;
};

// An induced subgraph of `full` plus its 1-hop halo.
struct GraphBlock {
  GraphOperators ops;
  // Global id of every node of the block, [n] int64: nodes (targets, in the given order)
  // then the halo (ascending).
  at::Tensor node_ids;
  int64_t num_targets = 0;
};

// The block of `nodes` ([T] int64, distinct global ids in [0, N)): rows of the targets
// are their rows of A with columns renumbered to block ids, halo rows are empty; degrees
// and gcn_scale are `full`'s at those nodes, the degree populations `full`'s.
// Throws c10::Error for an id out of range or repeated.
QGNN_API GraphBlock induced_block(const GraphOperators& full, const at::Tensor& nodes,
                                  HaloExchange exchange = {});

}  // namespace qgnn
