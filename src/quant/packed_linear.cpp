// Linear transform of packed rows without materializing the float matrix.
//
// Fast path: tiles of up to 256 rows, each decoded by one thread into its own buffer (in
// L2) and multiplied by W^T right away with oneDNN's sgemm, kept single-threaded inside
// at::parallel_for (SerialOmpGuard), so both cores run decode + GEMM on their own tiles.
// oneDNN is the library libtorch itself loads; it is looked up at run time (as
// util/threads.cpp does for OpenBLAS), so qgnn neither links it nor fails without it.
//
// Index-list tensors (sparse 1-bit rows) skip decoding and GEMM altogether: each 1-code
// adds one row of W^T, so the cost is proportional to the number of 1-codes.
//
// Fallback (no dnnl_sgemm in the process): blocks of ~512 KB of rows decoded in parallel
// into one buffer, then one at::addmm per block through libtorch's BLAS, whose own threads
// split it. GEMMs issued from inside at::parallel_for would be serialized by the OpenBLAS
// pthread pool, hence the block form there.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <vector>

#include "qgnn/quant/packed_tensor.h"
#include "quant/cpu/pack_kernel.h"

namespace qgnn {
namespace {

// oneDNN's C API (dnnl.h): row-major C = alpha op(A) op(B) + beta C; returns dnnl_success
// (0) or an error status.
using DnnlSgemm = int (*)(char transa, char transb, int64_t m, int64_t n, int64_t k, float alpha,
                          const float* a, int64_t lda, const float* b, int64_t ldb, float beta,
                          float* c, int64_t ldc);

std::atomic<bool> g_use_onednn{true};

DnnlSgemm dnnl_sgemm() {
  static const DnnlSgemm fn = reinterpret_cast<DnnlSgemm>(dlsym(RTLD_DEFAULT, "dnnl_sgemm"));
  return g_use_onednn.load(std::memory_order_relaxed) ? fn : nullptr;
}

// Makes OpenMP regions opened by this thread single-threaded while alive (the OpenMP
// thread-count ICV is per thread): oneDNN's sgemm otherwise opens a nested team of its own
// inside each worker of at::parallel_for, and spinning nested teams on two cores stall for
// hundreds of ms when other processes compete for the cores.
class SerialOmpGuard {
 public:
  SerialOmpGuard() {
    if (set_ != nullptr && get_ != nullptr) {
      saved_ = get_();
      set_(1);
    }
  }
  ~SerialOmpGuard() {
    if (saved_ > 0) set_(saved_);
  }
  SerialOmpGuard(const SerialOmpGuard&) = delete;
  SerialOmpGuard& operator=(const SerialOmpGuard&) = delete;

 private:
  using SetFn = void (*)(int);
  using GetFn = int (*)();
  // libgomp, loaded with libtorch (looked up like dnnl_sgemm; absent: nothing to do).
  static inline const SetFn set_ =
      reinterpret_cast<SetFn>(dlsym(RTLD_DEFAULT, "omp_set_num_threads"));
  static inline const GetFn get_ =
      reinterpret_cast<GetFn>(dlsym(RTLD_DEFAULT, "omp_get_max_threads"));
  int saved_ = 0;
};

// out[r] = bias (or 0) + x^[r] W^T for each tile of rows, one thread per tile.
bool linear_tiles(DnnlSgemm sgemm, const PackedTensor& x, const at::Tensor& weight,
                  const at::Tensor& bias, at::Tensor& out) {
  const int64_t n = x.num_rows(), f = x.num_cols(), o = weight.size(0);
  const at::Tensor w = weight.contiguous();
  const float* wp = w.data_ptr<float>();
  const float* bp = bias.defined() ? bias.data_ptr<float>() : nullptr;
  float* op = out.data_ptr<float>();
  // Tile: <= 512 KB of floats and <= 256 rows, and at least two tiles per thread when the
  // matrix is large enough to be worth splitting.
  const int64_t threads = at::get_num_threads();
  int64_t tile = std::clamp<int64_t>((int64_t{1} << 17) / f, 16, 256);
  tile = std::max<int64_t>(16, std::min(tile, (n + 2 * threads - 1) / (2 * threads)));
  const int64_t tiles = (n + tile - 1) / tile;
  std::atomic<bool> ok{true};
  at::parallel_for(0, tiles, 1, [&](int64_t tb, int64_t te) {
    const SerialOmpGuard serial;
    std::vector<float> buf(static_cast<size_t>(std::min(tile, n) * f));
    for (int64_t t = tb; t < te; ++t) {
      const int64_t r0 = t * tile, m = std::min(tile, n - r0);
      x.decode_rows(r0, r0 + m, buf.data());
      float* c = op + r0 * o;
      float beta = 0.0f;
      if (bp != nullptr) {
        for (int64_t i = 0; i < m; ++i) std::copy(bp, bp + o, c + i * o);
        beta = 1.0f;
      }
      if (sgemm('N', 'T', m, o, f, 1.0f, buf.data(), f, wp, f, beta, c, o) != 0) ok = false;
    }
  });
  return ok.load();
}

void linear_blocks(const PackedTensor& x, const at::Tensor& weight, const at::Tensor& bias,
                   at::Tensor& out) {
  const int64_t n = x.num_rows(), f = x.num_cols();
  const at::Tensor wt = weight.t();  // [F, out]; BLAS reads it transposed
  const int64_t block = std::min(n, std::max<int64_t>(64, (int64_t{1} << 17) / f));
  at::Tensor buf = at::empty({block, f}, at::kFloat);
  for (int64_t r0 = 0; r0 < n; r0 += block) {
    const int64_t m = std::min(block, n - r0);
    x.decode_rows(r0, r0 + m, buf.data_ptr<float>());
    const at::Tensor a = buf.narrow(0, 0, m);
    at::Tensor y = out.narrow(0, r0, m);
    if (bias.defined())
      at::addmm_out(y, bias, a, wt);
    else
      at::mm_out(y, a, wt);
  }
}

// Index-list x: out[r] = scale_r sum_{j in idx(r)} W^T[j] + lo_r colsum(W) (+ b), gathering
// rows of W^T ([F, out], contiguous, so each 1-code adds one contiguous row).
template <class T>
void linear_index_rows(const PackedView& v, const T* idx, const float* wt, const float* colsum,
                       const float* bias, int64_t o, float* out, int64_t rb, int64_t re) {
  for (int64_t r = rb; r < re; ++r) {
    float* __restrict y = out + r * o;
    std::fill(y, y + o, 0.0f);
    const T* __restrict c = idx + v.idx_offset[r];
    const int64_t cnt = v.idx_offset[r + 1] - v.idx_offset[r];
    for (int64_t e = 0; e < cnt; ++e) {
      const float* __restrict wr = wt + static_cast<int64_t>(c[e]) * o;
      for (int64_t k = 0; k < o; ++k) y[k] += wr[k];
    }
    const float scale = v.scale(r), lo = v.lo(r);
    if (bias != nullptr) {
      for (int64_t k = 0; k < o; ++k) y[k] = scale * y[k] + lo * colsum[k] + bias[k];
    } else {
      for (int64_t k = 0; k < o; ++k) y[k] = scale * y[k] + lo * colsum[k];
    }
  }
}

void linear_index_list(const PackedTensor& x, const at::Tensor& weight, const at::Tensor& bias,
                       at::Tensor& out) {
  const PackedView v = PackedTensorAccess::view(x);
  const int64_t n = x.num_rows(), o = weight.size(0);
  const at::Tensor wt = weight.t().contiguous();         // [F, out]
  const at::Tensor colsum = weight.sum(1).contiguous();  // [out] = sum_j W[:, j]
  const float* wtp = wt.data_ptr<float>();
  const float* csp = colsum.data_ptr<float>();
  const float* bp = bias.defined() ? bias.data_ptr<float>() : nullptr;
  float* op = out.data_ptr<float>();
  // ~64K floats of gathered W^T rows per task.
  const int64_t per_row = (x.num_index_entries() / std::max<int64_t>(1, n) + 2) * o;
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(1, per_row));
  at::parallel_for(0, n, grain, [&](int64_t rb, int64_t re) {
    if (v.idx16 != nullptr)
      linear_index_rows(v, v.idx16, wtp, csp, bp, o, op, rb, re);
    else
      linear_index_rows(v, v.idx32, wtp, csp, bp, o, op, rb, re);
  });
}

}  // namespace

namespace quant_cpu {
void set_packed_linear_onednn(bool enabled) { g_use_onednn.store(enabled); }
}  // namespace quant_cpu

at::Tensor packed_linear(const PackedTensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  TORCH_CHECK(x.defined(), "packed_linear: x is undefined");
  TORCH_CHECK(weight.defined() && weight.dim() == 2 && weight.scalar_type() == at::kFloat &&
                  weight.device().is_cpu(),
              "packed_linear: weight must be an [out, F] float32 CPU tensor");
  TORCH_CHECK(weight.size(1) == x.num_cols(), "packed_linear: weight is ", weight.sizes(),
              " but x has F = ", x.num_cols(), " columns");
  const int64_t n = x.num_rows(), f = x.num_cols(), o = weight.size(0);
  if (bias.defined()) {
    TORCH_CHECK(bias.dim() == 1 && bias.size(0) == o && bias.scalar_type() == at::kFloat &&
                    bias.device().is_cpu(),
                "packed_linear: bias must be an [out = ", o, "] float32 CPU tensor, got ",
                bias.sizes(), " ", bias.scalar_type());
  }
  at::NoGradGuard no_grad;
  at::Tensor out = at::empty({n, o}, at::kFloat);
  if (n == 0 || o == 0) return out;
  const at::Tensor w = weight.detach();
  const at::Tensor b = bias.defined() ? bias.detach().contiguous() : at::Tensor();
  if (f == 0) {
    if (b.defined())
      out.copy_(b.expand({n, o}));
    else
      out.zero_();
    return out;
  }
  if (x.layout() == PackedLayout::kIndexList) {
    // The index-list path reads codes, not decoded rows: column scales fold into W.
    const at::Tensor& c = x.column_scale();
    linear_index_list(x, c.defined() ? (w * c.unsqueeze(0)).contiguous() : w, b, out);
    return out;
  }
  if (DnnlSgemm sgemm = dnnl_sgemm(); sgemm != nullptr && linear_tiles(sgemm, x, w, b, out)) {
    return out;
  }
  linear_blocks(x, w, b, out);
  return out;
}

}  // namespace qgnn
