#pragma once
// GraphSAGE-mean (Hamilton et al. 2017): registered as "sage", SAGEConv with ReLU.
#include <torch/types.h>

#include <memory>
#include <string>
#include <vector>

#include "qgnn/nn/layer.h"
#include "qgnn/util/export.h"

namespace qgnn {

// GraphSAGE layer with mean aggregator (Hamilton et al., NeurIPS 2017, Alg. 1 line 4-5,
// PyG's form): h'_i = W_l mean_{j in N(i)} h_j + b + W_r h_i.
//   forward: x [N, in] -> [N, out].
class QGNN_API SAGEConvImpl : public GnnLayer {
 public:
  SAGEConvImpl(int64_t in_channels, int64_t out_channels, bool bias = true);
  torch::Tensor forward(const GraphOperators& ops, const NodeFeatures& x) override;
  int64_t in_channels() const override { return weight_root.size(1); }
  std::string layer_name() const override { return "SAGEConv"; }
  // Integer lowering (nn/int_model.h; the arithmetic is listed there).
  std::shared_ptr<const IntegerLayer> lower(const IntegerLowering& lowering) const override;

  torch::Tensor weight_neighbors;  // W_l [out, in]
  torch::Tensor weight_root;       // W_r [out, in]
  torch::Tensor bias;              // [out] or undefined
};
TORCH_MODULE(SAGEConv);

}  // namespace qgnn
