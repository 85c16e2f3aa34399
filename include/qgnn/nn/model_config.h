#pragma once
// What a model is made of (a registered layer type and its widths), its training
// hyperparameters, and the presets that set both. No libtorch here: the CLI and the
// checkpoint reader parse and check configs without the layer headers.
#include <cstdint>
#include <string>

#include "qgnn/util/export.h"

namespace qgnn {

// Everything needed to rebuild a model (stored in checkpoints as JSON).
struct QGNN_API ModelConfig {
  // A registered layer type's name (nn/layer.h: "gcn", "gat", "agnn", "sage", "gin", ...):
  // the --model value and the checkpoint's "model" field.
  std::string model = "gcn";
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
  // Throws c10::Error naming the field and value on a malformed or incomplete text, or a
  // model name no layer type is registered under.
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

// Presets, "kipf" (each paper's citation setting) or "sgquant" (SGQuant's Table I); the
// registered layer type sets its own (nn/layers.h documents the five built in). For
// DatasetFamily::kRandomSplit (Shchur et al.'s setting) every model trains up to 1000
// epochs with patience 100. Throws c10::Error for an unknown preset or model name.
QGNN_API Preset make_preset(const std::string& preset, const std::string& model,
                            int64_t in_channels, int64_t num_classes,
                            DatasetFamily family = DatasetFamily::kCitation);

}  // namespace qgnn
