// SpMM row kernel for one ISA; included by spmm_kernel.cpp once per ISA after
// simd_vec.h (no include guard; see simd_vec.h for QGNN_SIMD_NS / QGNN_SIMD_AVX512).
//
// Each output row segment of up to 8 vectors is accumulated in registers over the row's
// edges, then stored once: the output is written exactly once and never read. Short
// blocks (<= 4 vectors, i.e. small F) keep two accumulator sets fed by alternating edges
// so that the FMA latency chain is not the bottleneck.

namespace qgnn::cpu::QGNN_SIMD_NS {

struct SpmmArgs {
  const int64_t* indptr;
  const int64_t* indices;
  const float* x;
  int64_t ldx;
  const float* w;        // nullptr: all ones
  const int64_t* wperm;  // nullptr: w indexed by edge id
  int64_t heads;
  int64_t dim;
  float* out;
  int64_t ldo;
};

// Weight modes: 0 = unweighted, 1 = w[e * heads + h], 2 = w[wperm[e] * heads + h].
template <int Mode>
static inline float edge_weight(const SpmmArgs& a, int64_t e, int64_t h) {
  if constexpr (Mode == 1) return a.w[e * a.heads + h];
  if constexpr (Mode == 2) return a.w[a.wperm[e] * a.heads + h];
  return 1.0f;
}

template <int K, bool Masked, int Mode>
static inline void spmm_accumulate(const float* __restrict xr, float wgt, Vec::V* acc,
                                   Vec::M tail) {
  if constexpr (Mode == 0) {
    (void)wgt;
    for (int k = 0; k < K; ++k) acc[k] = Vec::add(acc[k], load_k<K, Masked>(xr, k, tail));
  } else {
    const Vec::V wv = Vec::set1(wgt);
    for (int k = 0; k < K; ++k) acc[k] = Vec::fmadd(wv, load_k<K, Masked>(xr, k, tail), acc[k]);
  }
}

// out[off, off + K*W) of one row = sum over edges [eb, ee) of w(e, h) * x[j, off, ...).
template <int K, bool Masked, int Mode>
static inline void spmm_block(const SpmmArgs& a, int64_t eb, int64_t ee, int64_t h, int64_t off,
                              Vec::M tail, float* __restrict o) {
  const int64_t* __restrict idx = a.indices;
  const float* __restrict x = a.x + off;
  const int64_t ldx = a.ldx;
  Vec::V acc[K];
  for (int k = 0; k < K; ++k) acc[k] = Vec::zero();
  int64_t e = eb;
  if constexpr (K <= 4) {
    Vec::V acc2[K];
    for (int k = 0; k < K; ++k) acc2[k] = Vec::zero();
    for (; e + 2 <= ee; e += 2) {
      const float* x0 = x + idx[e] * ldx;
      const float* x1 = x + idx[e + 1] * ldx;
      spmm_accumulate<K, Masked, Mode>(x0, edge_weight<Mode>(a, e, h), acc, tail);
      spmm_accumulate<K, Masked, Mode>(x1, edge_weight<Mode>(a, e + 1, h), acc2, tail);
    }
    for (int k = 0; k < K; ++k) acc[k] = Vec::add(acc[k], acc2[k]);
  }
  for (; e < ee; ++e) {
    spmm_accumulate<K, Masked, Mode>(x + idx[e] * ldx, edge_weight<Mode>(a, e, h), acc, tail);
  }
  for (int k = 0; k < K; ++k) store_k<K, Masked>(o, k, acc[k], tail);
}

// Multi-head rows that fit in K <= 8 vectors with H <= W heads: loop over edges once and
// give each lane the weight of its head with one permute of the edge's weight row.
//   hidx[k][l] = head of row position k * W + l.
template <int K, bool Masked, int Mode>
static inline void spmm_block_heads(const SpmmArgs& a, int64_t eb, int64_t ee, const Vec::I* hidx,
                                    Vec::M tail, Vec::M wmask, float* __restrict o) {
  const int64_t* __restrict idx = a.indices;
  const float* __restrict x = a.x;
  const int64_t ldx = a.ldx, heads = a.heads;
  Vec::V acc[K];
  for (int k = 0; k < K; ++k) acc[k] = Vec::zero();
  for (int64_t e = eb; e < ee; ++e) {
    const int64_t we = Mode == 2 ? a.wperm[e] : e;
    const Vec::V wrow = Vec::load(a.w + we * heads, wmask);
    const float* xr = x + idx[e] * ldx;
    for (int k = 0; k < K; ++k) {
      acc[k] = Vec::fmadd(Vec::permute(wrow, hidx[k]), load_k<K, Masked>(xr, k, tail), acc[k]);
    }
  }
  for (int k = 0; k < K; ++k) store_k<K, Masked>(o, k, acc[k], tail);
}

template <int Mode>
static void spmm_rows_heads(const SpmmArgs& a, int64_t rb, int64_t re) {
  constexpr int W = Vec::W;
  const int64_t width = a.heads * a.dim;
  const int nvec = static_cast<int>((width + W - 1) / W);
  const int rem = static_cast<int>(width % W);
  const Vec::M tail = Vec::mask(rem == 0 ? W : rem);
  const Vec::M wmask = Vec::mask(static_cast<int>(a.heads));
  alignas(64) int32_t lanes[8 * W];
  Vec::I hidx[8];
  for (int k = 0; k < nvec; ++k) {
    for (int l = 0; l < W; ++l) {
      const int64_t p = std::min<int64_t>(k * W + l, width - 1);
      lanes[k * W + l] = static_cast<int32_t>(p / a.dim);
    }
    hidx[k] = Vec::load_index(lanes + k * W);
  }
  for (int64_t i = rb; i < re; ++i) {
    const int64_t eb = a.indptr[i], ee = a.indptr[i + 1];
    float* orow = a.out + i * a.ldo;
#define QGNN_SPMM_HEADS_CASE(K)                                             \
  case K:                                                                   \
    if (rem != 0)                                                           \
      spmm_block_heads<K, true, Mode>(a, eb, ee, hidx, tail, wmask, orow);  \
    else                                                                    \
      spmm_block_heads<K, false, Mode>(a, eb, ee, hidx, tail, wmask, orow); \
    break;
    switch (nvec) {
      QGNN_SPMM_HEADS_CASE(1)
      QGNN_SPMM_HEADS_CASE(2)
      QGNN_SPMM_HEADS_CASE(3)
      QGNN_SPMM_HEADS_CASE(4)
      QGNN_SPMM_HEADS_CASE(5)
      QGNN_SPMM_HEADS_CASE(6)
      QGNN_SPMM_HEADS_CASE(7)
      QGNN_SPMM_HEADS_CASE(8)
      default:
        break;
    }
#undef QGNN_SPMM_HEADS_CASE
  }
}

template <int Mode>
static inline void spmm_tail_block(int nv, bool masked, const SpmmArgs& a, int64_t eb, int64_t ee,
                                   int64_t h, int64_t off, Vec::M tail, float* o) {
#define QGNN_SPMM_CASE(K)                                     \
  case K:                                                     \
    if (masked)                                               \
      spmm_block<K, true, Mode>(a, eb, ee, h, off, tail, o);  \
    else                                                      \
      spmm_block<K, false, Mode>(a, eb, ee, h, off, tail, o); \
    break;
  switch (nv) {
    QGNN_SPMM_CASE(1)
    QGNN_SPMM_CASE(2)
    QGNN_SPMM_CASE(3)
    QGNN_SPMM_CASE(4)
    QGNN_SPMM_CASE(5)
    QGNN_SPMM_CASE(6)
    QGNN_SPMM_CASE(7)
    QGNN_SPMM_CASE(8)
    default:
      break;
  }
#undef QGNN_SPMM_CASE
}

template <int Mode>
static void spmm_rows_mode(const SpmmArgs& a, int64_t rb, int64_t re) {
  constexpr int W = Vec::W;
  const int64_t dim = a.dim;
  const int64_t nvec = (dim + W - 1) / W;
  const int rem = static_cast<int>(dim % W);
  const Vec::M tail = Vec::mask(rem == 0 ? W : rem);
  for (int64_t i = rb; i < re; ++i) {
    const int64_t eb = a.indptr[i], ee = a.indptr[i + 1];
    float* orow = a.out + i * a.ldo;
    for (int64_t h = 0; h < a.heads; ++h) {
      const int64_t base = h * dim;
      int64_t v = 0;
      for (; nvec - v > 8; v += 8) {
        spmm_block<8, false, Mode>(a, eb, ee, h, base + v * W, tail, orow + base + v * W);
      }
      spmm_tail_block<Mode>(static_cast<int>(nvec - v), rem != 0, a, eb, ee, h, base + v * W, tail,
                            orow + base + v * W);
    }
  }
}

static void spmm_rows(const SpmmArgs& a, int64_t rb, int64_t re) {
  const bool fused_heads =
      a.w != nullptr && a.heads > 1 && a.heads <= Vec::W && a.heads * a.dim <= 8 * Vec::W;
  if (fused_heads) {
    if (a.wperm == nullptr)
      spmm_rows_heads<1>(a, rb, re);
    else
      spmm_rows_heads<2>(a, rb, re);
  } else if (a.w == nullptr)
    spmm_rows_mode<0>(a, rb, re);
  else if (a.wperm == nullptr)
    spmm_rows_mode<1>(a, rb, re);
  else
    spmm_rows_mode<2>(a, rb, re);
}

}  // namespace qgnn::cpu::QGNN_SIMD_NS
