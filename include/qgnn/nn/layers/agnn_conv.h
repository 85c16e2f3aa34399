#pragma once
// AGNN (Thekumparampil et al. 2018): registered as "agnn": Linear, ReLU, AGNNConv x L,
// Linear.
#include <torch/types.h>

#include <memory>
#include <string>
#include <vector>

#include "qgnn/nn/layer.h"
#include "qgnn/util/export.h"

namespace qgnn {

// AGNN propagation layer (Thekumparampil et al. 2018, Eqs. 5-6), on A + I:
//   alpha_ij = softmax_j(beta * cos(h_i, h_j)), h'_i = sum_j alpha_ij h_j.
//   forward: x [N, D] dense -> [N, D]. beta is learnable unless requires_grad == false
//   (then fixed at 1, as the paper's first propagation layer).
class QGNN_API AGNNConvImpl : public GnnLayer {
 public:
  // `channels`: D, the width it propagates (its quantization point's width).
  AGNNConvImpl(int64_t channels, bool requires_grad);
  torch::Tensor forward(const GraphOperators& ops, const torch::Tensor& x);
  torch::Tensor forward(const GraphOperators& ops, const NodeFeatures& x) override {
    return forward(ops, x.to_dense());
  }
  // Packed inference (eval mode, no autograd): with a packed x and a hook that packs this
  // layer's attention, the cosines, alpha and the aggregation read x's codes a block of
  // target rows at a time over A + I read from A (packed_sddmm_dot_rows,
  // packed_attention_spmm_rows): no float [N, D] input or [E', 1] attention is held, and
  // the output goes to `pack` block by block when it takes it. Otherwise forward(ops,
  // x.to_dense()). Equals forward() on x.to_dense() to float rounding.
  LayerOutput infer(const GraphOperators& ops, const NodeFeatures& x,
                    const OutputPacker& pack = {}) override;
  const torch::Tensor& last_attention() const { return last_attention_; }
  int64_t in_channels() const override { return channels_; }
  std::string layer_name() const override { return "AGNNConv"; }
  // alpha: (l, attention), [E', 1] over the edges of A + I.
  void add_quant_points(const GraphOperators& ops, int64_t layer,
                        std::vector<QuantPointInfo>& points) const override;

  torch::Tensor beta;  // [1]

 private:
  int64_t channels_;
  torch::Tensor last_attention_;
};
TORCH_MODULE(AGNNConv);

}  // namespace qgnn
