// Edge softmax over the in-edges of each row, per head, with autograd. Each row's block
// of scores [deg, H] is contiguous, so the row is processed in L1: max, subtract, vector
// exp (cpu::exp_inplace), sum, scale.
#include "qgnn/ops/edge_softmax.h"

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include <limits>
#include <vector>

#include "ops/cpu/kernels.h"
#include "ops/ops_internal.h"

namespace qgnn {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Row kernels, templated on the head count so the per-head loops unroll for the common
// H = 1 and H = 8 (kH = 0: any H, given at run time).
template <int kH>
void softmax_forward_rows(const int64_t* indptr, const float* scores, int64_t heads_rt, float* out,
                          int64_t rb, int64_t re, int64_t base = 0) {
  const int64_t heads = kH > 0 ? kH : heads_rt;
  std::vector<float> buf(2 * heads);
  float* __restrict mx = buf.data();
  float* __restrict inv = buf.data() + heads;
  for (int64_t i = rb; i < re; ++i) {
    const int64_t eb = indptr[i], n = indptr[i + 1] - eb;
    if (n == 0) continue;
    const float* s = scores + (eb - base) * heads;
    float* o = out + (eb - base) * heads;
    for (int64_t h = 0; h < heads; ++h) mx[h] = s[h];
    for (int64_t e = 1; e < n; ++e) {
      for (int64_t h = 0; h < heads; ++h) mx[h] = std::max(mx[h], s[e * heads + h]);
    }
    for (int64_t e = 0; e < n; ++e) {
      for (int64_t h = 0; h < heads; ++h) o[e * heads + h] = s[e * heads + h] - mx[h];
    }
    cpu::exp_inplace(o, n * heads);
    for (int64_t h = 0; h < heads; ++h) inv[h] = 0.0f;
    for (int64_t e = 0; e < n; ++e) {
      for (int64_t h = 0; h < heads; ++h) inv[h] += o[e * heads + h];
    }
    for (int64_t h = 0; h < heads; ++h) inv[h] = 1.0f / inv[h];
    for (int64_t e = 0; e < n; ++e) {
      for (int64_t h = 0; h < heads; ++h) o[e * heads + h] *= inv[h];
    }
  }
}

template <int kH>
void softmax_backward_rows(const int64_t* indptr, const float* alpha, const float* dalpha,
                           int64_t heads_rt, float* ds, int64_t rb, int64_t re) {
  const int64_t heads = kH > 0 ? kH : heads_rt;
  std::vector<float> buf(heads);
  float* __restrict dot = buf.data();
  for (int64_t i = rb; i < re; ++i) {
    const int64_t eb = indptr[i], n = indptr[i + 1] - eb;
    const float* __restrict a = alpha + eb * heads;
    const float* __restrict d = dalpha + eb * heads;
    float* __restrict o = ds + eb * heads;
    for (int64_t h = 0; h < heads; ++h) dot[h] = 0.0f;
    for (int64_t e = 0; e < n; ++e) {
      for (int64_t h = 0; h < heads; ++h) dot[h] += a[e * heads + h] * d[e * heads + h];
    }
    for (int64_t e = 0; e < n; ++e) {
      for (int64_t h = 0; h < heads; ++h) {
        o[e * heads + h] = a[e * heads + h] * (d[e * heads + h] - dot[h]);
      }
    }
  }
}

}  // namespace

namespace detail {
void edge_softmax_rows(const int64_t* indptr, int64_t base, const float* scores, int64_t heads,
                       float* out, int64_t rb, int64_t re) {
  if (heads == 1)
    softmax_forward_rows<1>(indptr, scores, heads, out, rb, re, base);
  else if (heads == 8)
    softmax_forward_rows<8>(indptr, scores, heads, out, rb, re, base);
  else
    softmax_forward_rows<0>(indptr, scores, heads, out, rb, re, base);
}
}  // namespace detail

namespace {

// scores, out: [E, H] contiguous.
void softmax_forward(const CsrGraph& g, const float* scores, int64_t heads, float* out) {
  const int64_t* indptr = g.indptr().data_ptr<int64_t>();
  cpu::parallel_rows(indptr, g.num_rows(), 6 * heads, 8 + 2 * heads, [&](int64_t rb, int64_t re) {
    detail::edge_softmax_rows(indptr, 0, scores, heads, out, rb, re);
  });
}

// ds = alpha * (dalpha - sum_row(alpha * dalpha)); all [E, H] contiguous.
void softmax_backward(const CsrGraph& g, const float* alpha, const float* dalpha, int64_t heads,
                      float* ds) {
  const int64_t* indptr = g.indptr().data_ptr<int64_t>();
  cpu::parallel_rows(indptr, g.num_rows(), 4 * heads, 4 + heads, [&](int64_t rb, int64_t re) {
    if (heads == 1)
      softmax_backward_rows<1>(indptr, alpha, dalpha, heads, ds, rb, re);
    else if (heads == 8)
      softmax_backward_rows<8>(indptr, alpha, dalpha, heads, ds, rb, re);
    else
      softmax_backward_rows<0>(indptr, alpha, dalpha, heads, ds, rb, re);
  });
}

at::Tensor softmax_raw(const CsrGraph& g, const at::Tensor& scores) {
  at::Tensor out = at::empty_like(scores, scores.options().requires_grad(false));
  const int64_t heads = scores.dim() == 2 ? scores.size(1) : 1;
  if (scores.numel() > 0)
    softmax_forward(g, scores.data_ptr<float>(), heads, out.data_ptr<float>());
  return out;
}

class EdgeSoftmaxFunction : public torch::autograd::Function<EdgeSoftmaxFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& scores, const CsrGraph& g) {
    ctx->saved_data["g"] = detail::pack_graph(g);
    at::Tensor alpha = softmax_raw(g, scores);
    ctx->save_for_backward({alpha});
    return alpha;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const CsrGraph g = detail::unpack_graph(ctx->saved_data["g"]);
    const at::Tensor alpha = ctx->get_saved_variables()[0];
    const at::Tensor dalpha = grads[0].contiguous();
    at::Tensor ds = at::empty_like(alpha);
    const int64_t heads = alpha.dim() == 2 ? alpha.size(1) : 1;
    if (alpha.numel() > 0) {
      softmax_backward(g, alpha.data_ptr<float>(), dalpha.data_ptr<float>(), heads,
                       ds.data_ptr<float>());
    }
    return {ds, at::Tensor()};
  }
};

}  // namespace

at::Tensor edge_softmax(const CsrGraph& g, const at::Tensor& scores) {
  TORCH_CHECK(g.defined(), "edge_softmax: graph is undefined");
  TORCH_CHECK(scores.defined(), "edge_softmax: scores is undefined");
  TORCH_CHECK(scores.device().is_cpu() && scores.scalar_type() == at::kFloat,
              "edge_softmax: scores must be a CPU float32 tensor, got ", scores.scalar_type(),
              " on ", scores.device());
  TORCH_CHECK((scores.dim() == 1 || scores.dim() == 2) && scores.size(0) == g.num_edges(),
              "edge_softmax: scores must be [E] or [E, H] with E = ", g.num_edges(), ", got shape ",
              scores.sizes());
  const at::Tensor s = scores.contiguous();
  if (!detail::needs_autograd(s)) {
    at::NoGradGuard no_grad;
    return softmax_raw(g, s);
  }
  return EdgeSoftmaxFunction::apply(s, g);
}

}  // namespace qgnn
