// SpMM front-end: argument checks, weight resolution (graph weights, explicit weights,
// mean) and the autograd function.
#include "qgnn/ops/spmm.h"

#include <ATen/ATen.h>
#include <torch/autograd.h>
#include <torch/custom_class.h>

#include "ops/cpu/kernels.h"
#include "ops/ops_internal.h"

namespace qgnn {
namespace detail {
namespace {

struct GraphHolder : torch::CustomClassHolder {
  explicit GraphHolder(CsrGraph g) : graph(std::move(g)) {}
  CsrGraph graph;
};

// IValue can hold a C++ object only as a registered custom class.
const auto kGraphHolderClass = torch::class_<GraphHolder>("qgnn", "CsrGraphHolder");

}  // namespace

at::IValue pack_graph(const CsrGraph& g) { return at::IValue(c10::make_intrusive<GraphHolder>(g)); }

CsrGraph unpack_graph(const at::IValue& v) { return v.toCustomClass<GraphHolder>()->graph; }

at::Tensor spmm_raw(const CsrGraph& g, const at::Tensor& x, const at::Tensor& w,
                    const at::Tensor& wperm, int64_t heads) {
  TORCH_INTERNAL_ASSERT(x.is_contiguous() && x.size(0) == g.num_cols());
  int64_t row_width = 1;
  for (int64_t d = 1; d < x.dim(); ++d) row_width *= x.size(d);
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
  shape[0] = g.num_rows();
  at::Tensor out = at::empty(shape, x.options().requires_grad(false));
  int64_t h = heads;
  if (w.defined()) {
    TORCH_INTERNAL_ASSERT(w.is_contiguous() && w.scalar_type() == at::kFloat);
    if (w.dim() == 1) h = 1;
  }
  if (g.num_rows() == 0 || row_width == 0) return out;
  cpu::spmm_sum(cpu::view_of(g), x.data_ptr<float>(), row_width,
                w.defined() ? w.data_ptr<float>() : nullptr,
                wperm.defined() ? wperm.data_ptr<int64_t>() : nullptr, h, row_width / h,
                out.data_ptr<float>(), row_width);
  return out;
}

}  // namespace detail

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Inputs: x [C, ...]; w explicit edge weights or undefined (then the graph's own weights,
// whose transpose is cached, are used and get no gradient).
class SpmmFunction : public torch::autograd::Function<SpmmFunction> {
 public:
  // w is optional because libtorch 1.13's Function::apply rejects undefined tensors.
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x,
                            const c10::optional<at::Tensor>& w_opt, const CsrGraph& g,
                            int64_t heads) {
    const at::Tensor w = w_opt.has_value() ? *w_opt : at::Tensor();
    ctx->saved_data["g"] = detail::pack_graph(g);
    ctx->saved_data["heads"] = heads;
    ctx->saved_data["explicit_w"] = w.defined();
    ctx->saved_data["w_per_head"] = w.defined() && w.dim() == 2;
    const bool w_grad = w.defined() && w.requires_grad();
    ctx->save_for_backward({w_grad ? x : at::Tensor(), x.requires_grad() ? w : at::Tensor()});
    return detail::spmm_raw(g, x, w.defined() ? w : g.weights(), {}, heads);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const CsrGraph g = detail::unpack_graph(ctx->saved_data["g"]);
    const int64_t heads = ctx->saved_data["heads"].toInt();
    const bool explicit_w = ctx->saved_data["explicit_w"].toBool();
    const at::Tensor dy = grads[0].contiguous();
    at::Tensor dx, dw;
    if (ctx->needs_input_grad(0)) {
      // dX = A^T dY, gathered over the cached transpose (deterministic, no atomics).
      const CsrGraph& t = g.transposed();
      if (explicit_w)
        dx = detail::spmm_raw(t, dy, saved[1], g.transpose_perm(), heads);
      else
        dx = detail::spmm_raw(t, dy, t.weights(), {}, heads);
    }
    // Edge 1 of the node exists only when w was given.
    if (explicit_w && ctx->needs_input_grad(1)) {
      // dW[e, h] = <dY[i, h, :], X[j, h, :]>; an [E] weight shared by all heads gets the
      // sum over heads, i.e. one dot over the whole row.
      const at::Tensor& x = saved[0];
      const bool per_head = ctx->saved_data["w_per_head"].toBool();
      dw = detail::sddmm_dot_raw(g, dy, x, per_head ? heads : 1);
      if (!per_head) dw = dw.view({g.num_edges()});
    }
    return {dx, dw, at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor spmm(const CsrGraph& g, const at::Tensor& x, Reduce reduce,
                const at::Tensor& edge_weight) {
  TORCH_CHECK(g.defined(), "spmm: graph is undefined");
  TORCH_CHECK(x.defined(), "spmm: x is undefined");
  TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == at::kFloat, "spmm: x must be a CPU ",
              "float32 tensor, got ", x.scalar_type(), " on ", x.device());
  TORCH_CHECK(x.dim() == 2 || x.dim() == 3, "spmm: x must be [C, F] or [C, H, D], got shape ",
              x.sizes());
  TORCH_CHECK(x.size(0) == g.num_cols(), "spmm: x.size(0) must equal the graph's number of ",
              "columns (", g.num_cols(), "), got x of shape ", x.sizes());
  int64_t heads = 1;
  at::Tensor w = edge_weight;
  if (w.defined()) {
    TORCH_CHECK(w.device().is_cpu() && w.scalar_type() == at::kFloat,
                "spmm: edge_weight must be a CPU float32 tensor, got ", w.scalar_type());
    TORCH_CHECK((w.dim() == 1 || w.dim() == 2) && w.size(0) == g.num_edges(),
                "spmm: edge_weight must be [E] or [E, H] with E = ", g.num_edges(), ", got shape ",
                w.sizes());
    if (w.dim() == 2) {
      TORCH_CHECK(x.dim() == 3 && w.size(1) == x.size(1), "spmm: edge_weight of shape ", w.sizes(),
                  " needs x of shape [C, ", w.size(1), ", D], got ", x.sizes());
      heads = w.size(1);
    }
  }
  if (reduce == Reduce::kMean) {
    if (!w.defined() && !(g.has_weights() && detail::needs_autograd(g.weights()))) {
      return spmm(g.mean_normalized(), x, Reduce::kSum, {});
    }
    if (!w.defined()) w = g.weights();
    // Explicit (or trainable) weights: divide by the in-degree with ATen ops so autograd
    // carries the gradient through the division.
    at::Tensor inv;
    {
      at::NoGradGuard no_grad;
      inv = g.in_degree().clamp_min(1).to(at::kFloat).reciprocal().index_select(0, g.row_ids());
    }
    w = w.dim() == 2 ? w * inv.unsqueeze(1) : w * inv;
  } else if (!w.defined() && g.has_weights() && detail::needs_autograd(g.weights())) {
    w = g.weights();  // trainable graph weights get a gradient
  }

  const at::Tensor xc = x.contiguous();
  const at::Tensor wc = w.defined() ? w.contiguous() : w;
  if (!detail::needs_autograd(xc, wc)) {
    at::NoGradGuard no_grad;
    return detail::spmm_raw(g, xc, wc.defined() ? wc : g.weights(), {}, heads);
  }
  return SpmmFunction::apply(xc, wc.defined() ? c10::optional<at::Tensor>(wc) : c10::nullopt, g,
                             heads);
}

}  // namespace qgnn
