#include "qgnn/nn/layers/linear.h"

#include "nn/layer_util.h"

namespace qgnn {

LinearLayerImpl::LinearLayerImpl(int64_t in_channels, int64_t out_channels) {
  weight = linear_weight(*this, "weight", out_channels, in_channels);
  bias = linear_bias(*this, "bias", out_channels, in_channels);
}

torch::Tensor LinearLayerImpl::forward(const GraphOperators& /*ops*/, const NodeFeatures& x) {
  return x.linear(weight, bias);
}

}  // namespace qgnn
