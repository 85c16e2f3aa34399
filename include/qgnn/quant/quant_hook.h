#pragma once
// The one way layers expose their quantizable tensors (DESIGN.md: "a layer never knows
// which bits it runs at"). A model hands every quantization point to its hook, which
// returns what the layer continues with: the tensor itself, a fake-quantized copy
// (fine-tuning, QAT), or a value read back from packed storage.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "qgnn/graph/csr_graph.h"
#include "qgnn/quant/node_features.h"
#include "qgnn/util/export.h"

namespace qgnn {

class GraphOperators;
class PackedTensor;

// The role of a quantization point (qgnn/quant/bit_policy.h names them in policies).
//   kEmbedding  a layer's input embedding h^k (SGQuant, and QAT's layer input)
//   kAttention  attention coefficients alpha^k (GAT, AGNN)
//   kWeight     a layer's weight matrix (QAT; symmetric, per output channel)
//   kLinear     a layer's linear output X W, the messages (QAT)
//   kAggregate  the aggregated messages (QAT)
//   kHidden     the hidden layer of GIN's MLP (QAT)
//   kBoundary   rows of a layer's input sent to other ranks (distributed training)
//   kHistory    a layer's stored historical embeddings (mini-batch training, GAS)
enum class QuantRole {
  kEmbedding,
  kAttention,
  kWeight,
  kLinear,
  kAggregate,
  kHidden,
  kBoundary,
  kHistory
};

// The one name of a quantization point: a role at a (0-based) layer.
struct QuantPoint {
  int64_t layer = 0;
  QuantRole role = QuantRole::kEmbedding;
  bool operator==(const QuantPoint& o) const { return layer == o.layer && role == o.role; }
  bool operator!=(const QuantPoint& o) const { return !(*this == o); }
  bool operator<(const QuantPoint& o) const {
    return layer != o.layer ? layer < o.layer : role < o.role;
  }
};

// A quantization point of a model on a given graph with the shape of its tensor.
struct QuantPointInfo {
  QuantPoint point;
  int64_t rows = 0;  // N for embeddings, E' (edges attended over) for attention
  int64_t cols = 0;  // F_k for embeddings, heads for attention
};

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

  // Packed inference: the attention of layer `layer` stored as packed codes, [E', H] rows
  // in the edge order of the graph attended over (e.g. A + I), given by its CSR row
  // pointer `row_indptr` ([R + 1] int64; edge e belongs to the target row r with
  // row_indptr[r] <= e < row_indptr[r + 1]; E' = row_indptr[R]), so that the graph itself
  // need not exist. Produced block by block so that no float [E', H] tensor is held:
  // produce(k, out) writes rows [bounds[k], bounds[k + 1]) into out (row-major, H floats
  // per row). The layer then aggregates from the codes (packed_attention_spmm). Returns
  // nullptr when the hook keeps attention as a tensor (then the layer computes it whole
  // and calls attention()). Inference only.
  virtual std::shared_ptr<const PackedTensor> pack_attention(
      int64_t /*layer*/, const at::Tensor& /*row_indptr*/, int64_t /*heads*/,
      const std::vector<int64_t>& /*bounds*/,
      const std::function<void(int64_t block, float* out)>& /*produce*/) {
    return nullptr;
  }

  // Packed inference: the input embedding h^k of layer `layer`, [N, cols], stored as
  // packed codes while the previous layer produces it a block of rows at a time
  // (produce(k, out) writes rows [bounds[k], bounds[k + 1]) row-major), so that no float
  // [N, cols] tensor is held; embedding() then receives it packed. Returns nullptr without
  // calling produce when the hook keeps this embedding as floats. Inference only.
  virtual std::shared_ptr<const PackedTensor> pack_embedding(
      int64_t /*layer*/, const GraphOperators& /*ops*/, int64_t /*cols*/,
      const std::vector<int64_t>& /*bounds*/,
      const std::function<void(int64_t block, float* out)>& /*produce*/) {
    return nullptr;
  }

  // Quantization-aware training (Degree-Quant) also quantizes weights and the activations
  // inside a layer. Layers call these only when quantizes_layers() is true; otherwise
  // they keep their fastest float path. Defaults pass values through.
  virtual bool quantizes_layers() const { return false; }
  // Called by the model at the start of every forward (e.g. to draw per-node masks).
  virtual void begin_forward(const GraphOperators& /*ops*/, bool /*training*/) {}
  // A weight of layer `layer` ([out, in]); `index` numbers a layer's weights from 0.
  virtual at::Tensor weight(int64_t /*layer*/, int64_t /*index*/, const at::Tensor& w) { return w; }
  // A node-wise activation [N, ...] of layer `layer` in role kLinear, kAggregate or kHidden.
  virtual at::Tensor activation(int64_t /*layer*/, QuantRole /*role*/, const at::Tensor& h) {
    return h;
  }
  // Learned state besides the model's parameters (e.g. observed ranges) as text, so that
  // training can keep the best epoch's and checkpoints can store it. Stateless: "".
  virtual std::string save_state() const { return {}; }
  virtual void load_state(const std::string& /*state*/) {}
};

// Where a layer hands its quantization points: the model's hook (null = none) and the
// layer index the model gave it.
struct QuantSite {
  QuantHook* hook = nullptr;
  int64_t layer = 0;
  bool quantizes_layers() const { return hook != nullptr && hook->quantizes_layers(); }
  at::Tensor weight(int64_t index, const at::Tensor& w) const {
    return quantizes_layers() ? hook->weight(layer, index, w) : w;
  }
  at::Tensor activation(QuantRole role, const at::Tensor& h) const {
    return quantizes_layers() ? hook->activation(layer, role, h) : h;
  }
};

}  // namespace qgnn
