#pragma once
// The built-in layers (each registered as a layer type, nn/layer.h). Every layer maps
// (graph operators, node features [N, F_in]) to [N, F_out] float32 and is a GnnLayer.
//
// All layers transform before they aggregate when that is cheaper (A (X W) = (A X) W),
// so a sparse input X is only ever multiplied by a weight matrix (quant/node_features.h).
//
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

#include "qgnn/nn/layer.h"
#include "qgnn/nn/layers/agnn_conv.h"
#include "qgnn/nn/layers/gat_conv.h"
#include "qgnn/nn/layers/gcn_conv.h"
#include "qgnn/nn/layers/gin_conv.h"
#include "qgnn/nn/layers/linear.h"
#include "qgnn/nn/layers/sage_conv.h"
