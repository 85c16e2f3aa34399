#include "qgnn/quant/node_features.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <vector>

#include "qgnn/ops/dropout.h"
#include "qgnn/ops/spmm.h"
#include "qgnn/quant/packed_tensor.h"

namespace qgnn {

NodeFeatures::NodeFeatures(at::Tensor dense) : dense_(std::move(dense)) {
  TORCH_CHECK(dense_.defined() && dense_.dim() == 2 && dense_.scalar_type() == at::kFloat,
              "NodeFeatures: dense features must be a [N, F] float32 tensor, got ",
              dense_.defined() ? dense_.sizes() : at::IntArrayRef{});
}

NodeFeatures::NodeFeatures(CsrGraph sparse) : sparse_(std::move(sparse)) {
  TORCH_CHECK(sparse_.defined(), "NodeFeatures: sparse features are undefined");
}

NodeFeatures::NodeFeatures(std::shared_ptr<const PackedTensor> packed)
    : packed_(std::move(packed)) {
  TORCH_CHECK(packed_ != nullptr && packed_->defined(),
              "NodeFeatures: packed features are undefined");
}

NodeFeatures NodeFeatures::from_dense(const at::Tensor& x, double max_density) {
  TORCH_CHECK(x.defined() && x.dim() == 2 && x.scalar_type() == at::kFloat,
              "NodeFeatures::from_dense: x must be a [N, F] float32 tensor, got ",
              x.defined() ? x.sizes() : at::IntArrayRef{});
  // A trainable x stays dense so that it keeps its gradient.
  if (x.requires_grad() || x.numel() == 0) return NodeFeatures(x);
  const at::Tensor xc = x.contiguous().to(at::kCPU);
  const int64_t n = xc.size(0), f = xc.size(1);
  const float* xp = xc.data_ptr<float>();
  at::Tensor indptr = at::empty({n + 1}, at::kLong);
  int64_t* ip = indptr.data_ptr<int64_t>();
  ip[0] = 0;
  at::parallel_for(0, n, 256, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      int64_t c = 0;
      for (int64_t j = 0; j < f; ++j) c += xp[i * f + j] != 0.0f;
      ip[i + 1] = c;
    }
  });
  for (int64_t i = 0; i < n; ++i) ip[i + 1] += ip[i];
  const int64_t nnz = ip[n];
  if (static_cast<double>(nnz) > max_density * static_cast<double>(n * f)) {
    return NodeFeatures(x);
  }
  at::Tensor indices = at::empty({nnz}, at::kLong);
  at::Tensor values = at::empty({nnz}, at::kFloat);
  int64_t* xi = indices.data_ptr<int64_t>();
  float* xv = values.data_ptr<float>();
  at::parallel_for(0, n, 256, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      int64_t k = ip[i];
      for (int64_t j = 0; j < f; ++j) {
        const float v = xp[i * f + j];
        if (v != 0.0f) {
          xi[k] = j;
          xv[k++] = v;
        }
      }
    }
  });
  return NodeFeatures(CsrGraph(indptr, indices, values, f));
}

int64_t NodeFeatures::num_rows() const {
  if (is_packed()) return packed_->num_rows();
  return is_sparse() ? sparse_.num_rows() : (dense_.defined() ? dense_.size(0) : 0);
}

int64_t NodeFeatures::num_cols() const {
  if (is_packed()) return packed_->num_cols();
  return is_sparse() ? sparse_.num_cols() : (dense_.defined() ? dense_.size(1) : 0);
}

int64_t NodeFeatures::nnz() const {
  if (is_packed()) return at::count_nonzero(packed_->decode()).item<int64_t>();
  if (is_sparse()) return sparse_.num_edges();
  return dense_.defined() ? at::count_nonzero(dense_).item<int64_t>() : 0;
}

at::Tensor NodeFeatures::to_dense() const {
  if (is_packed()) {
    at::Tensor d = packed_->decode();
    return packed_row_scale_.defined() ? d.mul_(packed_row_scale_.unsqueeze(1)) : d;
  }
  if (!is_sparse()) return dense_;
  const int64_t n = sparse_.num_rows(), f = sparse_.num_cols();
  at::Tensor out = at::zeros({n, f}, at::kFloat);
  const at::Tensor w = sparse_.has_weights() ? sparse_.weights().detach() : at::Tensor();
  const float* wp = w.defined() ? w.data_ptr<float>() : nullptr;
  const int64_t* ip = sparse_.indptr().data_ptr<int64_t>();
  const int64_t* idx = sparse_.indices().data_ptr<int64_t>();
  float* op = out.data_ptr<float>();
  at::parallel_for(0, n, 256, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      for (int64_t k = ip[i]; k < ip[i + 1]; ++k) op[i * f + idx[k]] += wp ? wp[k] : 1.0f;
    }
  });
  return out;
}

NodeFeatures NodeFeatures::dropout(double p, bool training) const {
  TORCH_CHECK(defined(), "NodeFeatures::dropout: features are undefined");
  if (is_packed()) {
    TORCH_CHECK(!training || p == 0.0, "NodeFeatures::dropout: packed features are for inference");
    return *this;
  }
  if (!is_sparse()) return NodeFeatures(qgnn::dropout(dense_, p, training));
  TORCH_CHECK(p >= 0.0 && p < 1.0, "dropout: p must be in [0, 1), got ", p);
  if (!training || p == 0.0) return *this;
  const at::Tensor values =
      sparse_.has_weights() ? sparse_.weights() : at::ones({sparse_.num_edges()}, at::kFloat);
  return NodeFeatures(sparse_.with_weights(qgnn::dropout(values, p, training)));
}

at::Tensor NodeFeatures::linear(const at::Tensor& weight, const at::Tensor& bias) const {
  TORCH_CHECK(defined(), "NodeFeatures::linear: features are undefined");
  TORCH_CHECK(weight.defined() && weight.dim() == 2 && weight.size(1) == num_cols(),
              "NodeFeatures::linear: weight must be [out, ", num_cols(), "], got ",
              weight.defined() ? weight.sizes() : at::IntArrayRef{});
  TORCH_CHECK(!bias.defined() || (bias.dim() == 1 && bias.size(0) == weight.size(0)),
              "NodeFeatures::linear: bias must be [", weight.size(0), "], got ", bias.sizes());
  if (is_packed()) {
    if (!packed_row_scale_.defined()) {
      return packed_linear(*packed_, weight.detach(), bias.defined() ? bias.detach() : bias);
    }
    at::Tensor y = packed_linear(*packed_, weight.detach()).mul_(packed_row_scale_.unsqueeze(1));
    return bias.defined() ? y.add_(bias.detach()) : y;
  }
  if (!is_sparse()) return at::linear(dense_, weight, bias);
  // X W^T as an SpMM over the stored non-zeros; its autograd gives dW^T = X^T dY through
  // the cached transpose of X.
  at::Tensor y = spmm(sparse_, weight.t().contiguous());
  if (bias.defined()) y.add_(bias);
  return y;
}

NodeFeatures NodeFeatures::scale_rows(const at::Tensor& scale) const {
  TORCH_CHECK(defined(), "NodeFeatures::scale_rows: features are undefined");
  TORCH_CHECK(scale.dim() == 1 && scale.size(0) == num_rows() && scale.scalar_type() == at::kFloat,
              "NodeFeatures::scale_rows: scale must be [", num_rows(), "] float32, got ",
              scale.sizes());
  if (is_packed()) {
    NodeFeatures out(*this);
    out.packed_row_scale_ = packed_row_scale_.defined() ? packed_row_scale_ * scale : scale;
    return out;
  }
  if (!is_sparse()) return NodeFeatures(dense_ * scale.unsqueeze(1));
  const at::Tensor w = sparse_.has_weights() ? sparse_.weights() : at::ones({sparse_.num_edges()});
  return NodeFeatures(sparse_.with_weights(w * scale.index_select(0, sparse_.row_ids())));
}

NodeFeatures NodeFeatures::index_rows(const at::Tensor& index) const {
  TORCH_CHECK(defined(), "NodeFeatures::index_rows: features are undefined");
  TORCH_CHECK(index.defined() && index.dim() == 1 &&
                  (index.scalar_type() == at::kLong || index.scalar_type() == at::kInt),
              "NodeFeatures::index_rows: index must be a 1-D int64 tensor");
  TORCH_CHECK(!is_packed(), "NodeFeatures::index_rows: not supported for packed features");
  const at::Tensor idx = index.to(at::kLong).contiguous();
  const int64_t k = idx.size(0), n = num_rows();
  const int64_t* rp = idx.data_ptr<int64_t>();
  for (int64_t r = 0; r < k; ++r) {
    TORCH_CHECK(rp[r] >= 0 && rp[r] < n, "NodeFeatures::index_rows: index[", r, "] = ", rp[r],
                " is out of range [0, ", n, ")");
  }
  if (!is_sparse()) return NodeFeatures(dense_.index_select(0, idx));
  const int64_t* ip = sparse_.indptr().data_ptr<int64_t>();
  const int64_t* si = sparse_.indices().data_ptr<int64_t>();
  at::Tensor indptr = at::empty({k + 1}, at::kLong);
  int64_t* np = indptr.data_ptr<int64_t>();
  np[0] = 0;
  for (int64_t r = 0; r < k; ++r) np[r + 1] = np[r] + ip[rp[r] + 1] - ip[rp[r]];
  at::Tensor indices = at::empty({np[k]}, at::kLong);
  at::Tensor edge_ids = at::empty({np[k]}, at::kLong);
  int64_t* ni = indices.data_ptr<int64_t>();
  int64_t* ne = edge_ids.data_ptr<int64_t>();
  for (int64_t r = 0; r < k; ++r) {
    int64_t o = np[r];
    for (int64_t e = ip[rp[r]]; e < ip[rp[r] + 1]; ++e, ++o) {
      ni[o] = si[e];
      ne[o] = e;
    }
  }
  at::Tensor values;
  if (sparse_.has_weights()) values = sparse_.weights().index_select(0, edge_ids);
  return NodeFeatures(CsrGraph(indptr, indices, values, sparse_.num_cols()));
}

}  // namespace qgnn
