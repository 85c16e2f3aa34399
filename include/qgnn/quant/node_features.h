#pragma once
// Node-feature matrices stored dense or as CSR, with the operations a first layer needs.
//
// Bag-of-words features are mostly zeros (Cora 98.7%, CiteSeer 99.2%, Coauthor >99%), so
// the input layer's X W is computed as a sparse-dense product and dropout touches only
// the non-zeros (dropping a zero is a no-op).
#include <ATen/core/Tensor.h>

#include <memory>

#include "qgnn/graph/csr_graph.h"
#include "qgnn/util/export.h"

namespace qgnn {

class PackedTensor;

class QGNN_API NodeFeatures {
 public:
  NodeFeatures() = default;
  // Wraps a dense [N, F] float32 matrix (may require grad).
  explicit NodeFeatures(at::Tensor dense);
  // Wraps a sparse [N, F] CSR matrix (values in weights(); undefined weights mean 1).
  explicit NodeFeatures(CsrGraph sparse);
  // Wraps bit-packed quantized rows (quant/packed_tensor.h). Packed features are for
  // inference: linear() decodes tiles of rows on the fly (packed_linear), to_dense()
  // decodes everything; no autograd, and dropout only in eval mode (a no-op).
  explicit NodeFeatures(std::shared_ptr<const PackedTensor> packed);

  // Stores x sparse when its fraction of non-zeros is at most max_density, else dense.
  //   x: [N, F] float32.
  static NodeFeatures from_dense(const at::Tensor& x, double max_density = 0.4);

  bool is_sparse() const { return sparse_.defined(); }
  bool is_packed() const { return packed_ != nullptr; }
  bool defined() const { return dense_.defined() || sparse_.defined() || packed_ != nullptr; }
  const std::shared_ptr<const PackedTensor>& packed() const { return packed_; }
  int64_t num_rows() const;
  int64_t num_cols() const;
  const at::Tensor& dense() const { return dense_; }  // REQUIRES: !is_sparse()
  const CsrGraph& sparse() const { return sparse_; }  // REQUIRES: is_sparse()
  int64_t nnz() const;

  // [N, F] float32 dense copy (or the dense tensor itself).
  at::Tensor to_dense() const;

  // Inverted dropout (ops/dropout.h); for sparse features only the stored values are
  // dropped, the structure is shared.
  NodeFeatures dropout(double p, bool training) const;

  // X W^T (+ b), the torch::nn::Linear convention.
  //   weight: [out, F] float32, may require grad; bias: [out] or undefined.
  //   returns: [N, out]; differentiable with respect to weight and bias (and X if dense).
  at::Tensor linear(const at::Tensor& weight, const at::Tensor& bias = {}) const;

  // Features whose row r is multiplied by scale[r] ([N] float32). For packed features the
  // scale is kept aside and applied to linear() outputs and to_dense(); for dense and
  // sparse features the values are scaled.
  NodeFeatures scale_rows(const at::Tensor& scale) const;

  // Rows selected by `index` ([K] int64) as new features (for mini-batches, tests).
  NodeFeatures index_rows(const at::Tensor& index) const;

 private:
  at::Tensor dense_;
  CsrGraph sparse_;
  std::shared_ptr<const PackedTensor> packed_;
  at::Tensor packed_row_scale_;  // [N] float32 or undefined (packed features only)
};

}  // namespace qgnn
