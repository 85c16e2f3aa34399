#pragma once
// Graph convolution layers. Every layer maps (graph operators, node features [N, F_in])
// to [N, F_out] float32 and is a torch::nn::Module, so parameters, train()/eval(),
// optimizers and serialization work as in libtorch.
//
// All layers transform before they aggregate when that is cheaper (A (X W) = (A X) W),
// so a sparse input X is only ever multiplied by a weight matrix (quant/node_features.h).
#include <torch/nn/module.h>
#include <torch/types.h>

#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "qgnn/graph/csr_graph.h"
#include "qgnn/ops/graph_operators.h"
#include "qgnn/quant/node_features.h"
#include "qgnn/quant/quant_hook.h"
#include "qgnn/util/export.h"

namespace qgnn {

// Every layer hands its quantization points to a QuantSite set by the model. With a
// hook that quantizes layers (QAT, quant/qat.h) a layer computes in the order an integer
// kernel would, with these points (Degree-Quant, Tailor et al. ICLR 2021, Sec. 3):
//   GCN   lin = Q(s * (X W^T)), agg = Q(s * sum_{j in N(i) + i} lin_j), out = agg + b,
//         s = (in-degree + 1)^-1/2 per row (GraphOperators::gcn_scale)
//   GAT   lin = Q(X W^T), alpha = Q_att(softmax(...)), agg = Q(sum_j alpha_ij lin_j), + b
//   SAGE  lin = Q(X [W_l; W_r]^T), agg = Q(mean_j lin_l,j + lin_r,i), + b
//   GIN   lin = Q(X W1^T), agg = Q((1 + eps) lin_i + sum_j lin_j),
//         hid = Q(relu(agg + b1)), out = hid W2^T + b2
// with W quantized symmetrically per output channel. Without such a hook, the float path.

// Inference with packed storage (SGQuant's packed embeddings): a layer hands its output
// [N, cols] to the packer a block of rows at a time, so that the float output never
// exists whole: produce(k, out) writes rows [row_bounds[k], row_bounds[k + 1]) row-major
// into out (thread-safe; blocks may be produced in parallel and more than once). The
// packer returns the packed output, or nullptr without calling produce when the consumer
// keeps floats (32 bits, column scales); the layer then returns its output dense.
using OutputPacker = std::function<std::shared_ptr<const PackedTensor>(
    int64_t cols, const std::vector<int64_t>& row_bounds,
    const std::function<void(int64_t block, float* out)>& produce)>;

// A layer's inference output: dense [N, cols] float32, or packed (exactly one is set).
struct LayerOutput {
  torch::Tensor dense;
  std::shared_ptr<const PackedTensor> packed;
};

// GCN layer (Kipf & Welling, ICLR 2017, Eq. 2): H' = D^-1/2 (A + I) D^-1/2 H W + b.
//   forward: x [N, in] -> [N, out].
class QGNN_API GCNConvImpl : public torch::nn::Module {
 public:
  GCNConvImpl(int64_t in_channels, int64_t out_channels, bool bias = true);
  torch::Tensor forward(const GraphOperators& ops, const NodeFeatures& x);
  // Inference (no autograd, no layer quantization): forward()'s result, computed as
  // s * (A (s * X W) + added_loops * s * X W) + b with s = gcn_scale(), so that neither
  // A + I nor the normalized graph is held, a block of target rows at a time; with `pack`
  // the blocks go to it (see OutputPacker). Equals forward() to float rounding.
  LayerOutput infer(const GraphOperators& ops, const NodeFeatures& x,
                    const OutputPacker& pack = {});
  void set_quant_site(QuantSite s) { site_ = s; }

  torch::Tensor weight;  // [out, in]
  torch::Tensor bias;    // [out] or undefined

 private:
  // True when X W is computed before aggregating (sparse / packed x, or out <= in).
  bool transforms_first(const NodeFeatures& x) const;
  // D^-1/2 (A + I) D^-1/2 X W + b through the cached normalized graph (autograd).
  torch::Tensor propagate_normalized(const GraphOperators& ops, const NodeFeatures& x);
  QuantSite site_;
};
TORCH_MODULE(GCNConv);

// GAT layer (Velickovic et al., ICLR 2018, Eqs. 1-4), multi-head, on A + I:
//   e_ij = LeakyReLU(a_dst . W h_i + a_src . W h_j), alpha = edge softmax over in-edges,
//   h'_i = || or mean over heads of sum_j alpha_ij W h_j, plus bias.
//   forward: x [N, in] -> [N, heads * out] (concat) or [N, out] (mean).
// Attention dropout (attention_dropout) applies to alpha during training.
class QGNN_API GATConvImpl : public torch::nn::Module {
 public:
  GATConvImpl(int64_t in_channels, int64_t out_channels, int64_t heads = 1, bool concat = true,
              double negative_slope = 0.2, double attention_dropout = 0.0, bool bias = true);
  torch::Tensor forward(const GraphOperators& ops, const NodeFeatures& x);
  // Inference (eval mode, no autograd): forward()'s result. Under a hook that packs
  // attention (PackedInferenceHook) the output is aggregated from the attention codes a
  // block of target rows at a time and, with `pack`, handed to it block by block (see
  // OutputPacker), so neither a float [E', H] attention nor a float output is held.
  LayerOutput infer(const GraphOperators& ops, const NodeFeatures& x,
                    const OutputPacker& pack = {});
  // Attention coefficients of the last forward, [E', heads] over the edges of A + I.
  const torch::Tensor& last_attention() const { return last_attention_; }
  // Routes alpha (and, for QAT, the other points) through the model's hook.
  void set_quant_site(QuantSite s) { site_ = s; }

  torch::Tensor weight;            // [heads * out, in]
  torch::Tensor att_src, att_dst;  // [heads, out]
  torch::Tensor bias;              // [heads * out] or [out]
  int64_t heads, out_channels;
  bool concat;
  double negative_slope, attention_dropout;

 private:
  LayerOutput run(const GraphOperators& ops, const NodeFeatures& x, const OutputPacker& pack);
  torch::Tensor last_attention_;
  QuantSite site_;
};
TORCH_MODULE(GATConv);

// AGNN propagation layer (Thekumparampil et al. 2018, Eqs. 5-6), on A + I:
//   alpha_ij = softmax_j(beta * cos(h_i, h_j)), h'_i = sum_j alpha_ij h_j.
//   forward: x [N, D] dense -> [N, D]. beta is learnable unless requires_grad == false
//   (then fixed at 1, as the paper's first propagation layer).
class QGNN_API AGNNConvImpl : public torch::nn::Module {
 public:
  explicit AGNNConvImpl(bool requires_grad = true);
  torch::Tensor forward(const GraphOperators& ops, const torch::Tensor& x);
  // Packed inference (eval mode, no autograd): with a packed x and a hook that packs this
  // layer's attention, the cosines, alpha and the aggregation read x's codes a block of
  // target rows at a time over A + I read from A (packed_sddmm_dot_rows,
  // packed_attention_spmm_rows): no float [N, D] input or [E', 1] attention is held, and
  // the output goes to `pack` block by block when it takes it. Otherwise forward(ops,
  // x.to_dense()). Equals forward() on x.to_dense() to float rounding.
  LayerOutput infer(const GraphOperators& ops, const NodeFeatures& x,
                    const OutputPacker& pack = {});
  const torch::Tensor& last_attention() const { return last_attention_; }
  void set_quant_site(QuantSite s) { site_ = s; }

  torch::Tensor beta;  // [1]

 private:
  torch::Tensor last_attention_;
  QuantSite site_;
};
TORCH_MODULE(AGNNConv);

// GraphSAGE layer with mean aggregator (Hamilton et al., NeurIPS 2017, Alg. 1 line 4-5,
// PyG's form): h'_i = W_l mean_{j in N(i)} h_j + b + W_r h_i.
//   forward: x [N, in] -> [N, out].
class QGNN_API SAGEConvImpl : public torch::nn::Module {
 public:
  SAGEConvImpl(int64_t in_channels, int64_t out_channels, bool bias = true);
  torch::Tensor forward(const GraphOperators& ops, const NodeFeatures& x);
  void set_quant_site(QuantSite s) { site_ = s; }

  torch::Tensor weight_neighbors;  // W_l [out, in]
  torch::Tensor weight_root;       // W_r [out, in]
  torch::Tensor bias;              // [out] or undefined

 private:
  QuantSite site_;
};
TORCH_MODULE(SAGEConv);

// GIN layer (Xu et al., ICLR 2019, Eq. 4.1) with learnable eps and a 2-layer MLP:
//   h'_i = MLP((1 + eps) h_i + sum_{j in N(i)} h_j), MLP = Linear, ReLU, Linear.
//   forward: x [N, in] -> [N, out].
class QGNN_API GINConvImpl : public torch::nn::Module {
 public:
  GINConvImpl(int64_t in_channels, int64_t hidden_channels, int64_t out_channels,
              bool train_eps = true);
  torch::Tensor forward(const GraphOperators& ops, const NodeFeatures& x);
  void set_quant_site(QuantSite s) { site_ = s; }

  torch::Tensor eps;             // [1], initial 0
  torch::Tensor weight1, bias1;  // [hidden, in], [hidden]
  torch::Tensor weight2, bias2;  // [out, hidden], [out]

 private:
  QuantSite site_;
};
TORCH_MODULE(GINConv);

}  // namespace qgnn
