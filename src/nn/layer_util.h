#pragma once
// Helpers shared by the layer sources (src/nn/layers/): parameter initialisation as PyG
// and torch::nn do it, and the target-row blocking of packed inference.
#include <ATen/Parallel.h>
#include <torch/nn/init.h>
#include <torch/nn/module.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "qgnn/nn/layer.h"

namespace qgnn {

// Glorot / Xavier uniform, as PyG initialises GCN and GAT weights.
inline torch::Tensor glorot(torch::nn::Module& m, const std::string& name,
                            std::vector<int64_t> shape) {
  auto t = m.register_parameter(name, torch::empty(shape));
  torch::nn::init::xavier_uniform_(t);
  return t;
}

// torch::nn::Linear's default initialisation (Kaiming uniform, a = sqrt(5); bias
// uniform in +-1/sqrt(fan_in)).
inline torch::Tensor linear_weight(torch::nn::Module& m, const std::string& name, int64_t out,
                                   int64_t in) {
  auto t = m.register_parameter(name, torch::empty({out, in}));
  torch::nn::init::kaiming_uniform_(t, std::sqrt(5.0));
  return t;
}

inline torch::Tensor linear_bias(torch::nn::Module& m, const std::string& name, int64_t out,
                                 int64_t fan_in) {
  auto t = m.register_parameter(name, torch::empty({out}));
  const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  torch::nn::init::uniform_(t, -bound, bound);
  return t;
}

inline torch::Tensor zeros_bias(torch::nn::Module& m, const std::string& name, int64_t out) {
  return m.register_parameter(name, torch::zeros({out}));
}

// out + bias; in place when no gradient is recorded (inference), so that a layer's
// [N, F] output exists once. `out` must be a fresh tensor the caller owns.
inline torch::Tensor add_bias(torch::Tensor out, const torch::Tensor& bias) {
  if (!bias.defined()) return out;
  const bool inplace =
      !at::GradMode::is_enabled() || (!out.requires_grad() && !bias.requires_grad());
  return inplace ? out.add_(bias) : out + bias;
}

// Target-row blocks of about `edges` edges each: row bounds and the matching edge bounds.
inline void edge_blocks(const at::Tensor& indptr, int64_t edges, std::vector<int64_t>& rows,
                        std::vector<int64_t>& bounds) {
  const int64_t* ip = indptr.data_ptr<int64_t>();
  const int64_t r = indptr.numel() - 1;
  rows = {0};
  bounds = {0};
  for (int64_t i = 1; i <= r; ++i) {
    if (ip[i] - bounds.back() >= edges || i == r) {
      rows.push_back(i);
      bounds.push_back(ip[i]);
    }
  }
}

// Block `k` of rows [rows[k], rows[k + 1]), `cols` floats per row, into out.
using RowProducer = std::function<void(int64_t block, float* out)>;

// A layer's output [N, cols]: handed to `pack` block by block when it takes it, else
// produced whole (blocks in parallel).
inline LayerOutput block_output(int64_t n, int64_t cols, const std::vector<int64_t>& rows,
                                const RowProducer& produce, const OutputPacker& pack) {
  if (pack && rows.size() >= 2) {
    if (auto packed = pack(cols, rows, produce)) return {torch::Tensor(), std::move(packed)};
  }
  at::Tensor out = at::empty({n, cols}, at::kFloat);
  float* op = out.data_ptr<float>();
  const int64_t blocks = static_cast<int64_t>(rows.size()) - 1;
  at::parallel_for(0, blocks, 1, [&](int64_t b, int64_t e) {
    for (int64_t k = b; k < e; ++k) produce(k, op + rows[k] * cols);
  });
  return {out, nullptr};
}

// Widths of layer l of a stack of c.num_layers layers: in = in_channels for the first
// layer and `hidden_in` (hidden_channels when 0) after it, out = out_channels for the
// last layer and hidden_channels before it.
inline std::pair<int64_t, int64_t> stack_widths(const ModelConfig& c, int64_t l,
                                                int64_t hidden_in = 0) {
  const int64_t in = l == 0 ? c.in_channels : (hidden_in > 0 ? hidden_in : c.hidden_channels);
  const int64_t out = l == c.num_layers - 1 ? c.out_channels : c.hidden_channels;
  return {in, out};
}

// The usual stack: c.num_layers layers "conv<l>" = make(l, in, out) (widths as
// stack_widths), `activation` between them.
inline std::vector<StackEntry> conv_stack(
    const ModelConfig& c, Activation activation,
    const std::function<std::shared_ptr<GnnLayer>(int64_t l, int64_t in, int64_t out)>& make,
    int64_t hidden_in = 0) {
  std::vector<StackEntry> stack;
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const auto [in, out] = stack_widths(c, l, hidden_in);
    stack.push_back({"conv" + std::to_string(l), make(l, in, out), activation});
  }
  return stack;
}

// The preset of models without a citation paper setting (SAGE, GIN: PyG's examples):
// 2 x 64, dropout 0.5, lr 0.01, weight decay 5e-4, 200 epochs, patience 100.
inline void pyg_example_preset(Preset& p) {
  p.model.hidden_channels = 64;
  p.model.num_layers = 2;
  p.model.dropout = 0.5;
  p.optim.lr = 0.01;
  p.optim.weight_decay = 5e-4;
  p.optim.epochs = 200;
  p.optim.patience = 100;
}

// Weight-matrix elements of a stack of num_layers layers (LayerSpec::weight_elements):
// the sum of per_layer(in, out, last) with in = in_channels for the first layer and
// `hidden_in` (hidden_channels when 0) after it, out = out_channels for the last layer
// and hidden_channels before it; stops once past `limit`.
inline double stack_weight_elements(const ModelConfig& c, double limit,
                                    const std::function<double(double, double, bool)>& per_layer,
                                    double hidden_in = 0) {
  // In double: a corrupt config's widths may overflow int64 when multiplied.
  const double hidden = static_cast<double>(c.hidden_channels);
  double total = 0;
  for (int64_t l = 0; l < c.num_layers && total <= limit; ++l) {
    const bool last = l == c.num_layers - 1;
    const double in =
        l == 0 ? static_cast<double>(c.in_channels) : (hidden_in > 0 ? hidden_in : hidden);
    const double out = last ? static_cast<double>(c.out_channels) : hidden;
    total += per_layer(in, out, last);
  }
  return total;
}

}  // namespace qgnn
