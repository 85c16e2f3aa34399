#pragma once
// GCN (Kipf & Welling 2017): registered as "gcn", a stack of GCNConv with ReLU.
#include <torch/types.h>

#include <memory>
#include <string>
#include <vector>

#include "qgnn/nn/layer.h"
#include "qgnn/util/export.h"

namespace qgnn {

// GCN layer (Kipf & Welling, ICLR 2017, Eq. 2): H' = D^-1/2 (A + I) D^-1/2 H W + b.
//   forward: x [N, in] -> [N, out].
class QGNN_API GCNConvImpl : public GnnLayer {
 public:
  GCNConvImpl(int64_t in_channels, int64_t out_channels, bool bias = true);
  torch::Tensor forward(const GraphOperators& ops, const NodeFeatures& x) override;
  // Inference (no autograd, no layer quantization): forward()'s result, computed as
  // s * (A (s * X W) + added_loops * s * X W) + b with s = gcn_scale(), so that neither
  // A + I nor the normalized graph is held, a block of target rows at a time; with `pack`
  // the blocks go to it (see OutputPacker). Equals forward() to float rounding.
  LayerOutput infer(const GraphOperators& ops, const NodeFeatures& x,
                    const OutputPacker& pack = {}) override;
  int64_t in_channels() const override { return weight.size(1); }
  std::string layer_name() const override { return "GCNConv"; }
  // Integer lowering (nn/int_model.h; the arithmetic is listed there).
  std::shared_ptr<const IntegerLayer> lower(const IntegerLowering& lowering) const override;

  torch::Tensor weight;  // [out, in]
  torch::Tensor bias;    // [out] or undefined

 private:
  // True when X W is computed before aggregating (sparse / packed x, or out <= in).
  bool transforms_first(const NodeFeatures& x) const;
  // D^-1/2 (A + I) D^-1/2 X W + b through the cached normalized graph (autograd).
  torch::Tensor propagate_normalized(const GraphOperators& ops, const NodeFeatures& x);
};
TORCH_MODULE(GCNConv);

}  // namespace qgnn
