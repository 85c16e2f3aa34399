#pragma once
// Quantization-aware training for integer inference: Degree-Quant (Tailor,
// Fernandez-Marques, Lane, "Degree-Quant: Quantization-Aware Training for Graph Neural
// Networks", ICLR 2021) and plain QAT, on the quantization points of qgnn/nn/layers.h.
//
// Every point is fake-quantized the way the integer model (nn/int_model.h) computes:
//   weights      symmetric per output channel, scale_c = max_k |w_ck| / qmax
//   activations  symmetric per tensor, scale = max(|lo|, |hi|) / qmax, [lo, hi] from a
//                range observer (momentum min/max or a sampled percentile)
//   attention    alpha in [0, 1] on the fixed grid k / (2^b - 1)
// with qmax = 2^(b-1) - 1 (127 at INT8, 7 at INT4) and straight-through gradients
// (Bengio et al. 2013): d x^ / d x = 1 inside the clipping range, 0 outside.
//
// Degree-Quant's protective masking (Sec. 3.2): at every training step node i keeps
// full precision at every node-wise point with probability
//   p_i = p_min + (p_max - p_min) * F(d_i),
// F the empirical CDF of in-degree over the graph's nodes (nodes of equal in-degree share
// p; the highest in-degree gets p_max). Masks never apply at evaluation. The percentile
// observer is the paper's robust range for aggregated values.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>

#include "qgnn/quant/bit_policy.h"
#include "qgnn/quant/quant_hook.h"
#include "qgnn/quant/quantizer.h"
#include "qgnn/util/export.h"

namespace qgnn {

// The range rule of QAT's activation observers (quant/quantizer.h's RangeRule; kMinMax
// observes each batch alone and is not a QatConfig observer).
using ObserverKind = RangeRule;
// "momentum" or "percentile"; throws c10::Error naming the bad value.
QGNN_API ObserverKind parse_observer(const std::string& s);

struct QGNN_API QatConfig {
  // Bits per point, "bits=8" is INT8 everywhere, "bits=4;w=8" etc.; resolved with
  // QuantTarget::kInteger (symmetric codes). A range clause (e.g. "agg.range=percentile")
  // overrides `observer` at its points.
  BitPolicy policy;
  ObserverKind observer = ObserverKind::kMomentum;
  double momentum = 0.1;       // weight of the newest batch statistic in the running range
  double percentile = 99.9;    // percentile observer: range [q_(100-p), q_p] of a sample
  int64_t sample_size = 4096;  // values the percentile observer samples per step
  bool degree_quant = false;   // protective masking by in-degree
  double p_min = 0.0, p_max = 0.2;

  // "int8" / "int4" presets: bits=8 or bits=4 at every point (INT4 keeps 8-bit attention).
  // Throws c10::Error for another name.
  static QatConfig preset(const std::string& precision);
  std::string to_json() const;
  // Throws c10::Error naming the field on a malformed text.
  static QatConfig from_json(const std::string& text);
};

// Degree-Quant's protection probabilities: in_degree [N] int64 -> [N] float32 with
// p_i = p_min + (p_max - p_min) * F(d_i), F(d) = #{j : d_j <= d} / M over the degrees
// d_j of `population` ([M] int64: the global graph's in-degrees, for a block of it;
// undefined: in_degree itself).
// Requires 0 <= p_min <= p_max <= 1 (c10::Error otherwise).
QGNN_API at::Tensor protective_mask_probabilities(const at::Tensor& in_degree, double p_min,
                                                  double p_max, const at::Tensor& population = {});

// The QAT hook. In training mode it updates each activation point's range
// (RangeObserver: range = (1 - m) range + m batch, the first batch taken as is) and then
// fake-quantizes with it; at evaluation it uses the stored ranges. Points at 32 bits pass
// through. Every point is quantized by its Quantizer (config.policy.quantizer(p,
// QuantTarget::kInteger)); the hook refuses a policy whose specs the integer kernels
// cannot compute (affine codes, row or bucket ranges, TAQ, rounding or column options,
// a range rule on weights).
class QGNN_API QatHook : public QuantHook {
 public:
  explicit QatHook(QatConfig config);
  bool quantizes_layers() const override { return true; }
  void begin_forward(const GraphOperators& ops, bool training) override;
  NodeFeatures embedding(int64_t layer, const NodeFeatures& h, const GraphOperators& ops) override;
  at::Tensor attention(int64_t layer, const at::Tensor& alpha, const CsrGraph& g) override;
  at::Tensor weight(int64_t layer, int64_t index, const at::Tensor& w) override;
  at::Tensor activation(int64_t layer, QuantRole role, const at::Tensor& h) override;
  std::string save_state() const override;
  void load_state(const std::string& state) override;

  const QatConfig& config() const { return config_; }
  int bits(int64_t layer, QuantRole role) const { return config_.policy.bits({layer, role}); }
  // The quantizer of a point (what the integer lowering encodes with).
  Quantizer quantizer(const QuantPoint& p) const;
  // Running ranges of the activation points seen so far.
  const std::map<QuantPoint, ObservedRange>& ranges() const { return ranges_; }
  // Symmetric scale of an activation point at evaluation: max(|lo|, |hi|) / qmax.
  // Throws c10::Error if the point was never observed.
  float scale(int64_t layer, QuantRole role) const;
  // Nodes kept at full precision in the current training forward ([N] bool), or
  // undefined outside training / without degree_quant.
  const at::Tensor& protected_nodes() const { return mask_; }
  // Their probabilities ([N] float32, protective_mask_probabilities of the graph's global
  // in-degrees), or undefined before a Degree-Quant training forward.
  const at::Tensor& protection_probabilities() const { return prob_; }

 private:
  at::Tensor quantize_nodes(const QuantPoint& p, const at::Tensor& h);
  RangeObserver observer(const QuantPoint& p) const;
  QatConfig config_;
  bool training_ = false;
  at::Tensor mask_;
  uint64_t prob_key_ = 0;  // GraphOperators::id() the cached probabilities belong to
  at::Tensor prob_;
  std::map<QuantPoint, ObservedRange> ranges_;
};

}  // namespace qgnn
