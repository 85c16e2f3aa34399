#pragma once
// Node-classification models built from the layers, their configuration and presets.
#include <torch/nn/module.h>
#include <torch/types.h>

#include <memory>
#include <string>
#include <vector>

#include "qgnn/nn/layers.h"
#include "qgnn/quant/quant_hooks.h"
#include "qgnn/util/export.h"

namespace qgnn {

enum class ModelKind { kGCN, kGAT, kAGNN, kSAGE, kGIN };

// Parses "gcn", "gat", "agnn", "sage", "gin"; throws c10::Error naming the bad value and
// the choices.
QGNN_API ModelKind parse_model_kind(const std::string& s);
QGNN_API std::string to_string(ModelKind kind);

// Everything needed to rebuild a model (stored in checkpoints as JSON).
struct QGNN_API ModelConfig {
  ModelKind kind = ModelKind::kGCN;
  int64_t in_channels = 0;
  int64_t hidden_channels = 16;    // per head for GAT
  int64_t out_channels = 0;        // number of classes
  int64_t num_layers = 2;          // GCN/GAT/SAGE/GIN: conv layers; AGNN: propagation layers
  int64_t heads = 1;               // GAT hidden-layer heads
  int64_t output_heads = 1;        // GAT output-layer heads (averaged)
  double dropout = 0.5;            // feature dropout before every layer
  double attention_dropout = 0.0;  // GAT attention dropout
  // Divide each input row by its sum (Kipf's citation preprocessing) inside the model,
  // after quantization point 0: the stored input stays the raw (e.g. binary) matrix,
  // which 1-bit codes represent exactly. Rows summing to 0 stay 0.
  bool row_normalize_input = false;

  std::string to_json() const;
  // Throws c10::Error naming the field and value on a malformed or incomplete text.
  static ModelConfig from_json(const std::string& text);
};

// Optimisation hyperparameters of a preset.
struct QGNN_API OptimConfig {
  double lr = 0.01;
  double weight_decay = 5e-4;
  bool weight_decay_first_layer_only = false;  // Kipf's GCN regularises layer 1 only
  int64_t epochs = 200;
  int64_t patience = 100;  // stop after this many epochs without val-acc or val-loss gain
};

struct QGNN_API Preset {
  std::string name;
  ModelConfig model;
  OptimConfig optim;
};

// Which benchmark family a dataset belongs to: the citation graphs with a public Planetoid
// split (Kipf's setting), or the co-purchase / co-author graphs evaluated on random
// 20/30-per-class splits (Shchur et al. 2018).
enum class DatasetFamily { kCitation, kRandomSplit };

// Presets:
//  "kipf": each paper's citation setting. GCN 2 layers x 16, dropout 0.5, lr 0.01,
//    wd 5e-4 (layer 1), 200 epochs. GAT 8 heads x 8 hidden, 1 output head, dropout and
//    attention dropout 0.6, lr 0.005, wd 5e-4, up to 1000 epochs, patience 100. AGNN
//    Linear(F,16), 4 propagation layers, Linear(16,C), dropout 0.5, lr 0.01, wd 5e-4.
//    SAGE 2 x 64, GIN 2 x 64 (not citation papers; PyG example settings).
//  "sgquant": SGQuant's Table I: GCN hidden 32 x 2 layers, AGNN hidden 16 x 4 layers,
//    GAT hidden 256 x 2 layers (8 heads x 32); SAGE/GIN as kipf.
// For DatasetFamily::kRandomSplit (Shchur et al.'s setting) models train up to 1000 epochs
// with patience 100, and "kipf" GCN uses 64 hidden units (Shchur et al. Table 6): with
// 16 units and 200 epochs GCN is still far from converged on Amazon Computers.
// Throws c10::Error for an unknown preset name.
QGNN_API Preset make_preset(const std::string& preset, ModelKind kind, int64_t in_channels,
                            int64_t num_classes, DatasetFamily family = DatasetFamily::kCitation);

// A node classifier: forward returns logits [N, C] (no softmax).
//
// Quantization points, in order: for GCN, GAT, SAGE and GIN, layer k's input embedding
// (k = 0 is the input features) and, for GAT, layer k's attention. For AGNN, layer 0 is
// the input of the first Linear, layers 1..L the inputs (and attention) of the L
// propagation layers, layer L+1 the input of the output Linear.
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

 private:
  NodeFeatures point(int64_t layer, const NodeFeatures& h, const GraphOperators& ops);
  ModelConfig config_;
  std::shared_ptr<QuantHook> hook_;
  std::vector<std::shared_ptr<torch::nn::Module>> convs_;  // in order
  torch::nn::Linear lin_in_{nullptr}, lin_out_{nullptr};   // AGNN only
};

// Memory of `model`'s quantization points on `ops`' graph under `policy`:
// memory_report(model.quant_points(ops), ops, policy, input) (quant/quant_hooks.h).
QGNN_API MemoryReport memory_report(const GnnModel& model, const GraphOperators& ops,
                                    const BitPolicy& policy, const InputCodeStats* input = nullptr);

}  // namespace qgnn
