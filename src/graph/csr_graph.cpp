#include "qgnn/graph/csr_graph.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <cmath>
#include <mutex>
#include <vector>

#include "graph/self_loops_internal.h"

namespace qgnn {

// Caches are filled lazily under std::call_once, so concurrent readers are safe and
// copies of a graph (which share the shared_ptr) compute each item once. Cached
// weight-dependent results are computed without autograd history and assume the weights
// are not modified in place afterwards.
struct CsrGraph::StructureCache {
  std::once_flag row_ids_once;
  at::Tensor row_ids;
  std::once_flag transpose_once;
  CsrGraph transposed_structure;  // A^T without weights
  at::Tensor transpose_perm;
};

struct CsrGraph::DerivedCache {
  std::once_flag transposed_once;
  CsrGraph transposed;
  std::once_flag gcn_once;
  CsrGraph gcn;
  std::once_flag mean_once;
  CsrGraph mean;
};

namespace {

const char* kWhere = "CsrGraph: ";

at::Tensor as_cpu_contiguous(const at::Tensor& t) {
  at::Tensor r = t.device().is_cpu() ? t : t.to(at::kCPU);
  return r.contiguous();
}

at::Tensor as_index_array(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.defined(), kWhere, name, " is undefined");
  TORCH_CHECK(t.dim() == 1, kWhere, name, " must be 1-D, got shape ", t.sizes());
  TORCH_CHECK(t.scalar_type() == at::kLong || t.scalar_type() == at::kInt, kWhere, name,
              " must be int64 (or int32), got ", t.scalar_type());
  at::Tensor r = as_cpu_contiguous(t);
  return r.scalar_type() == at::kLong ? r : r.to(at::kLong);
}

// Checks a weight array against E edges; returns it as a contiguous CPU tensor.
at::Tensor checked_weights(const at::Tensor& w, int64_t num_edges, const char* where) {
  TORCH_CHECK(w.dim() == 1 && w.size(0) == num_edges, where, "weights must have shape [", num_edges,
              "] (one per edge), got ", w.sizes());
  TORCH_CHECK(w.scalar_type() == at::kFloat, where, "weights must be float32, got ",
              w.scalar_type());
  return as_cpu_contiguous(w);
}

}  // namespace

CsrGraph::CsrGraph(at::Tensor indptr, at::Tensor indices, at::Tensor weights, int64_t num_cols) {
  indptr = as_index_array(indptr, "indptr");
  indices = as_index_array(indices, "indices");
  TORCH_CHECK(indptr.size(0) >= 1, kWhere, "indptr must have num_rows + 1 >= 1 entries, got 0");
  TORCH_CHECK(num_cols >= -1, kWhere, "num_cols must be >= 0 (or -1 for square), got ", num_cols);
  const int64_t rows = indptr.size(0) - 1;
  const int64_t cols = num_cols < 0 ? rows : num_cols;
  const int64_t num_edges = indices.size(0);
  const int64_t* p = indptr.data_ptr<int64_t>();
  TORCH_CHECK(p[0] == 0, kWhere, "indptr[0] must be 0, got ", p[0]);
  for (int64_t i = 0; i < rows; ++i) {
    TORCH_CHECK(p[i + 1] >= p[i], kWhere, "indptr must be non-decreasing, got indptr[", i + 1,
                "] = ", p[i + 1], " < indptr[", i, "] = ", p[i]);
  }
  TORCH_CHECK(p[rows] == num_edges, kWhere, "indptr[-1] must equal the number of indices (",
              num_edges, "), got indptr[", rows, "] = ", p[rows]);
  const int64_t* idx = indices.data_ptr<int64_t>();
  for (int64_t e = 0; e < num_edges; ++e) {
    TORCH_CHECK(idx[e] >= 0 && idx[e] < cols, kWhere, "indices[", e, "] = ", idx[e],
                " is out of range [0, ", cols, ")");
  }
  if (weights.defined()) weights = checked_weights(weights, num_edges, kWhere);
  indptr_ = std::move(indptr);
  indices_ = std::move(indices);
  weights_ = std::move(weights);
  num_rows_ = rows;
  num_cols_ = cols;
  num_edges_ = num_edges;
  structure_ = std::make_shared<StructureCache>();
  derived_ = std::make_shared<DerivedCache>();
}

CsrGraph CsrGraph::trusted(at::Tensor indptr, at::Tensor indices, at::Tensor weights,
                           int64_t num_cols) {
  CsrGraph g;
  g.num_rows_ = indptr.size(0) - 1;
  g.num_cols_ = num_cols;
  g.num_edges_ = indices.size(0);
  g.indptr_ = std::move(indptr);
  g.indices_ = std::move(indices);
  g.weights_ = std::move(weights);
  g.structure_ = std::make_shared<StructureCache>();
  g.derived_ = std::make_shared<DerivedCache>();
  return g;
}

CsrGraph CsrGraph::from_edge_index(const at::Tensor& edge_index, int64_t num_nodes,
                                   const at::Tensor& weights) {
  const char* where = "CsrGraph::from_edge_index: ";
  TORCH_CHECK(edge_index.defined() && edge_index.dim() == 2 && edge_index.size(0) == 2, where,
              "edge_index must have shape [2, E], got ",
              edge_index.defined() ? edge_index.sizes() : at::IntArrayRef{});
  TORCH_CHECK(edge_index.scalar_type() == at::kLong || edge_index.scalar_type() == at::kInt, where,
              "edge_index must be int64 (or int32), got ", edge_index.scalar_type());
  TORCH_CHECK(num_nodes >= 0, where, "num_nodes must be >= 0, got ", num_nodes);
  at::Tensor ei = as_cpu_contiguous(edge_index).to(at::kLong).contiguous();
  const int64_t num_edges = ei.size(1);
  const int64_t* src = ei.data_ptr<int64_t>();
  const int64_t* dst = src + num_edges;
  for (int64_t e = 0; e < num_edges; ++e) {
    TORCH_CHECK(src[e] >= 0 && src[e] < num_nodes, where, "edge_index[0, ", e, "] = ", src[e],
                " is out of range [0, ", num_nodes, ")");
    TORCH_CHECK(dst[e] >= 0 && dst[e] < num_nodes, where, "edge_index[1, ", e, "] = ", dst[e],
                " is out of range [0, ", num_nodes, ")");
  }
  at::Tensor w;
  if (weights.defined()) w = checked_weights(weights, num_edges, where);

  // Two stable counting sorts: by source, then by target -> order by (target, source),
  // duplicates in input order.
  std::vector<int64_t> count(num_nodes + 1, 0), by_src(num_edges);
  for (int64_t e = 0; e < num_edges; ++e) ++count[src[e] + 1];
  for (int64_t v = 0; v < num_nodes; ++v) count[v + 1] += count[v];
  for (int64_t e = 0; e < num_edges; ++e) by_src[count[src[e]]++] = e;

  at::Tensor indptr = at::zeros({num_nodes + 1}, at::kLong);
  int64_t* ip = indptr.data_ptr<int64_t>();
  for (int64_t e = 0; e < num_edges; ++e) ++ip[dst[e] + 1];
  for (int64_t v = 0; v < num_nodes; ++v) ip[v + 1] += ip[v];
  std::vector<int64_t> pos(ip, ip + num_nodes);
  at::Tensor order = at::empty({num_edges}, at::kLong);
  at::Tensor indices = at::empty({num_edges}, at::kLong);
  int64_t* op = order.data_ptr<int64_t>();
  int64_t* xp = indices.data_ptr<int64_t>();
  for (int64_t k = 0; k < num_edges; ++k) {
    const int64_t e = by_src[k];
    const int64_t slot = pos[dst[e]]++;
    op[slot] = e;
    xp[slot] = src[e];
  }
  if (w.defined()) w = w.index_select(0, order);
  return trusted(indptr, indices, w, num_nodes);
}

CsrGraph CsrGraph::with_weights(const at::Tensor& w) const {
  TORCH_CHECK(defined(), "CsrGraph::with_weights: graph is undefined");
  TORCH_CHECK(w.defined(), "CsrGraph::with_weights: weights are undefined");
  CsrGraph g = *this;
  g.weights_ = checked_weights(w, num_edges_, "CsrGraph::with_weights: ");
  g.derived_ = std::make_shared<DerivedCache>();
  return g;
}

at::Tensor CsrGraph::in_degree() const {
  TORCH_CHECK(defined(), "CsrGraph::in_degree: graph is undefined");
  return indptr_.slice(0, 1) - indptr_.slice(0, 0, num_rows_);
}

at::Tensor CsrGraph::out_degree() const {
  TORCH_CHECK(defined(), "CsrGraph::out_degree: graph is undefined");
  at::Tensor deg = at::zeros({num_cols_}, at::kLong);
  int64_t* d = deg.data_ptr<int64_t>();
  const int64_t* idx = indices_.data_ptr<int64_t>();
  for (int64_t e = 0; e < num_edges_; ++e) ++d[idx[e]];
  return deg;
}

const at::Tensor& CsrGraph::row_ids() const {
  TORCH_CHECK(defined(), "CsrGraph::row_ids: graph is undefined");
  StructureCache& c = *structure_;
  std::call_once(c.row_ids_once, [&] {
    at::Tensor r = at::empty({num_edges_}, at::kLong);
    int64_t* rp = r.data_ptr<int64_t>();
    const int64_t* ip = indptr_.data_ptr<int64_t>();
    at::parallel_for(0, num_rows_, 4096, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        for (int64_t k = ip[i]; k < ip[i + 1]; ++k) rp[k] = i;
      }
    });
    c.row_ids = r;
  });
  return c.row_ids;
}

at::Tensor CsrGraph::edge_index() const { return at::stack({indices_, row_ids()}, 0); }

void CsrGraph::ensure_transpose_structure() const {
  StructureCache& c = *structure_;
  std::call_once(c.transpose_once, [&] {
    // Counting sort by column; scanning rows in ascending order keeps each transposed
    // row in ascending original-row order (stable, deterministic).
    at::Tensor t_indptr = at::zeros({num_cols_ + 1}, at::kLong);
    at::Tensor t_indices = at::empty({num_edges_}, at::kLong);
    at::Tensor perm = at::empty({num_edges_}, at::kLong);
    int64_t* tp = t_indptr.data_ptr<int64_t>();
    int64_t* ti = t_indices.data_ptr<int64_t>();
    int64_t* pp = perm.data_ptr<int64_t>();
    const int64_t* ip = indptr_.data_ptr<int64_t>();
    const int64_t* idx = indices_.data_ptr<int64_t>();
    for (int64_t e = 0; e < num_edges_; ++e) ++tp[idx[e] + 1];
    for (int64_t j = 0; j < num_cols_; ++j) tp[j + 1] += tp[j];
    std::vector<int64_t> pos(tp, tp + num_cols_);
    for (int64_t i = 0; i < num_rows_; ++i) {
      for (int64_t e = ip[i]; e < ip[i + 1]; ++e) {
        const int64_t slot = pos[idx[e]]++;
        ti[slot] = i;
        pp[slot] = e;
      }
    }
    c.transposed_structure = trusted(t_indptr, t_indices, {}, num_rows_);
    c.transpose_perm = perm;
  });
}

const CsrGraph& CsrGraph::transposed() const {
  TORCH_CHECK(defined(), "CsrGraph::transposed: graph is undefined");
  DerivedCache& d = *derived_;
  std::call_once(d.transposed_once, [&] {
    ensure_transpose_structure();
    const StructureCache& c = *structure_;
    if (!weights_.defined()) {
      d.transposed = c.transposed_structure;
    } else {
      at::NoGradGuard no_grad;
      CsrGraph t = c.transposed_structure;
      t.weights_ = weights_.detach().index_select(0, c.transpose_perm);
      t.derived_ = std::make_shared<DerivedCache>();
      d.transposed = t;
    }
  });
  return d.transposed;
}

const at::Tensor& CsrGraph::transpose_perm() const {
  TORCH_CHECK(defined(), "CsrGraph::transpose_perm: graph is undefined");
  ensure_transpose_structure();
  return structure_->transpose_perm;
}

at::Tensor CsrGraph::self_loops_indptr() const {
  TORCH_CHECK(defined(), "CsrGraph::self_loops_indptr: graph is undefined");
  TORCH_CHECK(is_square(), "CsrGraph::self_loops_indptr: graph must be square, got [", num_rows_,
              ", ", num_cols_, "]");
  const int64_t n = num_rows_;
  const int64_t* ip = indptr_.data_ptr<int64_t>();
  const int64_t* idx = indices_.data_ptr<int64_t>();
  at::Tensor indptr = at::empty({n + 1}, at::kLong);
  int64_t* np = indptr.data_ptr<int64_t>();
  np[0] = 0;
  for (int64_t i = 0; i < n; ++i) {
    bool has_loop = false;
    for (int64_t e = ip[i]; e < ip[i + 1] && !has_loop; ++e) has_loop = idx[e] == i;
    np[i + 1] = np[i] + (ip[i + 1] - ip[i]) + (has_loop ? 0 : 1);
  }
  return indptr;
}

CsrGraph CsrGraph::with_self_loops() const {
  TORCH_CHECK(defined(), "CsrGraph::with_self_loops: graph is undefined");
  TORCH_CHECK(is_square(), "CsrGraph::with_self_loops: graph must be square, got [", num_rows_,
              ", ", num_cols_, "]");
  const int64_t n = num_rows_;
  const int64_t* ip = indptr_.data_ptr<int64_t>();
  const int64_t* idx = indices_.data_ptr<int64_t>();
  at::Tensor w_in = weights_.defined() ? weights_.detach() : at::Tensor();
  const float* wp = w_in.defined() ? w_in.data_ptr<float>() : nullptr;
  at::Tensor indptr = self_loops_indptr();
  const int64_t* np = indptr.data_ptr<int64_t>();
  const int64_t num_edges = np[n];
  at::Tensor indices = at::empty({num_edges}, at::kLong);
  // Unweighted input stays unweighted (all new weights would be 1): no [E'] weights.
  at::Tensor weights = wp ? at::empty({num_edges}, at::kFloat) : at::Tensor();
  int64_t* ni = indices.data_ptr<int64_t>();
  float* nw = wp ? weights.data_ptr<float>() : nullptr;
  at::parallel_for(0, n, 2048, [&](int64_t b, int64_t end) {
    for (int64_t i = b; i < end; ++i) {
      const int64_t out = np[i];
      // A row gains a loop exactly when A + I's row is longer.
      detail::for_each_source_with_loop(idx, ip[i], ip[i + 1], i,
                                        np[i + 1] - np[i] > ip[i + 1] - ip[i],
                                        [&](int64_t t, int64_t j, int64_t e) {
                                          ni[out + t] = j;
                                          if (nw != nullptr) nw[out + t] = e < 0 ? 1.0f : wp[e];
                                        });
    }
  });
  return trusted(indptr, indices, weights, n);
}

const CsrGraph& CsrGraph::gcn_normalized() const {
  TORCH_CHECK(defined(), "CsrGraph::gcn_normalized: graph is undefined");
  TORCH_CHECK(is_square(), "CsrGraph::gcn_normalized: graph must be square, got [", num_rows_, ", ",
              num_cols_, "]");
  DerivedCache& d = *derived_;
  std::call_once(d.gcn_once, [&] {
    at::NoGradGuard no_grad;
    CsrGraph a = with_self_loops();
    const int64_t n = a.num_rows_;
    const int64_t* ip = a.indptr_.data_ptr<int64_t>();
    const int64_t* idx = a.indices_.data_ptr<int64_t>();
    const float* wp = a.weights_.defined() ? a.weights_.data_ptr<float>() : nullptr;
    std::vector<float> dinv(n);
    for (int64_t i = 0; i < n; ++i) {
      double deg = 0;
      if (wp) {
        for (int64_t e = ip[i]; e < ip[i + 1]; ++e) deg += wp[e];
      } else {
        deg = static_cast<double>(ip[i + 1] - ip[i]);
      }
      dinv[i] = deg > 0 ? static_cast<float>(1.0 / std::sqrt(deg)) : 0.0f;
    }
    at::Tensor norm = at::empty({a.num_edges_}, at::kFloat);
    float* np = norm.data_ptr<float>();
    at::parallel_for(0, n, 2048, [&](int64_t b, int64_t end) {
      for (int64_t i = b; i < end; ++i) {
        for (int64_t e = ip[i]; e < ip[i + 1]; ++e) {
          np[e] = dinv[i] * (wp ? wp[e] : 1.0f) * dinv[idx[e]];
        }
      }
    });
    d.gcn = a.with_weights(norm);
  });
  return d.gcn;
}

const CsrGraph& CsrGraph::mean_normalized() const {
  TORCH_CHECK(defined(), "CsrGraph::mean_normalized: graph is undefined");
  DerivedCache& d = *derived_;
  std::call_once(d.mean_once, [&] {
    at::NoGradGuard no_grad;
    const int64_t* ip = indptr_.data_ptr<int64_t>();
    const float* wp = weights_.defined() ? weights_.detach().data_ptr<float>() : nullptr;
    at::Tensor w = at::empty({num_edges_}, at::kFloat);
    float* out = w.data_ptr<float>();
    for (int64_t i = 0; i < num_rows_; ++i) {
      const int64_t deg = ip[i + 1] - ip[i];
      const float inv = deg > 0 ? 1.0f / static_cast<float>(deg) : 0.0f;
      for (int64_t e = ip[i]; e < ip[i + 1]; ++e) out[e] = wp ? wp[e] * inv : inv;
    }
    d.mean = with_weights(w);
  });
  return d.mean;
}

}  // namespace qgnn
