#pragma once
// Compressed sparse row graph, validated once at construction; kernels then trust it.
//
// Convention (message passing, PyG's "source_to_target" flow): row i lists the
// *in-neighbours* of node i, so indices[indptr[i]:indptr[i+1]] are the sources j of the
// edges j -> i and the row length is the in-degree of i. Aggregation is therefore
// out[i] = reduce_{j in N_in(i)} w_ji * x[j], i.e. Y = A X with A[i, j] = w_ji.
// The same class holds rectangular sparse matrices (num_cols != num_rows), which is how
// sparse node-feature matrices are stored (see quant/node_features.h).
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>

#include "qgnn/util/export.h"

namespace qgnn {

class QGNN_API CsrGraph {
 public:
  CsrGraph() = default;

  // Builds and validates a CSR matrix.
  //   indptr:  [num_rows + 1] int64, indptr[0] == 0, non-decreasing, indptr[-1] == E.
  //   indices: [E] int64, each in [0, num_cols).
  //   weights: optional [E] float32 edge values (undefined tensor = all ones).
  //   num_cols: number of columns; -1 means square (num_cols = num_rows).
  // Tensors are made contiguous CPU tensors (no copy when they already are).
  // Throws c10::Error naming the array and the first bad value.
  CsrGraph(at::Tensor indptr, at::Tensor indices, at::Tensor weights = {}, int64_t num_cols = -1);

  // Builds a square graph from COO edge_index [2, E] int64 (row 0 = source, row 1 =
  // target), keeping duplicates; edges are ordered by (target, source).
  static CsrGraph from_edge_index(const at::Tensor& edge_index, int64_t num_nodes,
                                  const at::Tensor& weights = {});

  int64_t num_rows() const { return num_rows_; }
  int64_t num_cols() const { return num_cols_; }
  int64_t num_nodes() const { return num_rows_; }
  int64_t num_edges() const { return num_edges_; }
  bool is_square() const { return num_rows_ == num_cols_; }
  bool defined() const { return indptr_.defined(); }

  const at::Tensor& indptr() const { return indptr_; }    // [num_rows + 1] int64
  const at::Tensor& indices() const { return indices_; }  // [E] int64
  const at::Tensor& weights() const { return weights_; }  // [E] float32 or undefined
  bool has_weights() const { return weights_.defined(); }

  // Same structure with other edge values (shares indptr/indices and the cached
  // transpose structure). REQUIRES: w is [E] float32.
  CsrGraph with_weights(const at::Tensor& w) const;

  // In-degree of each row (row length), [num_rows] int64.
  at::Tensor in_degree() const;
  // Out-degree of each column (occurrences in indices), [num_cols] int64.
  at::Tensor out_degree() const;
  // Row id of every edge, [E] int64 (the COO row array, cached).
  const at::Tensor& row_ids() const;
  // COO edge_index [2, E] (row 0 = source = indices, row 1 = target = row id).
  at::Tensor edge_index() const;

  // The transpose A^T as a CSR matrix (i.e. the CSC form of A), computed once and cached.
  // Its weights are this graph's weights permuted; transpose_perm()[k] is the edge id in
  // this graph of the k-th entry of the transpose. Stable: entries of each transposed row
  // keep ascending original row order, so results are deterministic.
  const CsrGraph& transposed() const;
  const at::Tensor& transpose_perm() const;

  // A + I: adds a self-loop (weight 1) to every row that lacks one; existing self-loops
  // are kept as they are. REQUIRES: square.
  CsrGraph with_self_loops() const;
  // The row pointer of with_self_loops(), [num_rows + 1] int64, without building A + I
  // (one pass over the rows). REQUIRES: square.
  at::Tensor self_loops_indptr() const;

  // GCN propagation matrix D^-1/2 (A + I) D^-1/2 (Kipf & Welling 2017, Eq. 2), with
  // D the in-degree of A + I; computed once and cached. Weighted graphs use weighted
  // degrees. REQUIRES: square.
  const CsrGraph& gcn_normalized() const;

  // Row-mean operator: weights 1 / in-degree (for the mean aggregator). Cached.
  const CsrGraph& mean_normalized() const;

 private:
  struct StructureCache;  // weight-independent: row ids, transpose structure
  struct DerivedCache;    // weight-dependent: transposed graph, normalized graphs
  // Builds from arrays known to be valid (internal results), skipping the checks.
  static CsrGraph trusted(at::Tensor indptr, at::Tensor indices, at::Tensor weights,
                          int64_t num_cols);
  void ensure_transpose_structure() const;
  at::Tensor indptr_, indices_, weights_;
  int64_t num_rows_ = 0, num_cols_ = 0, num_edges_ = 0;
  std::shared_ptr<StructureCache> structure_;  // shared by with_weights() copies
  std::shared_ptr<DerivedCache> derived_;      // shared by plain copies
};

}  // namespace qgnn
