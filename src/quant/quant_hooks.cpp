#include "qgnn/quant/quant_hooks.h"

#include <ATen/ATen.h>

namespace qgnn {

namespace {

bool all_rows_one_group(const RowBits& rb) {
  return !rb.row_group.defined() || rb.num_groups() == 1;
}

// Bytes of one row's codes at `bits`.
int64_t row_code_bytes(int64_t cols, int bits) { return (cols * bits + 7) / 8; }

}  // namespace

PackedSize packed_size(int64_t rows, int64_t cols, const RowBits& rb, Granularity gran) {
  PackedSize s;
  const int64_t groups = rb.num_groups();
  std::vector<int64_t> group_rows(groups, 0);
  if (all_rows_one_group(rb)) {
    group_rows[0] = rows;
  } else {
    auto counts = at::bincount(rb.row_group.to(at::kLong), {}, groups);
    for (int64_t g = 0; g < groups; ++g) group_rows[g] = counts[g].item<int64_t>();
  }
  bool any_params = false;
  for (int64_t g = 0; g < groups; ++g) {
    s.code_bytes += group_rows[g] * row_code_bytes(cols, rb.group_bits[g]);
    any_params = any_params || rb.group_bits[g] <= 8;
  }
  s.bytes = s.code_bytes;
  if (rb.row_group.defined() && groups > 1) {
    s.bytes += 8 * (rows + 1) + rows + groups;  // row offsets, row groups, group bits
  }
  if (any_params) {
    const int64_t param_sets = gran == Granularity::kRow ? rows : groups;
    s.bytes += 8 * param_sets;  // float32 scale + lo
  }
  return s;
}

at::Tensor embedding_row_degree(const GraphOperators& ops) { return ops.graph().in_degree(); }

at::Tensor attention_row_degree(const CsrGraph& g) {
  return g.in_degree().index_select(0, g.row_ids());
}

FakeQuantHook::FakeQuantHook(BitPolicy policy) : policy_(std::move(policy)) {}

NodeFeatures FakeQuantHook::embedding(int64_t layer, const NodeFeatures& h,
                                      const GraphOperators& ops) {
  const QuantPoint p{layer, QuantRole::kEmbedding};
  if (policy_.bits(p) == 32) return h;
  const at::Tensor& storage = h.is_sparse() ? h.sparse().weights() : h.dense();
  const bool constant = storage.defined() && !storage.requires_grad();
  if (constant) {
    auto it = cache_.find(layer);
    if (it != cache_.end() && it->second.source.is_same(storage)) return it->second.value;
  }
  const RowBits rb = policy_.row_bits(p, embedding_row_degree(ops));
  at::Tensor q = fake_quantize(h.to_dense(), rb, policy_.granularity(QuantRole::kEmbedding));
  NodeFeatures out = h.is_sparse() ? NodeFeatures::from_dense(q, 1.0) : NodeFeatures(q);
  if (constant) cache_[layer] = Cached{storage, out};
  return out;
}

at::Tensor FakeQuantHook::attention(int64_t layer, const at::Tensor& alpha, const CsrGraph& g) {
  const QuantPoint p{layer, QuantRole::kAttention};
  if (policy_.bits(p) == 32) return alpha;
  const RowBits rb = policy_.row_bits(p, attention_row_degree(g));
  const bool flat = alpha.dim() == 1;
  at::Tensor a2 = flat ? alpha.unsqueeze(1) : alpha;
  at::Tensor q = fake_quantize(a2, rb, policy_.granularity(QuantRole::kAttention));
  return flat ? q.squeeze(1) : q;
}

PackedInferenceHook::PackedInferenceHook(BitPolicy policy) : policy_(std::move(policy)) {}

NodeFeatures PackedInferenceHook::embedding(int64_t layer, const NodeFeatures& h,
                                            const GraphOperators& ops) {
  const QuantPoint p{layer, QuantRole::kEmbedding};
  if (h.is_packed()) {
    stored_[{layer, false}] = h.packed()->nbytes();
    return h;
  }
  if (policy_.bits(p) == 32) {
    stored_[{layer, false}] = 4 * h.num_rows() * h.num_cols();
    return h;
  }
  const RowBits rb = policy_.row_bits(p, embedding_row_degree(ops));
  auto packed = std::make_shared<const PackedTensor>(
      PackedTensor::pack(h.to_dense(), rb, policy_.granularity(QuantRole::kEmbedding)));
  stored_[{layer, false}] = packed->nbytes();
  return NodeFeatures(packed);
}

at::Tensor PackedInferenceHook::attention(int64_t layer, const at::Tensor& alpha,
                                          const CsrGraph& g) {
  const QuantPoint p{layer, QuantRole::kAttention};
  if (policy_.bits(p) == 32) {
    stored_[{layer, true}] = 4 * alpha.numel();
    return alpha;
  }
  const RowBits rb = policy_.row_bits(p, attention_row_degree(g));
  const bool flat = alpha.dim() == 1;
  const PackedTensor packed = PackedTensor::pack(flat ? alpha.unsqueeze(1) : alpha, rb,
                                                 policy_.granularity(QuantRole::kAttention));
  stored_[{layer, true}] = packed.nbytes();
  at::Tensor out = packed.decode();
  return flat ? out.squeeze(1) : out;
}

std::shared_ptr<const PackedTensor> pack_input(const NodeFeatures& x, const GraphOperators& ops,
                                               const BitPolicy& policy) {
  const QuantPoint p{0, QuantRole::kEmbedding};
  const RowBits rb = policy.row_bits(p, embedding_row_degree(ops));
  return std::make_shared<const PackedTensor>(
      PackedTensor::pack(x.to_dense(), rb, policy.granularity(QuantRole::kEmbedding)));
}

MemoryReport memory_report(const GnnModel& model, const GraphOperators& ops,
                           const BitPolicy& policy) {
  MemoryReport r;
  at::Tensor emb_degree = embedding_row_degree(ops);
  at::Tensor att_degree;
  for (const QuantPointInfo& info : model.quant_points(ops)) {
    const QuantRole role = info.attention ? QuantRole::kAttention : QuantRole::kEmbedding;
    const QuantPoint p{info.layer, role};
    if (info.attention && !att_degree.defined())
      att_degree = attention_row_degree(ops.self_loops());
    const RowBits rb = policy.row_bits(p, info.attention ? att_degree : emb_degree);
    PointMemory m;
    m.point = info;
    m.bits = policy.bits(p);
    m.values = info.rows * info.cols;
    m.fp32_bytes = 4 * m.values;
    const PackedSize s = packed_size(info.rows, info.cols, rb, policy.granularity(role));
    m.stored_bytes = s.bytes;
    m.code_bytes = s.code_bytes;
    r.values += m.values;
    r.fp32_bytes += m.fp32_bytes;
    r.stored_bytes += m.stored_bytes;
    r.code_bytes += m.code_bytes;
    r.points.push_back(m);
  }
  return r;
}

}  // namespace qgnn
