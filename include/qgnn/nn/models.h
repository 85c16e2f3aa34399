#pragma once
// Node-classification models built from the layers, their configuration and presets.
#include <torch/nn/module.h>
#include <torch/types.h>

#include <memory>
#include <string>
#include <vector>

#include "qgnn/nn/layer.h"
#include "qgnn/nn/model_config.h"
#include "qgnn/quant/quant_hooks.h"
#include "qgnn/util/export.h"

namespace qgnn {

// Presets (make_preset, nn/model_config.h) of the built-in layer types:
//  "kipf": each paper's citation setting. GCN 2 layers x 16, dropout 0.5, lr 0.01,
//    wd 5e-4 (layer 1), 200 epochs. GAT 8 heads x 8 hidden, 1 output head, dropout and
//    attention dropout 0.6, lr 0.005, wd 5e-4, up to 1000 epochs, patience 100. AGNN
//    Linear(F,16), 4 propagation layers, Linear(16,C), dropout 0.5, lr 0.01, wd 5e-4.
//    SAGE 2 x 64, GIN 2 x 64 (not citation papers; PyG example settings).
//  "sgquant": SGQuant's Table I: GCN hidden 32 x 2 layers, AGNN hidden 16 x 4 layers,
//    GAT hidden 256 x 2 layers (8 heads x 32); SAGE/GIN as kipf.
// For DatasetFamily::kRandomSplit, "kipf" GCN uses 64 hidden units (Shchur et al.
// Table 6: with 16 units and 200 epochs GCN is still far from converged on Amazon
// Computers) and AGNN lr 0.005.

// A node classifier: the stack of layers its layer type builds (nn/layer.h); forward
// returns logits [N, C] (no softmax).
//
// Quantization points, in order: stack position k's input embedding (k = 0 is the input
// features) and any point the layer adds (GAT's and AGNN's attention). For GCN, GAT, SAGE
// and GIN position k is conv layer k; AGNN's stack is Linear (position 0), the L
// propagation layers (1..L) and the output Linear (L + 1).
class QGNN_API GnnModel : public torch::nn::Module {
 public:
  explicit GnnModel(const ModelConfig& config);
  torch::Tensor forward(const GraphOperators& ops, const NodeFeatures& x);
  const ModelConfig& config() const { return config_; }
  // Parameters of the first layer (for first-layer-only weight decay) and the rest.
  std::vector<torch::Tensor> first_layer_parameters();
  std::vector<torch::Tensor> other_parameters();

  // Every quantizable tensor goes through `hook` from now on (nullptr removes it).
  void set_quant_hook(std::shared_ptr<QuantHook> hook);
  const std::shared_ptr<QuantHook>& quant_hook() const { return hook_; }
  // The quantization points this model has on `ops`' graph.
  std::vector<QuantPointInfo> quant_points(const GraphOperators& ops) const;
  // The stack, in order (position k's input is quantization point (k, embedding)).
  const std::vector<StackEntry>& layers() const { return stack_; }

 private:
  NodeFeatures point(int64_t layer, const NodeFeatures& h, const GraphOperators& ops);
  ModelConfig config_;
  std::shared_ptr<QuantHook> hook_;
  std::vector<StackEntry> stack_;
};

// Memory of `model`'s quantization points on `ops`' graph under `policy`:
// memory_report(model.quant_points(ops), ops, policy, input) (quant/quant_hooks.h).
QGNN_API MemoryReport memory_report(const GnnModel& model, const GraphOperators& ops,
                                    const BitPolicy& policy, const InputCodeStats* input = nullptr);

}  // namespace qgnn
