#pragma once
// BitPolicy: which bits every quantization point of a model runs at.
//
// A quantization point is a tensor role at a layer: the layer's input embedding h^k
// (layer 0's is the input feature matrix) or its attention coefficients alpha^k (GAT,
// AGNN). Layers never know their bits: they hand each point to a hook, and the policy
// decides (SGQuant's granularities, Feng et al. ICTAI 2020, Sec. III):
//   uniform  one width for everything                      bits=4
//   CWQ      component-wise: embeddings vs. attention      emb=4;att=2
//   LWQ      layer-wise overrides (0-based layers)         layer1.emb=8;layer0.att=3
//   TAQ      topology-aware: bits by in-degree bucket      taq=4@<=2,3@<=8,2
//            (degree <= 2 -> 4 bits, <= 8 -> 3, above -> 2); "taq=4,3,2" places the
//            bucket boundaries at in-degree quantiles (equal-count buckets).
//            TAQ caps a point's bits: a row of bucket g gets min(point bits, taq[g]),
//            so high in-degree rows (whose aggregation averages out noise) get fewer.
//            emb.taq=... / att.taq=... restrict TAQ to one component.
//   gran     range granularity: gran=row|tensor|bucket, or emb.gran=..., att.gran=...
//            (defaults: row for embeddings, tensor for attention).
//   round    how values become codes: round=nearest|nonzero, or emb.round=, att.round=
//            (default nearest, SGQuant's; nonzero keeps every non-zero value of a row
//            whose range starts at 0 off code 0: Rounding in quant/packed_tensor.h).
//   cols     per-column scales on top of the ranges: cols=on|off, emb.cols=, att.cols=
//            (default off; each column is divided by the mean of its non-zero |x| before
//            quantization, QuantOptions::column_scale).
//            Both take layer overrides: layer0.emb.round=nonzero, layer0.emb.cols=on.
// Integer QAT (Degree-Quant, quant/qat.h) adds four components with the same clauses:
//   w (weights, symmetric per output channel), lin (linear outputs = messages),
//   agg (aggregated messages), hid (GIN's MLP hidden layer); e.g. "bits=4;w=8".
//   TAQ and gran apply to emb and att only.
// Bits are 1..8, 16 (half) or 32 (full precision, the default). round and cols apply to
// every layer's point of their component. Clauses are separated by
// ';', white space is ignored. to_string() prints the canonical form, which parses back
// to an equal policy.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "qgnn/quant/packed_tensor.h"
#include "qgnn/quant/quant_hook.h"
#include "qgnn/util/export.h"

namespace qgnn {

struct QuantPoint {
  int64_t layer = 0;
  QuantRole role = QuantRole::kEmbedding;
};

// In-degree buckets with their bit caps. upper[g] is the inclusive in-degree bound of
// bucket g (the last bucket has none); empty upper with several bits = quantile buckets.
struct DegreeBuckets {
  std::vector<int64_t> upper;
  std::vector<int> bits;
  bool quantile() const { return upper.empty() && bits.size() > 1; }
  bool operator==(const DegreeBuckets& o) const { return upper == o.upper && bits == o.bits; }
};

class QGNN_API BitPolicy {
 public:
  BitPolicy() = default;

  // Parses a spec (grammar above); "" or "fp32" is full precision everywhere.
  // Throws c10::Error "bit policy '<spec>': <problem> in '<clause>'".
  static BitPolicy parse(const std::string& spec);
  // Canonical text: bits, emb, att, emb.gran, att.gran, emb.round, att.round (when nonzero),
  // emb.cols, att.cols (when on), taq, emb.taq, att.taq, then
  // layer overrides by layer and role, then layer overrides of round and cols (those that
  // differ from their role's). "fp32" when nothing is quantized.
  std::string to_string() const;
  bool operator==(const BitPolicy& o) const { return to_string() == o.to_string(); }

  // Bits of a point before TAQ.
  int bits(const QuantPoint& p) const;
  // Bucket caps for a role (TAQ), or nullopt.
  std::optional<DegreeBuckets> buckets(QuantRole role) const;
  Granularity granularity(QuantRole role) const;
  // Rounding and column scales of a point (layer override, else the role's).
  Rounding rounding(const QuantPoint& p) const;
  bool column_scales(const QuantPoint& p) const;
  // True when every point is 32-bit.
  bool is_full_precision() const;
  // True when the policy names a storage option beyond bits (taq, gran, round or cols,
  // at any role or layer): what packed storage and fake quantization use and QAT,
  // which quantizes symmetrically per tensor, cannot honour.
  bool has_storage_options() const;

  // Row grouping and bits for a point whose rows are indexed by node (embeddings) or by
  // edge (attention: each edge row takes its target node's bucket).
  //   row_degree: [R] int64 in-degree of the node each row belongs to.
  //   population: int64 degrees whose quantiles place quantile buckets (a block of a
  //   larger graph passes the global graph's, GraphOperators::degree_population());
  //   undefined: row_degree itself.
  RowBits row_bits(const QuantPoint& p, const at::Tensor& row_degree,
                   const at::Tensor& population = {}) const;

  // Editing (used by the automatic search).
  void set_default_bits(int bits);
  void set_role_bits(QuantRole role, int bits);
  void set_layer_bits(int64_t layer, QuantRole role, int bits);
  void set_taq(std::optional<QuantRole> role, DegreeBuckets buckets);
  void set_granularity(QuantRole role, Granularity g);
  void set_rounding(QuantRole role, Rounding r);
  void set_column_scales(QuantRole role, bool on);
  void set_layer_rounding(int64_t layer, QuantRole role, Rounding r);
  void set_layer_column_scales(int64_t layer, QuantRole role, bool on);

 private:
  int default_bits_ = 32;
  std::map<QuantRole, int> role_bits_;
  std::map<std::pair<int64_t, QuantRole>, int> layer_bits_;
  std::optional<DegreeBuckets> taq_all_;
  std::map<QuantRole, DegreeBuckets> taq_role_;
  std::map<QuantRole, Granularity> gran_;
  std::map<QuantRole, Rounding> round_;
  std::map<QuantRole, bool> cols_;
  std::map<std::pair<int64_t, QuantRole>, Rounding> layer_round_;
  std::map<std::pair<int64_t, QuantRole>, bool> layer_cols_;

  Rounding role_rounding(QuantRole role) const;
  bool role_column_scales(QuantRole role) const;
};

// A role's name in policies ("emb", "att", "w", "lin", "agg", "hid") and back; parsing
// throws c10::Error naming the bad value.
QGNN_API std::string to_string(QuantRole role);
QGNN_API QuantRole parse_quant_role(const std::string& name);

}  // namespace qgnn
