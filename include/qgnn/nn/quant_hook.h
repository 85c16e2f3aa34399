#pragma once
// The one way layers expose their quantizable tensors (DESIGN.md: "a layer never knows
// which bits it runs at"). A model hands every quantization point to its hook, which
// returns what the layer continues with: the tensor itself, a fake-quantized copy
// (fine-tuning, QAT), or a value read back from packed storage.
#include <ATen/core/Tensor.h>

#include <cstdint>

#include "qgnn/graph/csr_graph.h"
#include "qgnn/ops/features.h"
#include "qgnn/util/export.h"

namespace qgnn {

class GraphOperators;

class QGNN_API QuantHook {
 public:
  virtual ~QuantHook() = default;

  // The input embedding h^k of layer `layer` ([N, F_k]; layer 0's is the input feature
  // matrix, possibly sparse). `ops` gives the graph (in-degrees for TAQ).
  virtual NodeFeatures embedding(int64_t layer, const NodeFeatures& h,
                                 const GraphOperators& ops) = 0;

  // Attention coefficients alpha^k of layer `layer`: [E', H] (or [E']) over the edges of
  // `g` (the graph the layer attends over, e.g. A + I); row e belongs to target node
  // g.row_ids()[e].
  virtual at::Tensor attention(int64_t layer, const at::Tensor& alpha, const CsrGraph& g) = 0;
};

}  // namespace qgnn
