#pragma once
// The layer seam. A model (nn/models.h) is a stack of layers built by a registered layer
// type: each layer type is one registration (LayerSpec) that names it, builds its stack
// from a ModelConfig and sets its presets, and each layer is a GnnLayer that knows its
// forward pass, its packed inference, its quantization points and its integer lowering.
// Adding a model (SGC, SIGN, EGC, ...) is one new layer source file that defines its
// GnnLayer and registers it (REGISTER_LAYER_TYPE), plus its test: nothing else switches
// on the model.
#include <torch/nn/module.h>
#include <torch/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "qgnn/nn/model_config.h"
#include "qgnn/ops/graph_operators.h"
#include "qgnn/quant/node_features.h"
#include "qgnn/quant/quant_hook.h"
#include "qgnn/util/export.h"

namespace qgnn {

class IntegerLayer;      // nn/int_model.h
struct IntegerLowering;  // nn/int_model.h

// Inference with packed storage (SGQuant's packed embeddings): a layer hands its output
// [N, cols] to the packer a block of rows at a time, so that the float output never
// exists whole: produce(k, out) writes rows [row_bounds[k], row_bounds[k + 1]) row-major
// into out (thread-safe; blocks may be produced in parallel and more than once). The
// packer returns the packed output, or nullptr without calling produce when the consumer
// keeps floats (32 bits, column scales); the layer then returns its output dense.
using OutputPacker = std::function<std::shared_ptr<const PackedTensor>(
    int64_t cols, const std::vector<int64_t>& row_bounds,
    const std::function<void(int64_t block, float* out)>& produce)>;

// A layer's inference output: dense [N, cols] float32, or packed (exactly one is set).
struct LayerOutput {
  torch::Tensor dense;
  std::shared_ptr<const PackedTensor> packed;
};

// One layer of a model's stack: (graph operators, node features [N, in_channels()]) ->
// [N, F_out] float32. A torch::nn::Module, so parameters, train()/eval(), optimizers and
// serialization work as in libtorch.
//
// Layer l of a stack owns quantization point (l, embedding), its input, which the model
// quantizes before the layer runs; a layer adds any further points it has (attention)
// and reads them, and under QAT its layer points (nn/layers.h), through its QuantSite.
class QGNN_API GnnLayer : public torch::nn::Module {
 public:
  // Training and float inference (autograd as the operators record it).
  virtual torch::Tensor forward(const GraphOperators& ops, const NodeFeatures& x) = 0;
  // Inference (eval mode, no autograd, no layer quantization) under packed storage: the
  // layer may read x's codes and hand its output to `pack` (see OutputPacker). The
  // default is forward(ops, x), dense.
  virtual LayerOutput infer(const GraphOperators& ops, const NodeFeatures& x,
                            const OutputPacker& pack = {});
  // Width of the input (of quantization point (l, embedding)).
  virtual int64_t in_channels() const = 0;
  // True when the layer reads other nodes' rows (so a graph block needs its halo rows
  // exchanged first, GraphOperators::exchange); false for row-wise maps.
  virtual bool aggregates() const { return true; }
  // Appends the layer's quantization points beyond its input embedding (attention, one
  // value per edge of A + I and head), for stack position `layer`, on `ops`' graph.
  virtual void add_quant_points(const GraphOperators& ops, int64_t layer,
                                std::vector<QuantPointInfo>& points) const;
  // The layer lowered to integer kernels from its QAT-trained weights and the hook's
  // observed ranges (IntegerModel::convert). The default throws c10::Error: the layer
  // has no integer kernel.
  virtual std::shared_ptr<const IntegerLayer> lower(const IntegerLowering& lowering) const;
  // Short name of the layer in messages ("GCNConv").
  virtual std::string layer_name() const = 0;

  // Routes the layer's quantization points through the model's hook.
  void set_quant_site(QuantSite s) { site_ = s; }
  const QuantSite& quant_site() const { return site_; }

 protected:
  QuantSite site_;
};

// The activation a stack applies to a layer's output before the next layer.
enum class Activation { kNone, kReLU, kELU };

// One position of a model's stack.
struct StackEntry {
  std::string name;  // module name: parameters are saved as "<name>.<parameter>"
  std::shared_ptr<GnnLayer> layer;
  Activation activation = Activation::kNone;  // ignored for the last layer
  bool dropout = true;                        // feature dropout on the layer's input
};

// A registered layer type: the --model value and everything model-specific.
struct QGNN_API LayerSpec {
  std::string name;  // "gcn"
  // The stack of layers of `config` (config.model == name, widths already checked
  // positive), in order.
  std::function<std::vector<StackEntry>(const ModelConfig& config)> build;
  // Sets p.model's widths and p.optim for preset `preset` ("kipf" or "sgquant") and
  // `family`; p.model.in_channels / out_channels are set, everything else is default.
  std::function<void(Preset& p, const std::string& preset, DatasetFamily family)> preset;
  // Weight-matrix elements build(config) would allocate, a lower bound of its parameter
  // count, computed without allocating and stopping once past `limit` (checkpoint
  // loading refuses absurd configs before building them).
  std::function<double(const ModelConfig& config, double limit)> weight_elements;
};

// Registers `spec`; throws c10::Error if its name is taken or a function is missing.
// Returns true (so a registration can initialise a static, REGISTER_LAYER_TYPE).
QGNN_API bool register_layer_type(LayerSpec spec);
// The layer type registered as `name`; throws c10::Error "unknown model 'x' (choices: ...)".
QGNN_API const LayerSpec& layer_type(const std::string& name);
// Names of the registered layer types, sorted.
QGNN_API std::vector<std::string> layer_type_names();

#define QGNN_CONCAT_INNER(a, b) a##b
#define QGNN_CONCAT(a, b) QGNN_CONCAT_INNER(a, b)
// At namespace scope in a layer's source file: REGISTER_LAYER_TYPE(make_spec()).
#define REGISTER_LAYER_TYPE(spec)                                        \
  static const bool QGNN_CONCAT(qgnn_layer_type_registered_, __LINE__) = \
      ::qgnn::register_layer_type(spec)

}  // namespace qgnn
