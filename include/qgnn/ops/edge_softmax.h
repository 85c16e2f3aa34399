#pragma once
// Softmax over the in-edges of each node, with autograd.
#include <ATen/core/Tensor.h>

#include "qgnn/graph/csr_graph.h"
#include "qgnn/util/export.h"

namespace qgnn {

// alpha[e, h] = exp(s[e, h]) / sum_{e' in in-edges(i)} exp(s[e', h]) for e = (j -> i)
// (GAT, Velickovic et al. 2018, Eq. 2). Numerically stable (row max subtracted).
//   scores: [E, H] or [E] float32.  returns: same shape; rows with no edges are empty.
// Backward: ds = alpha * (dalpha - sum_row(alpha * dalpha)).
QGNN_API at::Tensor edge_softmax(const CsrGraph& g, const at::Tensor& scores);

}  // namespace qgnn
