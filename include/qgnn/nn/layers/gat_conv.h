#pragma once
// GAT (Velickovic et al. 2018): registered as "gat", a stack of GATConv with ELU.
#include <torch/types.h>

#include <memory>
#include <string>
#include <vector>

#include "qgnn/nn/layer.h"
#include "qgnn/util/export.h"

namespace qgnn {

// GAT layer (Velickovic et al., ICLR 2018, Eqs. 1-4), multi-head, on A + I:
//   e_ij = LeakyReLU(a_dst . W h_i + a_src . W h_j), alpha = edge softmax over in-edges,
//   h'_i = || or mean over heads of sum_j alpha_ij W h_j, plus bias.
//   forward: x [N, in] -> [N, heads * out] (concat) or [N, out] (mean).
// Attention dropout (attention_dropout) applies to alpha during training.
class QGNN_API GATConvImpl : public GnnLayer {
 public:
  GATConvImpl(int64_t in_channels, int64_t out_channels, int64_t heads = 1, bool concat = true,
              double negative_slope = 0.2, double attention_dropout = 0.0, bool bias = true);
  torch::Tensor forward(const GraphOperators& ops, const NodeFeatures& x) override;
  // Inference (eval mode, no autograd): forward()'s result. Under a hook that packs
  // attention (PackedInferenceHook) the output is aggregated from the attention codes a
  // block of target rows at a time and, with `pack`, handed to it block by block (see
  // OutputPacker), so neither a float [E', H] attention nor a float output is held.
  LayerOutput infer(const GraphOperators& ops, const NodeFeatures& x,
                    const OutputPacker& pack = {}) override;
  // Attention coefficients of the last forward, [E', heads] over the edges of A + I.
  const torch::Tensor& last_attention() const { return last_attention_; }
  int64_t in_channels() const override { return weight.size(1); }
  std::string layer_name() const override { return "GATConv"; }
  // alpha: (l, attention), [E', heads] over the edges of A + I.
  void add_quant_points(const GraphOperators& ops, int64_t layer,
                        std::vector<QuantPointInfo>& points) const override;

  torch::Tensor weight;            // [heads * out, in]
  torch::Tensor att_src, att_dst;  // [heads, out]
  torch::Tensor bias;              // [heads * out] or [out]
  int64_t heads, out_channels;
  bool concat;
  double negative_slope, attention_dropout;

 private:
  LayerOutput run(const GraphOperators& ops, const NodeFeatures& x, const OutputPacker& pack);
  torch::Tensor last_attention_;
};
TORCH_MODULE(GATConv);

}  // namespace qgnn
