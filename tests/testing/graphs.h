#pragma once
// Small graph builders and dense reference operators for tests.
#include <ATen/core/Tensor.h>

#include <cstdint>

#include "qgnn/graph/csr_graph.h"

namespace qgnn::testing {

// Random directed graph with `n` nodes and about `avg_deg` in-edges per node, seeded;
// node 0 is a hub receiving an edge from every node (in-degree n - 1 or n), the last
// `isolated` nodes have no in- or out-edges. No duplicate edges; self loops possible
// when allow_self_loops. Optional random float32 weights in [0.5, 1.5).
CsrGraph random_graph(int64_t n, double avg_deg, uint64_t seed, int64_t isolated = 2,
                      bool weighted = false, bool allow_self_loops = false);

// Dense [R, C] float32 adjacency of g: A[i, j] = sum of weights of edges j -> i.
at::Tensor dense_adjacency(const CsrGraph& g);

// Dense [R, C] float32 matrix with A[i, j] = value of edge e (w: [E]) for edges j -> i.
at::Tensor dense_from_edge_values(const CsrGraph& g, const at::Tensor& w);

// Hand-drawn 5-node graph used in several tests (edges j -> i):
//   0 -> 1, 0 -> 2, 1 -> 2, 2 -> 0, 3 -> 0, 3 -> 2   (node 4 isolated, node 3 a source)
CsrGraph tiny_directed_graph();

// Row group ids [n] uint8 in [0, g), drawn with a fixed seed (TAQ-style row grouping).
at::Tensor random_groups(int64_t n, int64_t g, uint64_t seed);

// True when a and b have the same shape and the same bytes (NaN-safe, -0 != +0).
bool bitwise_equal(const at::Tensor& a, const at::Tensor& b);

}  // namespace qgnn::testing
