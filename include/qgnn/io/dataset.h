#pragma once
// A node-classification dataset: graph, features, labels, split masks.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <string>

#include "qgnn/graph/csr_graph.h"
#include "qgnn/util/export.h"

namespace qgnn {

struct QGNN_API Dataset {
  std::string name;         // file stem, e.g. "cora"
  std::string path;         // file it was read from
  CsrGraph graph;           // [N, N], rows = in-neighbours (see graph/csr_graph.h)
  at::Tensor x;             // [N, F] float32, as stored (raw values); undefined when not loaded
  int64_t feature_dim = 0;  // F (from the file's header, also when x is not loaded)
  // dtype of x in the file: "float32", "float16" (converted to float32, exactly) or
  // "float64" (converted to float32, rounded to nearest).
  std::string x_source_dtype;
  at::Tensor y;                                // [N] int64 in [0, num_classes)
  at::Tensor train_mask, val_mask, test_mask;  // [N] bool, pairwise disjoint
  int64_t num_classes = 0;
  bool has_public_split = false;  // masks came from the file
  int64_t split_seed = -1;        // seed of the random split when generated, else -1

  int64_t num_nodes() const { return graph.num_nodes(); }
  int64_t num_features() const { return x.defined() ? x.size(1) : feature_dim; }
};

// Reads and validates an .npz in the layout of data/README.md:
// indptr [N+1] and indices [E] (integer), x [N, F] (float16, float32 or float64; held as
// float32, x_source_dtype records the file's dtype), y [N] (integer), num_classes (0-d or
// [1] integer), optionally train_mask / val_mask / test_mask [N] (bool or uint8), all
// three or none, and optionally weights [E] (float32 or float64, finite and > 0), the
// value of each edge of indices (the graph's CSR values).
// Checks, each failure a one-line c10::Error "read_dataset(<path>): <array>: <problem>
// (got <value>)": presence, dtype, shape, N >= 1, E >= 1, F >= 1, indptr[0] == 0, indptr
// non-decreasing, indptr[N] == E, indices in [0, N), no duplicate edge, 1 <= num_classes
// <= N, y in [0, num_classes), finite x, masks disjoint and none of them all false.
// Edges: each (source, target) pair may appear at most once (a duplicate is an error,
// not merged); a self loop (i in row i) is kept as an ordinary edge, and operators that
// add self loops (CsrGraph::with_self_loops, gcn_normalized; GCN, GAT, AGNN) add one only
// to nodes without one, as PyG's add_remaining_self_loops does (data/README.md).
// A dataset without masks gets split_random(split_seed).
// load_features = false leaves x undefined (its dtype and shape are still checked from the
// header and feature_dim is set; finiteness is then checked by read_dataset_features).
QGNN_API Dataset read_dataset(const std::string& path, int64_t split_seed = 0,
                              bool load_features = true);

// Streams the feature matrix x of a dataset file in row chunks (read_npz_rows), checking
// each chunk as read_dataset checks x: finite values (float16 and float64 data are
// converted to float32; a float64 value beyond the float32 range is an error).
//   fn(chunk, first_row): chunk = rows [first_row, first_row + r) as a [r, F] float32
//   tensor, r <= rows_per_chunk, in row order.
// Throws c10::Error "read_dataset(<path>): x: <problem> (got <value> at [row, col])", or
// read_npz_rows' errors (missing x, not 2-D, not float).
QGNN_API void read_dataset_features(
    const std::string& path, int64_t rows_per_chunk,
    const std::function<void(const at::Tensor& chunk, int64_t first_row)>& fn);

// Resolves a --dataset argument: a bare name such as "cora" is looked up as
// "<dir>/<name>.npz" in $QGNN_DATA_DIR, the executable's ../data and ../share/qgnn/data,
// and the source tree's data/; anything else (containing '/' or ending in .npz) is a
// path. Throws c10::Error listing the places searched when nothing is found.
QGNN_API std::string resolve_dataset_path(const std::string& name_or_path);

// Shchur et al. 2018 split (DESIGN.md): per class, 20 random train nodes, 30 val nodes,
// the rest test; classes with fewer nodes fill train first, then val.
// Deterministic in (y, seed). Sets train/val/test masks and split_seed.
// REQUIRES: 1 <= num_classes <= N (throws c10::Error otherwise, before allocating).
QGNN_API void split_random(Dataset& d, int64_t seed, int64_t train_per_class = 20,
                           int64_t val_per_class = 30);

enum class FeatureNorm { kAuto, kNone, kRow, kBinarize, kTfidf };

// Feature preprocessing (returns a new [N, F] float32 tensor):
//   kNone      x as stored;
//   kRow       each row divided by its sum (Kipf's citation setting; zero rows stay zero);
//   kBinarize  min(x, 1) (PyG's Coauthor convention for keyword counts);
//   kTfidf     TF-IDF weighting as Planetoid's PubMed features are built: x[i, j] *
//              log(N / df_j), df_j = rows with x[i, j] != 0 (a column no row uses stays
//              zero), then each row divided by its sum;
//   kAuto      auto_feature_norm(d).
// REQUIRES for kTfidf: x >= 0 (term counts or indicators); throws c10::Error naming the
// first negative value otherwise.
QGNN_API at::Tensor preprocess_features(const Dataset& d, FeatureNorm norm);
// kAuto resolved for a dataset: kRow when the file has a public (Planetoid) split;
// else kBinarize when x holds counts (every value a non-negative integer: bag-of-words
// indicators, keyword counts); else kNone, so continuous features (embeddings, Gaussian
// class means plus noise) stay continuous. kAuto when x is not loaded.
QGNN_API FeatureNorm auto_feature_norm(const Dataset& d);
// True when every value of x is a non-negative integer (counts or 0/1 indicators): the
// test auto_feature_norm applies, also per chunk of a streamed x.
QGNN_API bool holds_counts(const at::Tensor& x);
// idf_j = log(N / df_j) for df_j > 0, else 0 (a column no row uses). df: [F] document
// frequencies (rows with x[:, j] != 0, any numeric dtype); returns [F] float32.
QGNN_API at::Tensor inverse_document_frequency(const at::Tensor& df, int64_t n);
// x * idf_j (kTfidf before its row normalization), for models that normalize rows
// themselves (ModelConfig::row_normalize_input). x: [N, F] float32, x >= 0.
QGNN_API at::Tensor tfidf_weight(const at::Tensor& x);
// "auto", "none", "row", "binarize", "tfidf"; throws c10::Error naming the bad value.
QGNN_API FeatureNorm parse_feature_norm(const std::string& s);
QGNN_API std::string to_string(FeatureNorm norm);

}  // namespace qgnn
