#pragma once
// Helpers shared by the integer lowerings of the layers (GnnLayer::lower): fixed-point
// multipliers, the kernels by activation width, and the integer glue between them.
#include <ATen/ATen.h>

#include <cstdint>

#include "qgnn/graph/csr_graph.h"
#include "qgnn/nn/int_model.h"
#include "qgnn/quant/int8_ops.h"
#include "qgnn/util/timing.h"

namespace qgnn::intlayer {

// Bias precision of the glue requantizations: 2^-16 of a code. With 2^-8, GIN INT4 on
// Cora disagreed with its fake-quantized model on 0.3-0.4% of nodes (values near a
// rounding boundary moved across it); the int8 codes shifted by 16 bits still fit int32.
constexpr int kGlueShift = 16;

inline QuantRange range_for(int bits, bool relu) {
  return bits == 4 ? QuantRange::int4(relu) : QuantRange::int8(relu);
}

// Fixed-point multipliers ([K, 2] int32) of real factors (any shape, flattened).
inline at::Tensor multipliers(const at::Tensor& real) {
  return fixed_point_multipliers(real.to(at::kDouble).reshape({-1}));
}

inline at::Tensor scalar_multiplier(double m) { return multipliers(at::full({1}, m, at::kDouble)); }

// Integer glue between the fused kernels (bias, ReLU, GIN's self term, SAGE's root term):
// requantize_rows() of acc (int32 or int8 [N, F]) with the given terms.
inline at::Tensor glue(const at::Tensor& acc, int pre_shift, const at::Tensor& self,
                       int32_t self_weight, const at::Tensor& bias, const at::Tensor& mult,
                       const QuantRange& r) {
  RowRequant rq;
  rq.pre_shift = pre_shift;
  rq.self = self;
  rq.self_weight = self_weight;
  rq.bias = bias;
  rq.row_multiplier = mult;
  rq.out = r;
  return requantize_rows(acc, rq);
}

// The kernels by the width activations are stored at (int8, or INT4 packed).
inline at::Tensor linear_s32(const at::Tensor& x, const Int8Linear& w, int bits) {
  return bits == 4 ? int4_linear_s32(x, w) : int8_linear_s32(x, w);
}

inline at::Tensor linear_rq(const at::Tensor& x, const Int8Linear& w, int bits,
                            const LinearRequant& rq) {
  return bits == 4 ? int4_linear(x, w, rq) : int8_linear(x, w, rq);
}

inline at::Tensor spmm_s32(const CsrGraph& g, const at::Tensor& x, int64_t f, int bits) {
  return bits == 4 ? int4_spmm_s32(g, x, f) : int8_spmm_s32(g, x);
}

inline at::Tensor spmm_rq(const CsrGraph& g, const at::Tensor& x, int64_t f, int bits,
                          const SpmmRequant& rq) {
  return bits == 4 ? int4_spmm(g, x, f, rq) : int8_spmm(g, x, rq);
}

// The first linear map of a layer: W's codes packed for the kernel and the per-column
// multipliers s_in s_w[o] / s_lin of its requantization.
struct QuantizedLinear {
  Int8Linear w;
  at::Tensor scale;  // [O] float32, s_w
  at::Tensor col;    // [O, 2]
  int64_t out = 0;   // O
  int64_t bytes() const { return w.weight.nbytes(); }
};
inline QuantizedLinear quantize_linear(const IntegerLowering& lo, const at::Tensor& w, float s_in,
                                       float s_lin) {
  QuantizedLinear q;
  auto [codes, scale] = lo.weight_codes(w);
  q.scale = scale;
  q.w = pack_int8_linear(codes);
  q.col = multipliers(scale.to(at::kDouble) * (double(s_in) / s_lin));
  q.out = w.size(0);
  return q;
}

// q_lin = RQ(x_q W_q^T; col[o] rows[j]) (rows may be undefined: no row factor): int8
// [N, O], or stored by `store` when given; wall time into timing.linear_ms.
inline at::Tensor run_linear(const QuantizedLinear& lin, const at::Tensor& x,
                             const at::Tensor& rows, int bits, IntegerTiming& timing,
                             const Quantizer* store = nullptr) {
  const auto t0 = Clock::now();
  LinearRequant rq;
  rq.col_multiplier = lin.col;
  rq.row_multiplier = rows;
  rq.out = range_for(bits, false);
  at::Tensor out = linear_rq(x, lin.w, bits, rq);
  if (store != nullptr) out = store->store_codes(out);
  timing.linear_ms += ms_since(t0);
  return out;
}

// The tail of GCN and SAGE (and GIN's hidden step): q_agg + bias, then either the next
// layer's input codes RQ(2^16 q_agg + b'; s_agg / (2^16 s_to), relu) or, for the last
// layer, float logits q_agg s_agg + b.
struct BiasGlue {
  bool last = false;
  float s_agg = 1;
  at::Tensor bias_codes;  // [out] int32: 2^16 b / s_agg
  at::Tensor mult;        // [1, 2]: s_agg / (2^16 s_to)
  at::Tensor bias;        // [out] float32
};
inline BiasGlue make_bias_glue(int64_t layer, bool last, const at::Tensor& b, float s_agg,
                               double s_to) {
  BiasGlue g;
  g.last = last;
  g.s_agg = s_agg;
  const at::Tensor bias_codes = b.to(at::kDouble) / double(s_agg);
  TORCH_CHECK(bias_codes.abs().max().item<double>() < 16384, "IntegerModel: layer ", layer,
              "'s bias is over 16384 codes of its aggregate scale");
  g.bias_codes = at::round(bias_codes * double(1 << kGlueShift)).to(at::kInt);
  g.mult = scalar_multiplier(s_agg / (double(1 << kGlueShift) * s_to));
  g.bias = b.to(at::kFloat).contiguous();
  return g;
}
// RQ(2^16 agg + b'; mult, relu) stored as `codes` stores activations.
inline at::Tensor apply_bias_relu(const BiasGlue& g, const at::Tensor& agg, int bits) {
  return glue(agg, kGlueShift, {}, 0, g.bias_codes, g.mult, range_for(bits, true));
}

// The end of a GCN or SAGE layer: the next layer's input codes, stored as `codes` stores
// activations, or the last layer's float logits (wall time into timing.other_ms).
inline at::Tensor finish_layer(const BiasGlue& g, const at::Tensor& agg, int bits,
                               const Quantizer& codes, IntegerTiming& timing) {
  const auto t0 = Clock::now();
  at::Tensor out = g.last ? agg.to(at::kFloat) * g.s_agg + g.bias
                          : codes.store_codes(apply_bias_relu(g, agg, bits));
  timing.other_ms += ms_since(t0);
  return out;
}

}  // namespace qgnn::intlayer
