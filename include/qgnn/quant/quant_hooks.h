#pragma once
// Quantization hooks driven by a BitPolicy, and the memory accounting of DESIGN.md. Every
// point is quantized, packed and sized by the Quantizer its spec determines
// (BitPolicy::quantizer, quant/quantizer.h); these hooks only find the rows' degrees.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "qgnn/ops/graph_operators.h"
#include "qgnn/quant/bit_policy.h"
#include "qgnn/quant/packed_tensor.h"
#include "qgnn/quant/quant_hook.h"
#include "qgnn/util/export.h"

namespace qgnn {

// Row in-degree tables for TAQ: node in-degrees of the global graph
// (GraphOperators::in_degree(), embedding rows) and the in-degree of each edge's target
// (attention rows).
QGNN_API at::Tensor embedding_row_degree(const GraphOperators& ops);
// The population attention TAQ quantiles are taken over: every edge of the global A + I
// counted once with its target's in-degree, [E'_global] int64, for a block; undefined
// for a full graph (its own attention rows are the population).
QGNN_API at::Tensor attention_degree_population(const GraphOperators& ops);
QGNN_API at::Tensor attention_row_degree(const CsrGraph& g);
// The same from the graph's row pointer alone ([R + 1] int64): [E'] int64.
QGNN_API at::Tensor attention_row_degree(const at::Tensor& row_indptr);

// Fake quantization of every point at the policy's bits with straight-through gradients
// (SGQuant Sec. III-D fine-tuning; the forward equals packed storage's dequantized
// values). The quantized copy of a constant input (no grad, the same tensor object as
// last time, e.g. the dataset's features) is cached; the cache holds a reference to its
// source, so a later tensor can never alias it by reusing the address.
class QGNN_API FakeQuantHook : public QuantHook {
 public:
  explicit FakeQuantHook(BitPolicy policy);
  NodeFeatures embedding(int64_t layer, const NodeFeatures& h, const GraphOperators& ops) override;
  at::Tensor attention(int64_t layer, const at::Tensor& alpha, const CsrGraph& g) override;
  void begin_forward(const GraphOperators& ops, bool training) override;
  const BitPolicy& policy() const { return policy_; }

 private:
  struct Cached {
    at::Tensor source;  // kept alive: is_same() then means the same values
    NodeFeatures value;
  };
  BitPolicy policy_;
  std::map<int64_t, Cached> cache_;
  at::Tensor attention_population_;  // of the current forward's graph (TAQ quantiles)
};

// Quantized inference on packed storage: every quantized embedding is packed
// (PackedTensor) and the next layer computes from the packed rows (packed_linear decodes
// tiles on the fly; the float copy of the whole matrix is never made). Attention values
// are packed block by block as they are computed and aggregated from their codes (GAT,
// AGNN: pack_attention). An input that is already packed passes through. Records the
// bytes actually held by each point. Inference only (no autograd).
// The input point (layer 0's embedding) takes the layout pack() chooses (an index list
// for sparse 1-bit inputs); hidden embeddings and attention are stored as bitmaps, whose
// size follows from their shapes, so that memory_report() equals stored_bytes() without
// running the model.
class QGNN_API PackedInferenceHook : public QuantHook {
 public:
  explicit PackedInferenceHook(BitPolicy policy);
  NodeFeatures embedding(int64_t layer, const NodeFeatures& h, const GraphOperators& ops) override;
  at::Tensor attention(int64_t layer, const at::Tensor& alpha, const CsrGraph& g) override;
  // Packs attention block by block (PackedTensor::pack_blocks) at the policy's bits,
  // ranges and rounding; nullptr at 32 bits and with column scales (att.cols=on needs the
  // whole tensor), where the layer falls back to attention().
  std::shared_ptr<const PackedTensor> pack_attention(
      int64_t layer, const at::Tensor& row_indptr, int64_t heads,
      const std::vector<int64_t>& bounds,
      const std::function<void(int64_t block, float* out)>& produce) override;
  // Packs a hidden embedding block by block (a bitmap, as embedding() stores hidden
  // layers; equal to packing the whole matrix); nullptr at 32 bits and with column scales.
  std::shared_ptr<const PackedTensor> pack_embedding(
      int64_t layer, const GraphOperators& ops, int64_t cols, const std::vector<int64_t>& bounds,
      const std::function<void(int64_t block, float* out)>& produce) override;
  void begin_forward(const GraphOperators& ops, bool training) override;
  const BitPolicy& policy() const { return policy_; }
  // Bytes held by each point in the last forward.
  const std::map<QuantPoint, int64_t>& stored_bytes() const { return stored_; }

 private:
  BitPolicy policy_;
  std::map<QuantPoint, int64_t> stored_;
  at::Tensor attention_population_;  // of the current forward's graph (TAQ quantiles)
};

// Packs a model input (quantization point 0) under `policy`.
//   x: [N, F] features, dense or sparse (a sparse x is densified once, transiently).
QGNN_API std::shared_ptr<const PackedTensor> pack_input(const NodeFeatures& x,
                                                        const GraphOperators& ops,
                                                        const BitPolicy& policy);

// What the memory accounting needs to know about a model input beyond its shape: how
// many codes equal 1 when the input is quantized at 1 bit (it decides whether pack()
// stores an index list, and that list's size). Built once from the features (one pass
// over the values); queries are then cheap: per-row ranges (Granularity::kRow) are
// answered from per-row counts, the per-tensor count is computed on first use, and
// per-bucket counts once per distinct row grouping (cached). Thread-safe.
class QGNN_API InputCodeStats {
 public:
  InputCodeStats() = default;
  // x: the [N, F] input as the layer-0 quantization point sees it (TrainData::x), dense
  // or sparse (implicit zeros count as values). Keeps a reference to x's storage for
  // kTensor / kBucket queries.
  // Throws c10::Error when x is packed or undefined, or holds NaN or infinity.
  explicit InputCodeStats(const NodeFeatures& x);

  // Appends the next block of input rows ([n, F] float32 dense, read chunk by chunk).
  // Statistics grown this way keep no values: ones() then answers Granularity::kRow only.
  // Throws c10::Error on a column-count mismatch, on non-finite values, or when the
  // statistics were built from whole features.
  void append_rows(const at::Tensor& rows);

  int64_t num_rows() const { return rows_; }
  int64_t num_cols() const { return cols_; }

  // Codes equal to 1 when every row is quantized at 1 bit with `gran`; `rows` gives the
  // row grouping (its bits are not read; the grouping matters for kBucket only).
  // Exactly the number of 1-codes PackedTensor::pack(x, rows, gran, layout, opt) stores
  // with opt.rounding = rounding and, when column_scaled, opt.column_scale =
  // column_scales(x) (the statistics of the scaled values are built on first use).
  // Throws c10::Error when rows.row_group does not have N entries, or for kTensor /
  // kBucket or column_scaled when the statistics were built with append_rows().
  int64_t ones(const RowBits& rows, Granularity gran, Rounding rounding = Rounding::kNearest,
               bool column_scaled = false) const;

 private:
  struct State;
  std::shared_ptr<State> state_;
  int64_t rows_ = 0, cols_ = 0;
};

// Feature memory of one quantization point and of a whole model (DESIGN.md "Memory
// accounting"). Two figures, never mixed:
// - dense (the headline, comparable with SGQuant's Table III, whose saving is
//   32 / average bits): every point as dense b-bit codes plus its quantization
//   parameters (scales, zero points, bucket tables); average bits count codes only;
// - stored: the bytes PackedTensor::pack really holds, where a lossless storage format
//   (the index-list layout of a sparse 1-bit input) may replace the dense codes.
// Full precision is 4 bytes per value in both.
struct PointMemory {
  QuantPointInfo info;
  int bits = 32;  // point bits before TAQ (16: half)
  int64_t values = 0;
  int64_t fp32_bytes = 0;
  int64_t dense_bytes = 0;                      // dense codes + parameters
  int64_t dense_code_bytes = 0;                 // dense codes only
  PackedLayout layout = PackedLayout::kBitmap;  // how pack() stores the point
  int64_t stored_bytes = 0;                     // as stored in `layout`
  int64_t stored_code_bytes = 0;                // codes (or index list) as stored
};

struct MemoryReport {
  std::vector<PointMemory> points;
  int64_t values = 0, fp32_bytes = 0;
  int64_t dense_bytes = 0, dense_code_bytes = 0;
  int64_t stored_bytes = 0, stored_code_bytes = 0;
  double fp32_mb() const { return fp32_bytes / 1e6; }
  // Dense codes + parameters, MB (1e6 bytes): the comparable feature memory.
  double dense_mb() const { return dense_bytes / 1e6; }
  // 8 * dense code bytes / values: SGQuant's average bits.
  double average_bits() const { return values ? 8.0 * dense_code_bytes / values : 0.0; }
  // fp32 bytes / dense bytes: SGQuant's memory saving.
  double saving() const { return dense_bytes ? double(fp32_bytes) / dense_bytes : 0.0; }
  // As stored (index lists where pack() uses them), MB.
  double stored_mb() const { return stored_bytes / 1e6; }
  // 8 * stored code bytes / values (an index list counts its bytes as codes).
  double stored_average_bits() const { return values ? 8.0 * stored_code_bytes / values : 0.0; }
  // fp32 bytes / stored bytes.
  double stored_saving() const { return stored_bytes ? double(fp32_bytes) / stored_bytes : 0.0; }
};

// Memory of a model's quantization points (`points`, GnnModel::quant_points on `ops`'
// graph; nn/models.h has the overload taking the model) under `policy` (computed
// exactly from the shapes and the policy, without running the model).
//   input: statistics of the model input (layer 0's embedding). With them the input
//   point is accounted as PackedInferenceHook / PackedTensor::pack store it (an index
//   list when every row is 1-bit and that is smaller); without them (nullptr) every
//   point is accounted as a bitmap.
// Throws c10::Error when input's shape differs from the input point's [N, F].
QGNN_API MemoryReport memory_report(const std::vector<QuantPointInfo>& points,
                                    const GraphOperators& ops, const BitPolicy& policy,
                                    const InputCodeStats* input = nullptr);

}  // namespace qgnn
