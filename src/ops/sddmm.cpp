// SDDMM front-ends (dot and u_add_v) with autograd; kernels in cpu/sddmm_kernel.cpp.
#include "qgnn/ops/sddmm.h"

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include "ops/cpu/kernels.h"
#include "ops/ops_internal.h"

namespace qgnn {
namespace detail {

at::Tensor sddmm_dot_raw(const CsrGraph& g, const at::Tensor& dst, const at::Tensor& src,
                         int64_t heads) {
  TORCH_INTERNAL_ASSERT(dst.is_contiguous() && src.is_contiguous());
  at::Tensor out = at::empty({g.num_edges(), heads}, dst.options().requires_grad(false));
  int64_t width = 1;
  for (int64_t d = 1; d < dst.dim(); ++d) width *= dst.size(d);
  if (g.num_edges() == 0 || heads == 0) return out;
  if (width == 0) return out.zero_();
  cpu::sddmm_dot(cpu::view_of(g), dst.data_ptr<float>(), src.data_ptr<float>(), heads,
                 width / heads, out.data_ptr<float>());
  return out;
}

}  // namespace detail

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class SddmmDotFunction : public torch::autograd::Function<SddmmDotFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& dst, const at::Tensor& src,
                            const CsrGraph& g, int64_t heads) {
    ctx->saved_data["g"] = detail::pack_graph(g);
    ctx->saved_data["heads"] = heads;
    ctx->save_for_backward(
        {src.requires_grad() ? dst : at::Tensor(), dst.requires_grad() ? src : at::Tensor()});
    return detail::sddmm_dot_raw(g, dst, src, heads);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const CsrGraph g = detail::unpack_graph(ctx->saved_data["g"]);
    const int64_t heads = ctx->saved_data["heads"].toInt();
    const at::Tensor dout = grads[0].contiguous();  // [E, H]
    at::Tensor d_dst, d_src;
    // d_dst[i, h] = sum_{e = (j -> i)} dout[e, h] src[j, h]: an SpMM with per-head weights.
    if (ctx->needs_input_grad(0)) d_dst = detail::spmm_raw(g, saved[1], dout, {}, heads);
    // d_src[j, h] = sum over out-edges of j: the same over the transpose.
    if (ctx->needs_input_grad(1)) {
      d_src = detail::spmm_raw(g.transposed(), saved[0], dout, g.transpose_perm(), heads);
    }
    return {d_dst, d_src, at::Tensor(), at::Tensor()};
  }
};

at::Tensor sddmm_add_raw(const CsrGraph& g, const at::Tensor& dst, const at::Tensor& src) {
  const int64_t heads = dst.size(1);
  at::Tensor out = at::empty({g.num_edges(), heads}, dst.options().requires_grad(false));
  if (g.num_edges() > 0 && heads > 0) {
    cpu::sddmm_add(cpu::view_of(g), dst.data_ptr<float>(), src.data_ptr<float>(), heads,
                   out.data_ptr<float>());
  }
  return out;
}

class SddmmAddFunction : public torch::autograd::Function<SddmmAddFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& dst, const at::Tensor& src,
                            const CsrGraph& g) {
    ctx->saved_data["g"] = detail::pack_graph(g);
    return sddmm_add_raw(g, dst, src);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const CsrGraph g = detail::unpack_graph(ctx->saved_data["g"]);
    const at::Tensor dout = grads[0].contiguous();
    const int64_t heads = dout.size(1);
    at::Tensor d_dst, d_src;
    if (ctx->needs_input_grad(0)) {
      d_dst = at::empty({g.num_rows(), heads}, dout.options());
      if (heads > 0) {
        cpu::row_sum(cpu::view_of(g), dout.data_ptr<float>(), nullptr, heads,
                     d_dst.data_ptr<float>());
      }
    }
    if (ctx->needs_input_grad(1)) {
      d_src = at::empty({g.num_cols(), heads}, dout.options());
      if (heads > 0) {
        const CsrGraph& t = g.transposed();
        cpu::row_sum(cpu::view_of(t), dout.data_ptr<float>(),
                     g.transpose_perm().data_ptr<int64_t>(), heads, d_src.data_ptr<float>());
      }
    }
    return {d_dst, d_src, at::Tensor()};
  }
};

void check_node_tensor(const at::Tensor& t, const char* op, const char* name, int64_t rows,
                       const char* rows_name) {
  TORCH_CHECK(t.defined(), op, ": ", name, " is undefined");
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == at::kFloat, op, ": ", name,
              " must be a CPU float32 tensor, got ", t.scalar_type(), " on ", t.device());
  TORCH_CHECK(t.dim() >= 1 && t.size(0) == rows, op, ": ", name, ".size(0) must be ", rows_name,
              " = ", rows, ", got shape ", t.sizes());
}

}  // namespace

at::Tensor sddmm_dot(const CsrGraph& g, const at::Tensor& dst, const at::Tensor& src) {
  TORCH_CHECK(g.defined(), "sddmm_dot: graph is undefined");
  check_node_tensor(dst, "sddmm_dot", "dst", g.num_rows(), "R");
  check_node_tensor(src, "sddmm_dot", "src", g.num_cols(), "C");
  TORCH_CHECK((dst.dim() == 2 || dst.dim() == 3) && dst.dim() == src.dim() &&
                  dst.sizes().slice(1) == src.sizes().slice(1),
              "sddmm_dot: dst and src must be [R, H, D] and [C, H, D] (or [R, D] and [C, D]) ",
              "with matching H and D, got ", dst.sizes(), " and ", src.sizes());
  const int64_t heads = dst.dim() == 3 ? dst.size(1) : 1;
  const at::Tensor d = dst.contiguous(), s = src.contiguous();
  if (!detail::needs_autograd(d, s)) {
    at::NoGradGuard no_grad;
    return detail::sddmm_dot_raw(g, d, s, heads);
  }
  return SddmmDotFunction::apply(d, s, g, heads);
}

at::Tensor sddmm_add(const CsrGraph& g, const at::Tensor& dst, const at::Tensor& src) {
  TORCH_CHECK(g.defined(), "sddmm_add: graph is undefined");
  check_node_tensor(dst, "sddmm_add", "dst", g.num_rows(), "R");
  check_node_tensor(src, "sddmm_add", "src", g.num_cols(), "C");
  TORCH_CHECK(dst.dim() == 2 && src.dim() == 2 && dst.size(1) == src.size(1),
              "sddmm_add: dst and src must be [R, H] and [C, H] with the same H, got ", dst.sizes(),
              " and ", src.sizes());
  const at::Tensor d = dst.contiguous(), s = src.contiguous();
  if (!detail::needs_autograd(d, s)) {
    at::NoGradGuard no_grad;
    return sddmm_add_raw(g, d, s);
  }
  return SddmmAddFunction::apply(d, s, g);
}

}  // namespace qgnn
