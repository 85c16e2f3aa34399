#pragma once
// Reading A + I from A: the one definition of where CsrGraph::with_self_loops() puts an
// added self loop, shared by with_self_loops() itself and the inference paths that walk
// A + I without building it (GAT's packed attention, packed_attention_spmm_rows).
#include <cstdint>

namespace qgnn::detail {

// Calls f(t, j, e) for the sources j of row i of A + I, t = 0, 1, ..., in the order
// with_self_loops() stores them: A's row (indices[eb, ee), e its edge id in A) with, when
// add_loop, the self loop j = i (e = -1) before the first neighbour > i.
template <class F>
inline void for_each_source_with_loop(const int64_t* indices, int64_t eb, int64_t ee, int64_t i,
                                      bool add_loop, const F& f) {
  int64_t t = 0;
  bool pending = add_loop;
  for (int64_t e = eb; e < ee; ++e) {
    if (pending && indices[e] > i) {
      f(t++, i, int64_t{-1});
      pending = false;
    }
    f(t++, indices[e], e);
  }
  if (pending) f(t, i, int64_t{-1});
}

}  // namespace qgnn::detail
