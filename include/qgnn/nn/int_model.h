#pragma once
// Integer inference for models trained with quantization-aware training (quant/qat.h):
// the INT8 / INT4 models Degree-Quant (Tailor et al., ICLR 2021) trains, run with integer
// kernels (quant/int8_ops.h) instead of being simulated.
//
// Conversion reads the QAT model's weights, its observed activation ranges and its bits,
// and computes every layer as the fake-quantized model does (nn/layers.h lists the
// points), with int8 codes between layers, int32 accumulation in the linear maps and the
// aggregations, and fixed-point requantization:
//   GCN   q_lin = RQ(x_q W_q^T; s_in s_w[o] r_j d_j / s_lin)            (linear kernel)
//         q_agg = RQ(sum_{j in N(i) + i} q_lin_j; d_i s_lin / s_agg)       (SpMM kernel)
//   SAGE  q_lin = RQ(x_q [W_l; W_r]_q^T; s_in s_w[o] r_j / s_lin)
//         q_agg = RQ(sum_j q_lin,l_j + deg_i q_lin,r_i; s_lin / (deg_i s_agg))
//   GIN   q_lin as SAGE with W1; q_agg = RQ(2^k sum_j q_lin_j + c q_lin_i; s_lin / (2^k s_agg))
//         with c = round((1 + eps) 2^k); q_hid = RQ(2^8 q_agg + b1'; s_agg / (2^8 s_hid), relu)
//         and the second linear with its bias folded into the accumulator
//   between layers q_in' = RQ(2^8 q_agg + b'; s_agg / (2^8 s_in'), relu) (bias, ReLU and the
//   next layer's input scale in one requantization; the last layer dequantizes to float
//   logits), where RQ(acc; M) = clamp(round(acc * M), qmin, qmax) with M a fixed-point
//   multiplier, d = (in-degree + 1)^-1/2, r_j the input row normalization (if the model
//   has one) and b' the bias in accumulator units, rounded.
// INT4 activations are stored packed two per byte (quant/int8_ops.h) between kernels and
// computed through int8; INT4 weights are int8 codes in [-7, 7].
// Supported: GCN, SAGE, GIN trained with --qat int8 or int4 (every activation point and
// the weights at the same 8 or 4 bits). GAT and AGNN stay fake-quantized (attention
// softmax has no integer kernel here); convert() rejects them with an error.
//
// Each layer lowers itself (GnnLayer::lower) to an IntegerLayer; the model runs the
// stack of integer layers with int8 or INT4 codes between them.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "qgnn/nn/models.h"
#include "qgnn/quant/qat.h"
#include "qgnn/util/export.h"

namespace qgnn {

// Input features quantized once (point 0): codes and, for models that row-normalize
// their input, the per-row factor 1 / sum_k x^_jk of the dequantized rows.
struct QGNN_API QuantizedInput {
  at::Tensor codes;      // [N, F] int8, or [N, ceil(F / 2)] uint8 (INT4 packed)
  at::Tensor row_scale;  // [N] float32 or undefined
  int64_t num_features = 0;
  int64_t nbytes() const;
};

// Wall time of the last forward by kernel class, milliseconds.
struct IntegerTiming {
  double linear_ms = 0;     // integer GEMMs with their fused requantization
  double aggregate_ms = 0;  // integer SpMMs with their fused requantization
  double other_ms = 0;      // glue requantizations, INT4 packing, dequantized logits
  double total_ms() const { return linear_ms + aggregate_ms + other_ms; }
};

// What IntegerModel::convert hands a layer's lower(): the QAT hook, where the layer sits,
// and the model's one width.
struct QGNN_API IntegerLowering {
  const QatHook& hook;
  int64_t layer = 0;  // stack position: the layer's input is point (layer, embedding)
  bool last = false;  // the last layer dequantizes to float logits
  int bits = 8;       // the width of every point, 8 or 4
  // The observed scale of point (layer, role); throws c10::Error when the point's width
  // is not `bits` or it was never observed.
  float scale(QuantRole role) const;
  // The next layer's input scale (1 for the last layer).
  float next_scale() const;
  // A weight's codes per output channel by the quantizer QatHook fake-quantized it with
  // (quant/quantizer.h): int8 codes [out, in] and float32 scales [out].
  std::pair<at::Tensor, at::Tensor> weight_codes(const at::Tensor& w) const;
};

// Per-graph state of an integer layer (row multipliers from degrees and input row
// scales), computed once per graph and input and cached by IntegerModel.
struct QGNN_API IntegerPlan {
  virtual ~IntegerPlan() = default;
};

// A layer lowered to integer kernels (GnnLayer::lower). Immutable once built.
class QGNN_API IntegerLayer {
 public:
  virtual ~IntegerLayer() = default;
  // The layer's per-graph state on `ops`' graph. `input_rows` (first layer of a model
  // that row-normalizes its input only, else undefined): [N] float64, the factor of each
  // dequantized input row (1 for all-zero rows).
  virtual std::shared_ptr<const IntegerPlan> plan(const GraphOperators& ops,
                                                  const at::Tensor& input_rows) const = 0;
  // x: the layer's input codes, stored by `codes` (int8 [N, F], or INT4 packed). Returns
  // the next layer's input codes stored the same way or, for the last layer, float32
  // logits [N, C]. Adds its kernels' wall time to `timing`.
  virtual at::Tensor forward(const GraphOperators& ops, const IntegerPlan& plan,
                             const at::Tensor& x, const Quantizer& codes,
                             IntegerTiming& timing) const = 0;
  // Bytes of the packed integer weights.
  virtual int64_t weight_bytes() const = 0;
};

class QGNN_API IntegerModel {
 public:
  // Converts a QAT-trained model (weights + the hook's observed ranges), layer by layer.
  // Throws c10::Error for a layer without an integer kernel, mixed or unsupported bits,
  // or a point that was never observed.
  static IntegerModel convert(GnnModel& model, const QatHook& hook);

  int bits() const { return bits_; }
  // Quantizes x (dense or sparse, as the model's input) with the input point's scale.
  QuantizedInput quantize_input(const NodeFeatures& x) const;
  // Full-graph inference: logits [N, C] float32. `timing` (optional) gets the breakdown.
  // The per-row fixed-point multipliers of a graph (degree normalizations, input row
  // scales) are computed on the first forward over it and cached, as GraphOperators
  // caches its normalized adjacency; later forwards over the same graph and input reuse
  // them. Thread-safe.
  at::Tensor forward(const GraphOperators& ops, const QuantizedInput& x,
                     IntegerTiming* timing = nullptr) const;
  // Bytes of the packed integer weights.
  int64_t weight_bytes() const;

  struct RowPlan;  // the layers' plans for one graph and input (int_model.cpp)

 private:
  std::shared_ptr<const RowPlan> plan_for(const GraphOperators& ops, const QuantizedInput& x) const;
  int bits_ = 8;
  bool row_normalize_ = false;
  float input_scale_ = 1;
  // The activation points' quantizer (one width and layout for every node-wise point):
  // its codes at the input, how activations are stored (bytes, or nibbles at 4 bits).
  std::shared_ptr<const Quantizer> codes_;
  std::vector<std::shared_ptr<const IntegerLayer>> layers_;
  struct PlanCache;
  std::shared_ptr<PlanCache> cache_;
};

}  // namespace qgnn
