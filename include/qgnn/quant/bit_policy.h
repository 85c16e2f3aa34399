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
// Distributed and mini-batch training add boundary (rows sent to other ranks) and
// history (stored historical embeddings).
// Widths are 1..8, half (IEEE binary16; "16" is read as half) or 32 (full precision,
// the default).
//
// The other axes of the one quantizer (quant/quantizer.h) take the same scopes as the
// storage options: the key alone (every role), <role>.<key>, layer<L>.<role>.<key>:
//   scheme   affine|symmetric            (default: affine for SGQuant storage, symmetric
//                                          for QAT, which the integer kernels compute)
//   range    minmax|momentum|percentile  (default: minmax for storage and weights,
//                                          QatConfig::observer for QAT activations)
//   layout   auto|bitmap|index|nibble    (default: auto for the input, bitmap elsewhere,
//                                          nibble for QAT's 4-bit activations)
//   gran, round, cols, taq as above (gran, round, cols alone apply to emb and att, as
//   they always have; layer<L>.<role>.gran / .taq override one point; with a role they
//   apply to emb, att, boundary and history, the roles stored as packed rows).
// BitPolicy::spec() resolves a point's QuantSpec: its layer's clause, else its role's,
// else the policy-wide one, else the default of the role and target. Clauses are
// separated by ';', white space is ignored. to_string() prints the canonical form, which
// parses back to an equal policy.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "qgnn/quant/packed_tensor.h"
#include "qgnn/quant/quant_hook.h"
#include "qgnn/quant/quantizer.h"
#include "qgnn/util/export.h"

namespace qgnn {

// What a point's spec is for: SGQuant's packed storage and fake quantization, or QAT and
// its integer lowering; they differ in their defaults only (scheme, range, granularity).
enum class QuantTarget { kStorage, kInteger };

class QGNN_API BitPolicy {
 public:
  BitPolicy() = default;

  // Parses a spec (grammar above); "" or "fp32" is full precision everywhere.
  // Throws c10::Error "bit policy '<spec>': <problem> in '<clause>'".
  static BitPolicy parse(const std::string& spec);
  // Canonical text: bits, role bits, role gran, role round (when nonzero), role cols (when
  // on), taq, role taq, layer bits by layer and role, layer round and cols (those that
  // differ from their role's), then scheme, range, layout (policy-wide, by role) and the
  // layer clauses of gran, taq, scheme, range and layout that differ from their role's.
  // Width 16 prints as "half". "fp32" when nothing is quantized.
  std::string to_string() const;
  bool operator==(const BitPolicy& o) const { return to_string() == o.to_string(); }

  // Bits of a point before TAQ (16: half, 32: full precision).
  int bits(const QuantPoint& p) const;
  // The point's full specification for `target` (see the file comment), and the
  // quantizer it determines. Throws c10::Error when the resolved spec is inconsistent.
  QuantSpec spec(const QuantPoint& p, QuantTarget target = QuantTarget::kStorage) const;
  Quantizer quantizer(const QuantPoint& p, QuantTarget target = QuantTarget::kStorage) const;
  // The range rule written for a point (its layer's, role's or the policy-wide clause;
  // weights and attention only take one naming their role or layer), or nullopt when the
  // policy leaves it to the consumer's default.
  std::optional<RangeRule> range(const QuantPoint& p) const;
  // True when every point is 32-bit.
  bool is_full_precision() const;
  // Points named by a layer clause, and one point per role at a layer no clause names
  // (layer -1): together they cover every distinct spec the policy can resolve to, so
  // that a consumer can check them all up front.
  std::vector<QuantPoint> distinct_points() const;

  // Row grouping and bits for a point whose rows are indexed by node (embeddings) or by
  // edge (attention: each edge row takes its target node's bucket):
  // quantizer(p).row_bits(row_degree, population).
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
  // The clauses written at one scope; unset axes fall through to the wider scope.
  struct Clauses {
    std::optional<int> bits;
    std::optional<QuantScheme> scheme;
    std::optional<RangeRule> range;
    std::optional<Granularity> gran;
    std::optional<LayoutRule> layout;
    std::optional<Rounding> round;
    std::optional<bool> cols;
    std::optional<DegreeBuckets> taq;
  };
  Clauses all_;
  std::map<QuantRole, Clauses> role_;
  std::map<std::pair<int64_t, QuantRole>, Clauses> layer_;

  // The most specific clause of an axis for a point (layer, role, then the policy-wide
  // one unless policy_wide is false).
  template <class T>
  std::optional<T> resolve(const QuantPoint& p, std::optional<T> Clauses::*axis,
                           bool policy_wide = true) const;
  Clauses& layer_clauses(int64_t layer, QuantRole role);
};

// A role's name in policies ("emb", "att", "w", "lin", "agg", "hid", "boundary",
// "history") and back; parsing
// throws c10::Error naming the bad value.
QGNN_API std::string to_string(QuantRole role);
QGNN_API QuantRole parse_quant_role(const std::string& name);

}  // namespace qgnn
