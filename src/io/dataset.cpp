// Dataset loading and validation (layout: shared/datasets/README.md), the Shchur et al.
// random split, dataset path resolution and feature preprocessing.
#include "qgnn/io/dataset.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <random>
#include <sstream>
#include <utility>
#include <vector>

#include "io/random_internal.h"
#include "qgnn/io/npz.h"
#include "qgnn_build_config.h"

namespace qgnn {
namespace {

namespace fs = std::filesystem;

// Dtype code without its byte-order character: "<i8" -> "i8".
std::string dtype_code(const std::string& descr) {
  if (!descr.empty() &&
      (descr[0] == '<' || descr[0] == '>' || descr[0] == '|' || descr[0] == '=')) {
    return descr.substr(1);
  }
  return descr;
}

std::string shape_str(at::IntArrayRef sizes) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < sizes.size(); ++i) os << (i ? ", " : "") << sizes[i];
  os << ']';
  return os.str();
}

// First index in [0, n) where bad(i) holds, or -1; scanned in parallel.
template <typename Pred>
int64_t first_where(int64_t n, Pred bad) {
  std::atomic<int64_t> first{std::numeric_limits<int64_t>::max()};
  at::parallel_for(0, n, 1 << 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end && i < first.load(std::memory_order_relaxed); ++i) {
      if (bad(i)) {
        int64_t cur = first.load();
        while (i < cur && !first.compare_exchange_weak(cur, i)) {
        }
        return;
      }
    }
  });
  const int64_t f = first.load();
  return f == std::numeric_limits<int64_t>::max() ? -1 : f;
}

// Formats every validation failure as one line:
//   read_dataset(<path>): <array>: <problem> (got <value>)
class Checker {
 public:
  explicit Checker(const std::string& path) : path_(path) {}

  template <typename... Got>
  void check(bool ok, const std::string& array, const std::string& problem,
             const Got&... got) const {
    TORCH_CHECK(ok, "read_dataset(", path_, "): ", array, ": ", problem, " (got ", got..., ")");
  }

  // Integer array (int32 or int64 in the file) as int64.
  at::Tensor integer(const std::string& name, const NpyArray& a) const {
    const std::string code = dtype_code(a.descr);
    check(code == "i4" || code == "i8", name, "dtype must be int32 or int64", "'", a.descr, "'");
    return a.data.to(at::kLong).contiguous();
  }

  // Mask (bool, or uint8 holding 0 / 1) of shape [n] as bool.
  at::Tensor mask(const std::string& name, const NpyArray& a, int64_t n) const {
    const std::string code = dtype_code(a.descr);
    check(code == "b1" || code == "u1", name, "dtype must be bool or uint8", "'", a.descr, "'");
    check(a.data.dim() == 1 && a.data.size(0) == n, name,
          "shape must be [N] with N = " + std::to_string(n), shape_str(a.data.sizes()));
    at::Tensor m = a.data.contiguous();
    if (m.scalar_type() == at::kByte) {
      const uint8_t* p = m.data_ptr<uint8_t>();
      const int64_t bad = first_where(n, [p](int64_t i) { return p[i] > 1; });
      check(bad < 0, name, "uint8 mask values must be 0 or 1", bad < 0 ? 0 : int(p[bad]),
            " at node ", bad);
      m = m.to(at::kBool);
    }
    return m;
  }

 private:
  const std::string& path_;
};

std::string file_stem(const std::string& path) {
  std::string stem = fs::path(path).filename().string();
  if (stem.size() > 4 && stem.compare(stem.size() - 4, 4, ".npz") == 0) {
    stem.resize(stem.size() - 4);
  }
  return stem;
}

using detail::uniform_below;

struct DuplicateEdge {
  int64_t row = -1, source = -1;
  int64_t first = -1, second = -1;  // its two positions in indices
};

// The duplicate of lowest source in row i ({-1, ...} when every source is distinct; a
// strictly increasing row is answered without sorting).
DuplicateEdge duplicate_in_row(const int64_t* ip, const int64_t* ix, int64_t i) {
  bool sorted = true;
  for (int64_t e = ip[i] + 1; e < ip[i + 1] && sorted; ++e) sorted = ix[e - 1] < ix[e];
  if (sorted) return {};
  std::vector<std::pair<int64_t, int64_t>> row;  // (source, position)
  for (int64_t e = ip[i]; e < ip[i + 1]; ++e) row.emplace_back(ix[e], e);
  std::sort(row.begin(), row.end());
  for (size_t k = 1; k < row.size(); ++k) {
    if (row[k].first == row[k - 1].first)
      return {i, row[k].first, row[k - 1].second, row[k].second};
  }
  return {};
}

// The duplicate (row, source) pair of lowest row, then lowest source; rows may be unsorted.
// REQUIRES: indices in [0, n).
DuplicateEdge first_duplicate_edge(const int64_t* ip, const int64_t* ix, int64_t n) {
  const int64_t row =
      first_where(n, [ip, ix](int64_t i) { return duplicate_in_row(ip, ix, i).row >= 0; });
  return row < 0 ? DuplicateEdge{} : duplicate_in_row(ip, ix, row);
}

template <typename T>
int64_t first_non_finite(const at::Tensor& x) {
  const T* p = x.data_ptr<T>();
  return first_where(x.numel(), [p](int64_t i) { return !std::isfinite(p[i]); });
}

// x (rows [first_row, ...) of the file's matrix, float16, float32 or float64) checked to
// be finite and within the float32 range, as contiguous float32.
at::Tensor checked_features(const Checker& c, at::Tensor x, int64_t first_row) {
  const int64_t f = x.size(1);
  if (x.scalar_type() == at::kHalf) x = x.to(at::kFloat);  // exact: float16 is a subset
  auto check_finite = [&](const at::Tensor& t, const std::string& problem) {
    const int64_t bad =
        t.scalar_type() == at::kDouble ? first_non_finite<double>(t) : first_non_finite<float>(t);
    if (bad >= 0) {
      const double v =
          t.scalar_type() == at::kDouble ? t.data_ptr<double>()[bad] : t.data_ptr<float>()[bad];
      c.check(false, "x", problem, v, " at [", first_row + bad / f, ", ", bad % f, "]");
    }
  };
  x = x.contiguous();
  check_finite(x, "values must be finite");
  if (x.scalar_type() != at::kFloat) {
    at::Tensor x64 = x;
    x = x.to(at::kFloat);
    const int64_t bad = first_non_finite<float>(x);
    if (bad >= 0) {
      c.check(false, "x", "value out of the float32 range", x64.data_ptr<double>()[bad], " at [",
              first_row + bad / f, ", ", bad % f, "]");
    }
  }
  return x;
}

}  // namespace

void read_dataset_features(
    const std::string& path, int64_t rows_per_chunk,
    const std::function<void(const at::Tensor& chunk, int64_t first_row)>& fn) {
  const Checker c(path);
  read_npz_rows(path, "x", rows_per_chunk, [&](const at::Tensor& chunk, int64_t first_row) {
    fn(checked_features(c, chunk, first_row), first_row);
  });
}

Dataset read_dataset(const std::string& path, int64_t split_seed, bool load_features) {
  std::map<std::string, NpyArray> arrays =
      read_npz(path, load_features ? std::vector<std::string>{} : std::vector<std::string>{"x"});
  const Checker c(path);

  std::string keys;
  for (const auto& kv : arrays) keys += (keys.empty() ? "" : ", ") + kv.first;
  for (const char* name : {"indptr", "indices", "x", "y", "num_classes"}) {
    c.check(arrays.count(name) > 0, name, "required array is missing", "arrays [", keys, "]");
  }

  // dtypes and shapes
  at::Tensor indptr = c.integer("indptr", arrays["indptr"]);
  at::Tensor indices = c.integer("indices", arrays["indices"]);
  at::Tensor y = c.integer("y", arrays["y"]);
  at::Tensor nc = c.integer("num_classes", arrays["num_classes"]);
  c.check(indptr.dim() == 1 && indptr.size(0) >= 1, "indptr", "shape must be [N + 1]",
          shape_str(indptr.sizes()));
  const int64_t n = indptr.size(0) - 1;
  const std::string with_n = " with N = " + std::to_string(n);
  c.check(indices.dim() == 1, "indices", "shape must be [E]", shape_str(indices.sizes()));
  const int64_t e = indices.size(0);
  c.check(y.dim() == 1 && y.size(0) == n, "y", "shape must be [N]" + with_n, shape_str(y.sizes()));
  c.check(nc.dim() == 0 || (nc.dim() == 1 && nc.size(0) == 1), "num_classes",
          "shape must be [] or [1]", shape_str(nc.sizes()));
  const NpyArray& x_array = arrays["x"];
  const std::string x_code = dtype_code(x_array.descr);
  c.check(x_code == "f2" || x_code == "f4" || x_code == "f8", "x",
          "dtype must be float16, float32 or float64", "'", x_array.descr, "'");
  c.check(x_array.shape.size() == 2 && x_array.shape[0] == n, "x", "shape must be [N, F]" + with_n,
          shape_str(x_array.shape));
  at::Tensor x = x_array.data;
  const int64_t f = x_array.shape[1];
  c.check(n >= 1, "indptr", "the graph has no nodes: shape must be [N + 1] with N >= 1",
          shape_str(indptr.sizes()));
  c.check(e >= 1, "indices", "the graph has no edges: shape must be [E] with E >= 1",
          shape_str(indices.sizes()));
  c.check(f >= 1, "x", "no features: shape must be [N, F] with F >= 1", shape_str(x_array.shape));

  const char* mask_names[3] = {"train_mask", "val_mask", "test_mask"};
  int num_masks = 0;
  std::string present;
  for (const char* m : mask_names) {
    if (arrays.count(m)) {
      ++num_masks;
      present += (present.empty() ? "" : ", ") + std::string(m);
    }
  }
  if (num_masks > 0) {
    for (const char* m : mask_names) {
      c.check(arrays.count(m) > 0, m, "missing; masks must be all three or none", "[", present,
              "]");
    }
  }
  at::Tensor masks[3];
  for (int k = 0; k < num_masks; ++k) masks[k] = c.mask(mask_names[k], arrays[mask_names[k]], n);

  // values
  const int64_t num_classes = nc.reshape({}).item<int64_t>();
  c.check(num_classes > 0, "num_classes", "must be > 0", num_classes);
  c.check(num_classes <= n, "num_classes", "must be <= N = " + std::to_string(n), num_classes);

  const int64_t* ip = indptr.data_ptr<int64_t>();
  c.check(ip[0] == 0, "indptr", "indptr[0] must be 0", ip[0]);
  const int64_t dec = first_where(n, [ip](int64_t i) { return ip[i + 1] < ip[i]; });
  if (dec >= 0) {
    c.check(false, "indptr", "must be non-decreasing", "indptr[", dec + 1, "] = ", ip[dec + 1],
            " < indptr[", dec, "] = ", ip[dec]);
  }
  c.check(ip[n] == e, "indptr",
          "indptr[N] must equal the number of indices E = " + std::to_string(e), ip[n]);

  const int64_t* ix = indices.data_ptr<int64_t>();
  const int64_t bad_ix = first_where(e, [ix, n](int64_t i) { return ix[i] < 0 || ix[i] >= n; });
  if (bad_ix >= 0) {
    c.check(false, "indices", "values must be in [0, " + std::to_string(n) + ")", ix[bad_ix],
            " at position ", bad_ix);
  }
  const DuplicateEdge dup = first_duplicate_edge(ip, ix, n);
  if (dup.row >= 0) {
    c.check(false, "indices", "duplicate edge (each source may appear once per row)", "source ",
            dup.source, " twice in row ", dup.row, " at positions ", dup.first, " and ",
            dup.second);
  }

  const int64_t* yp = y.data_ptr<int64_t>();
  const int64_t bad_y =
      first_where(n, [yp, num_classes](int64_t i) { return yp[i] < 0 || yp[i] >= num_classes; });
  if (bad_y >= 0) {
    c.check(false, "y", "labels must be in [0, num_classes = " + std::to_string(num_classes) + ")",
            yp[bad_y], " at node ", bad_y);
  }

  if (x.defined()) x = checked_features(c, x, 0);

  for (int k = 0; k < num_masks; ++k) {
    const bool* p = masks[k].data_ptr<bool>();
    const int64_t first_set = first_where(n, [p](int64_t i) { return p[i]; });
    c.check(first_set >= 0, mask_names[k],
            "selects no node (the protocol needs train, val and test nodes)", "0 of ", n,
            " nodes set");
  }
  for (int a = 0; a < num_masks; ++a) {
    for (int b = a + 1; b < num_masks; ++b) {
      const bool* pa = masks[a].data_ptr<bool>();
      const bool* pb = masks[b].data_ptr<bool>();
      const int64_t both = first_where(n, [pa, pb](int64_t i) { return pa[i] && pb[i]; });
      if (both >= 0) {
        c.check(false, mask_names[b], std::string("overlaps ") + mask_names[a], "node ", both,
                " in both");
      }
    }
  }

  // Optional edge weights, aligned with indices (the CSR values): finite and positive.
  at::Tensor weights;
  if (arrays.count("weights") > 0) {
    const NpyArray& w = arrays["weights"];
    const std::string code = dtype_code(w.descr);
    c.check(code == "f4" || code == "f8", "weights", "dtype must be float32 or float64", "'",
            w.descr, "'");
    c.check(w.data.dim() == 1 && w.data.size(0) == e, "weights",
            "shape must be [E] with E = " + std::to_string(e), shape_str(w.data.sizes()));
    weights = w.data.to(at::kFloat).contiguous();
    const float* wp = weights.data_ptr<float>();
    const int64_t bad =
        first_where(e, [wp](int64_t i) { return !(wp[i] > 0 && std::isfinite(wp[i])); });
    if (bad >= 0)
      c.check(false, "weights", "must be finite and positive", wp[bad], " at edge ", bad);
  }

  Dataset d;
  d.name = file_stem(path);
  d.path = path;
  d.graph = CsrGraph(indptr, indices, weights);
  d.x = x;
  d.feature_dim = f;
  d.x_source_dtype = x_code == "f2" ? "float16" : x_code == "f4" ? "float32" : "float64";
  d.y = y;
  d.num_classes = num_classes;
  arrays.clear();
  if (num_masks == 3) {
    d.train_mask = masks[0];
    d.val_mask = masks[1];
    d.test_mask = masks[2];
    d.has_public_split = true;
  } else {
    split_random(d, split_seed);
  }
  return d;
}

void split_random(Dataset& d, int64_t seed, int64_t train_per_class, int64_t val_per_class) {
  TORCH_CHECK(seed >= 0, "split_random: seed must be >= 0 (got ", seed, ")");
  TORCH_CHECK(train_per_class >= 0 && val_per_class >= 0,
              "split_random: per-class counts must be >= 0 (got train ", train_per_class, ", val ",
              val_per_class, ")");
  TORCH_CHECK(d.y.defined() && d.y.dim() == 1 && d.y.scalar_type() == at::kLong,
              "split_random: y must be a [N] int64 tensor (got ",
              d.y.defined()
                  ? shape_str(d.y.sizes()) + " " + std::string(c10::toString(d.y.scalar_type()))
                  : std::string("undefined"),
              ")");
  TORCH_CHECK(d.num_classes > 0, "split_random: num_classes must be > 0 (got ", d.num_classes, ")");
  const at::Tensor y = d.y.cpu().contiguous();
  const int64_t n = y.size(0);
  TORCH_CHECK(d.num_classes <= n, "split_random: num_classes must be <= N = ", n, " (got ",
              d.num_classes, ")");
  const int64_t* yp = y.data_ptr<int64_t>();

  // Sized by the largest label, not by num_classes (a file may declare 10^18 classes):
  // classes without nodes draw no random numbers, so the split is the same.
  int64_t used_classes = 0;
  for (int64_t i = 0; i < n; ++i) {
    TORCH_CHECK(yp[i] >= 0 && yp[i] < d.num_classes, "split_random: y must be in [0, ",
                d.num_classes, ") (got ", yp[i], " at node ", i, ")");
    used_classes = std::max(used_classes, yp[i] + 1);
  }
  std::vector<std::vector<int64_t>> by_class(used_classes);
  for (int64_t i = 0; i < n; ++i) by_class[yp[i]].push_back(i);

  auto opts = at::TensorOptions().dtype(at::kBool);
  at::Tensor train = at::zeros({n}, opts), val = at::zeros({n}, opts), test = at::zeros({n}, opts);
  bool* tr = train.data_ptr<bool>();
  bool* va = val.data_ptr<bool>();
  bool* te = test.data_ptr<bool>();
  std::mt19937_64 rng(static_cast<uint64_t>(seed));
  for (std::vector<int64_t>& nodes : by_class) {
    const int64_t m = static_cast<int64_t>(nodes.size());
    for (int64_t i = m - 1; i > 0; --i) {  // Fisher-Yates
      std::swap(nodes[i], nodes[uniform_below(rng, static_cast<uint64_t>(i) + 1)]);
    }
    const int64_t num_train = std::min(train_per_class, m);
    const int64_t num_val = std::min(val_per_class, m - num_train);
    for (int64_t k = 0; k < m; ++k) {
      bool* dst = k < num_train ? tr : (k < num_train + num_val ? va : te);
      dst[nodes[k]] = true;
    }
  }
  d.train_mask = train;
  d.val_mask = val;
  d.test_mask = test;
  d.split_seed = seed;
  d.has_public_split = false;
}

std::string resolve_dataset_path(const std::string& name_or_path) {
  TORCH_CHECK(!name_or_path.empty(), "resolve_dataset_path: empty dataset name");
  const bool is_path =
      name_or_path.find('/') != std::string::npos ||
      (name_or_path.size() >= 4 && name_or_path.compare(name_or_path.size() - 4, 4, ".npz") == 0);
  if (is_path) return name_or_path;

  const std::string file = name_or_path + ".npz";
  std::vector<std::string> dirs;
  if (const char* env = std::getenv("QGNN_DATA_DIR"); env != nullptr && *env != '\0') {
    dirs.emplace_back(env);
  }
  char exe[4096];
  const ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (len > 0) {
    const fs::path exe_dir = fs::path(std::string(exe, static_cast<size_t>(len))).parent_path();
    dirs.push_back((exe_dir / ".." / "data").string());
    dirs.push_back((exe_dir / ".." / "share" / "qgnn" / "data").string());
  }
  dirs.emplace_back(QGNN_SOURCE_DATA_DIR);

  std::string searched;
  for (const std::string& dir : dirs) {
    const std::string candidate = (fs::path(dir) / file).string();
    std::error_code ec;
    if (fs::is_regular_file(candidate, ec)) return candidate;
    searched += (searched.empty() ? "" : ", ") + candidate;
  }
  TORCH_CHECK(false, "resolve_dataset_path: dataset '", name_or_path,
              "' not found (searched: ", searched, ")");
  return {};
}

FeatureNorm auto_feature_norm(const Dataset& d) {
  if (d.has_public_split) return FeatureNorm::kRow;
  if (!d.x.defined()) return FeatureNorm::kAuto;
  return holds_counts(d.x) ? FeatureNorm::kBinarize : FeatureNorm::kNone;
}

bool holds_counts(const at::Tensor& x) {
  return x.ge(0).all().item<bool>() && x.eq(x.round()).all().item<bool>();
}

at::Tensor inverse_document_frequency(const at::Tensor& df, int64_t n) {
  const at::Tensor d = df.to(at::kDouble);
  return at::where(d > 0, at::log(static_cast<double>(n) / d.clamp_min(1)), at::zeros_like(d))
      .to(at::kFloat);
}

at::Tensor tfidf_weight(const at::Tensor& x) {
  TORCH_CHECK(x.defined() && x.dim() == 2 && x.scalar_type() == at::kFloat,
              "tfidf_weight: x must be a [N, F] float32 tensor");
  const at::Tensor negative = x.lt(0);
  if (negative.any().item<bool>()) {
    const at::Tensor at_ = negative.nonzero()[0];
    const int64_t r = at_[0].item<int64_t>(), c = at_[1].item<int64_t>();
    TORCH_CHECK(false, "feature norm tfidf: x must be >= 0 (term counts), got ",
                x[r][c].item<float>(), " at [", r, ", ", c, "]");
  }
  return x * inverse_document_frequency(x.ne(0).sum(0), x.size(0)).unsqueeze(0);
}

at::Tensor preprocess_features(const Dataset& d, FeatureNorm norm) {
  TORCH_CHECK(d.x.defined() && d.x.dim() == 2,
              "preprocess_features: x must be a [N, F] tensor (got ",
              d.x.defined() ? shape_str(d.x.sizes()) : std::string("undefined"), ")");
  if (norm == FeatureNorm::kAuto) norm = auto_feature_norm(d);
  auto row_normalize = [](const at::Tensor& x) {
    at::Tensor sum = x.sum(1, /*keepdim=*/true);
    return x / at::where(sum == 0, at::ones_like(sum), sum);  // zero rows stay zero
  };
  switch (norm) {
    case FeatureNorm::kNone:
      return d.x.clone();
    case FeatureNorm::kRow:
      return row_normalize(d.x);
    case FeatureNorm::kBinarize:
      return d.x.clamp_max(1);
    case FeatureNorm::kTfidf:
      return row_normalize(tfidf_weight(d.x));
    case FeatureNorm::kAuto:
      break;
  }
  TORCH_INTERNAL_ASSERT(false, "unhandled FeatureNorm");
  return {};
}

FeatureNorm parse_feature_norm(const std::string& s) {
  if (s == "auto") return FeatureNorm::kAuto;
  if (s == "none") return FeatureNorm::kNone;
  if (s == "row") return FeatureNorm::kRow;
  if (s == "binarize") return FeatureNorm::kBinarize;
  if (s == "tfidf") return FeatureNorm::kTfidf;
  TORCH_CHECK(false, "unknown feature normalization '", s,
              "' (choices: auto, none, row, binarize, tfidf)");
  return FeatureNorm::kAuto;
}

std::string to_string(FeatureNorm norm) {
  switch (norm) {
    case FeatureNorm::kNone:
      return "none";
    case FeatureNorm::kRow:
      return "row";
    case FeatureNorm::kBinarize:
      return "binarize";
    case FeatureNorm::kTfidf:
      return "tfidf";
    case FeatureNorm::kAuto:
      return "auto";
  }
  return "?";
}

}  // namespace qgnn
