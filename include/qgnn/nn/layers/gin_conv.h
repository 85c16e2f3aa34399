#pragma once
// GIN (Xu et al. 2019): registered as "gin", a stack of GINConv with ReLU.
#include <torch/types.h>

#include <memory>
#include <string>
#include <vector>

#include "qgnn/nn/layer.h"
#include "qgnn/util/export.h"

namespace qgnn {

// GIN layer (Xu et al., ICLR 2019, Eq. 4.1) with learnable eps and a 2-layer MLP:
//   h'_i = MLP((1 + eps) h_i + sum_{j in N(i)} h_j), MLP = Linear, ReLU, Linear.
//   forward: x [N, in] -> [N, out].
class QGNN_API GINConvImpl : public GnnLayer {
 public:
  GINConvImpl(int64_t in_channels, int64_t hidden_channels, int64_t out_channels,
              bool train_eps = true);
  torch::Tensor forward(const GraphOperators& ops, const NodeFeatures& x) override;
  int64_t in_channels() const override { return weight1.size(1); }
  std::string layer_name() const override { return "GINConv"; }
  // Integer lowering (nn/int_model.h; the arithmetic is listed there).
  std::shared_ptr<const IntegerLayer> lower(const IntegerLowering& lowering) const override;

  torch::Tensor eps;             // [1], initial 0
  torch::Tensor weight1, bias1;  // [hidden, in], [hidden]
  torch::Tensor weight2, bias2;  // [out, hidden], [out]
};
TORCH_MODULE(GINConv);

}  // namespace qgnn
