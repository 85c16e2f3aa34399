#pragma once
// A row-wise affine map as a stack layer (AGNN's input and output transforms).
#include <torch/types.h>

#include <string>

#include "qgnn/nn/layer.h"
#include "qgnn/util/export.h"

namespace qgnn {

// y = x W^T + b, row by row (no aggregation): forward x [N, in] -> [N, out].
// Initialised as torch::nn::Linear (Kaiming uniform, a = sqrt(5); bias uniform in
// +-1/sqrt(in)).
class QGNN_API LinearLayerImpl : public GnnLayer {
 public:
  LinearLayerImpl(int64_t in_channels, int64_t out_channels);
  torch::Tensor forward(const GraphOperators& ops, const NodeFeatures& x) override;
  int64_t in_channels() const override { return weight.size(1); }
  bool aggregates() const override { return false; }
  std::string layer_name() const override { return "Linear"; }

  torch::Tensor weight;  // [out, in]
  torch::Tensor bias;    // [out]
};
TORCH_MODULE(LinearLayer);

}  // namespace qgnn
