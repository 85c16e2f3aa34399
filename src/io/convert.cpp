#include "qgnn/io/convert.h"

#include <ATen/ATen.h>
#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string_view>
#include <utility>
#include <vector>

#include "qgnn/io/npz.h"

namespace qgnn {

namespace {

[[noreturn]] void fail(const std::string& file, int64_t line, const std::string& problem,
                       std::string_view value) {
  const bool cut = value.size() > 80;
  TORCH_CHECK(false, "convert: ", file, ":", line, ": ", problem, " (got '",
              std::string(value.substr(0, 80)), cut ? "...'" : "'", ")");
}

// A text file, plain or gzip, read one line at a time through zlib.
class LineReader {
 public:
  explicit LineReader(const std::string& path) : path_(path) {
    file_ = gzopen(path.c_str(), "rb");
    TORCH_CHECK(file_ != nullptr, "convert: ", path, ": cannot open (", std::strerror(errno), ")");
    gzbuffer(file_, 1 << 17);
  }
  ~LineReader() { gzclose(file_); }
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  // The next line that is not empty or a comment, without its line break; false at end.
  bool next(std::string& line) {
    while (read_line(line)) {
      const size_t first = line.find_first_not_of(" \t");
      if (first == std::string::npos || line[first] == '#' || line[first] == '%') continue;
      return true;
    }
    return false;
  }
  int64_t line_number() const { return line_no_; }
  const std::string& path() const { return path_; }

 private:
  // Lines are cut from gzread's output (not gzgets, which would stop at a NUL byte and
  // merge two lines). A truncated gzip stream is an error, not an end of file.
  bool read_line(std::string& line) {
    line.clear();
    bool any = false;
    while (true) {
      if (pos_ == len_) {
        const int got = gzread(file_, buf_.data(), static_cast<unsigned>(buf_.size()));
        int err = Z_OK;
        const char* msg = gzerror(file_, &err);
        TORCH_CHECK(got >= 0 && err == Z_OK, "convert: ", path_, ":", line_no_ + 1,
                    ": cannot read (", err == Z_BUF_ERROR ? "truncated gzip stream" : msg, ")");
        if (got == 0) break;
        pos_ = 0;
        len_ = static_cast<size_t>(got);
      }
      any = true;
      const char* start = buf_.data() + pos_;
      const void* nl = std::memchr(start, '\n', len_ - pos_);
      const size_t take = nl ? static_cast<const char*>(nl) - start : len_ - pos_;
      line.append(start, take);
      pos_ += take + (nl ? 1 : 0);
      TORCH_CHECK(line.size() <= kMaxLine, "convert: ", path_, ":", line_no_ + 1,
                  ": line longer than ", kMaxLine >> 20, " MiB");
      if (nl) break;
    }
    if (!any) return false;
    ++line_no_;
    if (line_no_ == 1 && line.rfind("\xEF\xBB\xBF", 0) == 0) line.erase(0, 3);  // UTF-8 BOM
    while (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find('\0') != std::string::npos) {
      fail(path_, line_no_, "line holds a NUL byte (not a text file?)",
           line.substr(0, line.find('\0')));
    }
    return true;
  }
  static constexpr size_t kMaxLine = size_t{64} << 20;
  std::string path_;
  gzFile file_ = nullptr;
  int64_t line_no_ = 0;
  std::vector<char> buf_ = std::vector<char>(size_t{1} << 17);
  size_t pos_ = 0, len_ = 0;
};

// Splits a line into fields; kAuto is resolved from the first line of a file.
class FieldSplitter {
 public:
  explicit FieldSplitter(Delimiter d) : delim_(d) {}
  const std::vector<std::string_view>& split(std::string_view line) {
    if (delim_ == Delimiter::kAuto) {
      delim_ = line.find('\t') != std::string_view::npos  ? Delimiter::kTab
               : line.find(',') != std::string_view::npos ? Delimiter::kComma
                                                          : Delimiter::kWhitespace;
    }
    fields_.clear();
    if (delim_ == Delimiter::kWhitespace) {
      size_t i = 0;
      while (i < line.size()) {
        while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
        if (i == line.size()) break;
        size_t j = i;
        while (j < line.size() && line[j] != ' ' && line[j] != '\t') ++j;
        fields_.push_back(line.substr(i, j - i));
        i = j;
      }
      return fields_;
    }
    const char sep = delim_ == Delimiter::kTab ? '\t' : ',';
    size_t start = 0;
    while (true) {
      const size_t end = line.find(sep, start);
      std::string_view f = line.substr(start, end == std::string_view::npos ? end : end - start);
      while (!f.empty() && f.front() == ' ') f.remove_prefix(1);
      while (!f.empty() && f.back() == ' ') f.remove_suffix(1);
      fields_.push_back(f);
      if (end == std::string_view::npos) break;
      start = end + 1;
    }
    return fields_;
  }

 private:
  Delimiter delim_;
  std::vector<std::string_view> fields_;
};

bool parse_int(std::string_view s, int64_t& v) {
  if (s.size() > 1 && s.front() == '+' && s[1] != '-') s.remove_prefix(1);
  const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  return r.ec == std::errc() && r.ptr == s.data() + s.size() && !s.empty();
}

bool parse_float(std::string_view s, double& v) {
  if (s.size() > 1 && s.front() == '+' && s[1] != '-') s.remove_prefix(1);
  const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  return r.ec == std::errc() && r.ptr == s.data() + s.size() && !s.empty();
}

// True when a file's first line is a header: its first field does not start like a
// number (so "1e400" or "1x" are errors on a data line, not a skipped header).
bool is_header(const std::vector<std::string_view>& fields) {
  if (fields.empty() || fields[0].empty()) return true;
  const char c = fields[0][0];
  return !(std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '+' || c == '.');
}

// A node id of `reader`'s current line: 0-based after `one_based`, in [0, n) when n > 0.
int64_t node_id(const LineReader& reader, std::string_view field, bool one_based, int64_t n) {
  int64_t v = 0;
  if (!parse_int(field, v))
    fail(reader.path(), reader.line_number(), "node id is not an integer", field);
  if (one_based) {
    if (v < 1) fail(reader.path(), reader.line_number(), "node id below 1 with 1-based ids", field);
    --v;
  }
  if (v < 0) fail(reader.path(), reader.line_number(), "negative node id", field);
  if (n > 0 && v >= n) {
    fail(reader.path(), reader.line_number(),
         "node id beyond the " + std::to_string(n) + " nodes the features define", field);
  }
  return v;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string read_binary(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  TORCH_CHECK(in, "convert: ", path, ": cannot open (", std::strerror(errno), ")");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Features [N, F] float32: a .npy array, or a text table.
at::Tensor read_features(const std::string& path, Delimiter delim) {
  if (ends_with(path, ".npy")) {
    const std::string blob = read_binary(path);
    NpyArray a = parse_npy(blob.data(), blob.size(), "convert: " + path);
    TORCH_CHECK(a.data.dim() == 2 && a.data.size(0) >= 1 && a.data.size(1) >= 1, "convert: ", path,
                ": features must be a 2-D array [N, F] with N, F >= 1 (got shape ", a.data.sizes(),
                ")");
    TORCH_CHECK(a.data.scalar_type() != at::kBool, "convert: ", path,
                ": features must be numbers (got dtype ", a.descr, ")");
    at::Tensor x = a.data.to(at::kFloat).contiguous();
    const at::Tensor bad = at::logical_not(at::isfinite(x)).nonzero();
    if (bad.size(0) > 0) {
      const int64_t r = bad[0][0].item<int64_t>(), col = bad[0][1].item<int64_t>();
      TORCH_CHECK(false, "convert: ", path, ": features must be finite (got ",
                  x[r][col].item<float>(), " at [", r, ", ", col, "])");
    }
    return x;
  }
  LineReader reader(path);
  FieldSplitter split(delim);
  std::string line;
  std::vector<float> values;
  int64_t f = -1, rows = 0;
  bool first = true;
  while (reader.next(line)) {
    const auto& fields = split.split(line);
    if (std::exchange(first, false) && is_header(fields)) continue;
    if (f < 0) f = static_cast<int64_t>(fields.size());
    if (static_cast<int64_t>(fields.size()) != f) {
      fail(path, reader.line_number(),
           "row has " + std::to_string(fields.size()) + " values, the first row " +
               std::to_string(f),
           line.substr(0, 80));
    }
    for (const auto& field : fields) {
      double v = 0;
      if (!parse_float(field, v))
        fail(path, reader.line_number(), "feature is not a number", field);
      if (!std::isfinite(v) || std::abs(v) > 3.4e38) {
        fail(path, reader.line_number(), "feature must be finite in float32", field);
      }
      values.push_back(static_cast<float>(v));
    }
    ++rows;
  }
  TORCH_CHECK(rows >= 1 && f >= 1, "convert: ", path, ": no feature rows");
  // The tensor takes the buffer over: no second copy of [N, F].
  auto* owned = new std::vector<float>(std::move(values));
  return at::from_blob(
      owned->data(), {rows, f}, [owned](void*) { delete owned; }, at::kFloat);
}

// Labels [N] int64 >= 0: a .npy array, one per line, or "node label" per line.
at::Tensor read_labels(const std::string& path, int64_t n, Delimiter delim, bool one_based) {
  at::Tensor y;
  if (ends_with(path, ".npy")) {
    const std::string blob = read_binary(path);
    NpyArray a = parse_npy(blob.data(), blob.size(), "convert: " + path);
    const auto t = a.data.scalar_type();
    TORCH_CHECK(a.data.dim() == 1 && (t == at::kLong || t == at::kInt || t == at::kShort ||
                                      t == at::kChar || t == at::kByte),
                "convert: ", path, ": labels must be a 1-D integer array (got dtype ", a.descr,
                ", shape ", a.data.sizes(), ")");
    y = a.data.to(at::kLong).contiguous();
    TORCH_CHECK(y.size(0) == n, "convert: ", path, ": ", y.size(0),
                " labels, but the features have ", n, " rows");
    const at::Tensor neg = (y < 0).nonzero();
    const at::Tensor big = (y >= n).nonzero();
    TORCH_CHECK(big.size(0) == 0, "convert: ", path, ": labels must be below the ", n,
                " nodes (got ", big.size(0) ? y[big[0][0]].item<int64_t>() : 0, " at node ",
                big.size(0) ? big[0][0].item<int64_t>() : 0, ")");
    TORCH_CHECK(neg.size(0) == 0, "convert: ", path, ": labels must be >= 0 (got ",
                neg.size(0) ? y[neg[0][0]].item<int64_t>() : 0, " at node ",
                neg.size(0) ? neg[0][0].item<int64_t>() : 0, ")");
    return y;
  }
  LineReader reader(path);
  FieldSplitter split(delim);
  std::string line;
  y = at::full({n}, -1, at::kLong);
  int64_t* yp = y.data_ptr<int64_t>();
  int64_t count = 0;
  int width = 0;  // 1: label per line, 2: node and label
  bool first = true;
  while (reader.next(line)) {
    const auto& fields = split.split(line);
    if (std::exchange(first, false) && is_header(fields)) continue;
    if (width == 0) width = fields.size() >= 2 ? 2 : 1;
    if (static_cast<int>(fields.size()) != width) {
      fail(path, reader.line_number(),
           "expected " + std::string(width == 1 ? "one label" : "a node id and a label"), line);
    }
    int64_t node = count;
    if (width == 2) node = node_id(reader, fields[0], one_based, n);
    int64_t label = 0;
    if (!parse_int(fields[width - 1], label)) {
      fail(path, reader.line_number(), "label is not an integer", fields[width - 1]);
    }
    if (label < 0) fail(path, reader.line_number(), "label must be >= 0", fields[width - 1]);
    if (label >= n) {
      fail(path, reader.line_number(),
           "label must be below the " + std::to_string(n) + " nodes (classes are 0..max label)",
           fields[width - 1]);
    }
    if (node >= n) {
      fail(path, reader.line_number(),
           "more labels than the " + std::to_string(n) + " nodes the features define", line);
    }
    if (yp[node] >= 0) fail(path, reader.line_number(), "node labelled twice", fields[0]);
    yp[node] = label;
    ++count;
  }
  TORCH_CHECK(count == n, "convert: ", path, ": ", count, " labels, but the features have ", n,
              " rows (every node needs one)");
  return y;
}

// A split file: node ids, one per line, as a mask [N].
at::Tensor read_node_set(const std::string& path, int64_t n, bool one_based, Delimiter delim) {
  LineReader reader(path);
  FieldSplitter split(delim);
  std::string line;
  at::Tensor mask = at::zeros({n}, at::kBool);
  bool* mp = mask.data_ptr<bool>();
  int64_t count = 0;
  bool first = true;
  while (reader.next(line)) {
    const auto& fields = split.split(line);
    if (std::exchange(first, false) && is_header(fields)) continue;
    if (fields.size() != 1) fail(path, reader.line_number(), "expected one node id per line", line);
    mp[node_id(reader, fields[0], one_based, n)] = true;
    ++count;
  }
  TORCH_CHECK(count > 0, "convert: ", path, ": no node ids");
  return mask;
}

struct Edge {
  int64_t target, source;
  float weight;
  bool reversed;  // --undirected: stored as (max, min) of a line written min -> max
};

// CSR order: rows (targets), then sources.
bool by_target_source(const Edge& a, const Edge& b) {
  return a.target != b.target ? a.target < b.target : a.source < b.source;
}

// Reads the edges of `path` into a CSR graph over n nodes (rows = targets).
CsrGraph read_edges(const std::string& path, int64_t n, Delimiter delim, bool one_based,
                    bool undirected, ConvertReport& report) {
  LineReader reader(path);
  FieldSplitter split(delim);
  std::string line;
  std::vector<Edge> edges;
  int width = 0;
  bool first = true;
  while (reader.next(line)) {
    const auto& fields = split.split(line);
    if (std::exchange(first, false) && is_header(fields)) continue;
    if (width == 0) {
      width = static_cast<int>(fields.size());
      if (width != 2 && width != 3) {
        fail(path, reader.line_number(),
             "an edge line is 'source target' or 'source target weight'", line);
      }
    }
    if (static_cast<int>(fields.size()) != width) {
      fail(path, reader.line_number(),
           "expected " + std::to_string(width) + " fields, as the first edge line", line);
    }
    const int64_t s = node_id(reader, fields[0], one_based, n);
    const int64_t t = node_id(reader, fields[1], one_based, n);
    double w = 1;
    // Checked as stored (float32): 1e-50 would round to 0, 1e39 to inf.
    if (width == 3 && (!parse_float(fields[2], w) || !(static_cast<float>(w) > 0) ||
                       !std::isfinite(static_cast<float>(w)))) {
      fail(path, reader.line_number(), "edge weight must be a finite number > 0", fields[2]);
    }
    ++report.lines;
    if (undirected) {
      edges.push_back({std::max(s, t), std::min(s, t), static_cast<float>(w), s > t});
    } else {
      edges.push_back({t, s, static_cast<float>(w), false});
    }
  }
  TORCH_CHECK(!edges.empty(), "convert: ", path, ": no edges");
  // Sort by (target, source), keeping file order among repeats: the first one stays.
  std::stable_sort(edges.begin(), edges.end(), by_target_source);
  // Repeats: the same line twice is a duplicate; under --undirected a pair written in
  // both directions is one undirected edge (counted apart, the first weight kept).
  size_t kept = 0;
  for (size_t k = 0; k < edges.size(); ++k) {
    if (kept > 0 && edges[kept - 1].target == edges[k].target &&
        edges[kept - 1].source == edges[k].source) {
      if (edges[kept - 1].reversed != edges[k].reversed) {
        ++report.reverse_pairs;
      } else {
        ++report.duplicates_dropped;
      }
      continue;
    }
    edges[kept++] = edges[k];
  }
  edges.resize(kept);
  if (undirected) {
    const size_t m = edges.size();
    edges.reserve(2 * m);
    for (size_t i = 0; i < m; ++i) {
      if (edges[i].target != edges[i].source) {
        edges.push_back({edges[i].source, edges[i].target, edges[i].weight, false});
      }
    }
    std::sort(edges.begin(), edges.end(), by_target_source);
  }
  const int64_t e = static_cast<int64_t>(edges.size());
  at::Tensor indptr = at::zeros({n + 1}, at::kLong);
  at::Tensor indices = at::empty({e}, at::kLong);
  at::Tensor weights = width == 3 ? at::empty({e}, at::kFloat) : at::Tensor();
  int64_t* ip = indptr.data_ptr<int64_t>();
  int64_t* ix = indices.data_ptr<int64_t>();
  for (int64_t k = 0; k < e; ++k) {
    ++ip[edges[k].target + 1];
    ix[k] = edges[k].source;
    if (weights.defined()) weights.data_ptr<float>()[k] = edges[k].weight;
    if (edges[k].target == edges[k].source) ++report.self_loops;
  }
  for (int64_t i = 0; i < n; ++i) ip[i + 1] += ip[i];
  return CsrGraph(indptr, indices, weights);
}

void finish(Dataset& d, at::Tensor x, at::Tensor y) {
  d.x = std::move(x);
  d.feature_dim = d.x.size(1);
  d.x_source_dtype = "float32";
  d.y = std::move(y);
  d.num_classes = d.y.max().item<int64_t>() + 1;  // <= N: read_labels keeps labels < N
}

void set_split(Dataset& d, at::Tensor train, at::Tensor val, at::Tensor test,
               const std::string files[3]) {
  const at::Tensor masks[3] = {train, val, test};
  for (int a = 0; a < 3; ++a) {
    for (int b = a + 1; b < 3; ++b) {
      const at::Tensor both = at::logical_and(masks[a], masks[b]).nonzero();
      TORCH_CHECK(both.size(0) == 0, "convert: ", files[b], ": node ",
                  both.size(0) ? both[0][0].item<int64_t>() : 0, " is also in ", files[a],
                  " (split sets must be disjoint)");
    }
  }
  d.train_mask = train;
  d.val_mask = val;
  d.test_mask = test;
  d.has_public_split = true;
}

std::string stem(const std::string& path) {
  std::string s = std::filesystem::path(path).filename().string();
  for (const char* ext : {".gz", ".csv", ".tsv", ".txt", ".edges", ".el"}) {
    if (ends_with(s, ext)) s.resize(s.size() - std::strlen(ext));
  }
  return s;
}

}  // namespace

Delimiter parse_delimiter(const std::string& s) {
  if (s == "auto") return Delimiter::kAuto;
  if (s == "comma") return Delimiter::kComma;
  if (s == "tab") return Delimiter::kTab;
  if (s == "space") return Delimiter::kWhitespace;
  TORCH_CHECK(false, "unknown delimiter '", s, "' (choices: auto, comma, tab, space)");
}

Dataset convert_edge_list(const EdgeListSources& src, ConvertReport* report) {
  TORCH_CHECK(!src.edges.empty() && !src.features.empty() && !src.labels.empty(),
              "convert: an edge list needs edges, features and labels files");
  const int given = !src.train.empty() + !src.val.empty() + !src.test.empty();
  TORCH_CHECK(given == 0 || given == 3, "convert: a split needs train, val and test files (got ",
              given, ")");
  ConvertReport r;
  Dataset d;
  d.name = stem(src.edges);
  d.path = src.edges;
  at::Tensor x = read_features(src.features, src.delimiter);
  const int64_t n = x.size(0);
  at::Tensor y = read_labels(src.labels, n, src.delimiter, src.one_based);
  d.graph = read_edges(src.edges, n, src.delimiter, src.one_based, src.undirected, r);
  finish(d, std::move(x), std::move(y));
  if (given == 3) {
    const std::string files[3] = {src.train, src.val, src.test};
    set_split(d, read_node_set(src.train, n, src.one_based, src.delimiter),
              read_node_set(src.val, n, src.one_based, src.delimiter),
              read_node_set(src.test, n, src.one_based, src.delimiter), files);
  }
  if (report != nullptr) *report = r;
  return d;
}

Dataset convert_ogb(const std::string& dir, const std::string& split, bool undirected,
                    ConvertReport* report) {
  namespace fs = std::filesystem;
  const fs::path raw = fs::path(dir) / "raw";
  TORCH_CHECK(fs::is_directory(raw), "convert: ", dir,
              ": no raw/ folder (OGB's layout: raw/"
              "edge.csv.gz, num-node-list.csv.gz, node-feat.csv.gz, node-label.csv.gz)");
  std::vector<std::string> names;  // the split folders
  if (fs::is_directory(fs::path(dir) / "split")) {
    for (const auto& entry : fs::directory_iterator(fs::path(dir) / "split")) {
      if (entry.is_directory()) names.push_back(entry.path().filename().string());
    }
  }
  std::sort(names.begin(), names.end());
  std::string listed;
  for (const auto& nm : names) listed += (listed.empty() ? "" : ", ") + nm;
  std::string split_name = split;
  if (split_name.empty()) {
    TORCH_CHECK(names.size() == 1, "convert: ", dir,
                "/split: ", names.empty() ? "no split folder" : "several splits (" + listed + ")",
                "; name one with --split");
    split_name = names[0];
  }
  TORCH_CHECK(std::find(names.begin(), names.end(), split_name) != names.end(), "convert: ", dir,
              "/split/", split_name,
              ": no such split (got splits: ", listed.empty() ? "none" : listed, ")");
  for (const char* f : {"train.csv.gz", "valid.csv.gz", "test.csv.gz"}) {  // before the work
    const fs::path file = fs::path(dir) / "split" / split_name / f;
    TORCH_CHECK(fs::exists(file), "convert: ", file.string(), ": missing (OGB's split layout)");
  }
  const std::string nodes_file = (raw / "num-node-list.csv.gz").string();
  int64_t n = 0;
  {
    LineReader reader(nodes_file);
    std::string line;
    TORCH_CHECK(reader.next(line), "convert: ", nodes_file, ": empty");
    if (!parse_int(line, n) || n < 1)
      fail(nodes_file, reader.line_number(), "node count must be an integer >= 1", line);
  }
  ConvertReport r;
  Dataset d;
  d.name = fs::path(dir).filename().string();
  if (d.name.empty()) d.name = fs::path(dir).parent_path().filename().string();
  d.path = dir;
  at::Tensor x = read_features((raw / "node-feat.csv.gz").string(), Delimiter::kComma);
  TORCH_CHECK(x.size(0) == n, "convert: ", (raw / "node-feat.csv.gz").string(), ": ", x.size(0),
              " rows, but num-node-list.csv.gz says ", n, " nodes");
  at::Tensor y = read_labels((raw / "node-label.csv.gz").string(), n, Delimiter::kComma, false);
  d.graph = read_edges((raw / "edge.csv.gz").string(), n, Delimiter::kComma, false, undirected, r);
  finish(d, std::move(x), std::move(y));
  const fs::path sp = fs::path(dir) / "split" / split_name;
  const std::string files[3] = {(sp / "train.csv.gz").string(), (sp / "valid.csv.gz").string(),
                                (sp / "test.csv.gz").string()};
  set_split(d, read_node_set(files[0], n, false, Delimiter::kComma),
            read_node_set(files[1], n, false, Delimiter::kComma),
            read_node_set(files[2], n, false, Delimiter::kComma), files);
  if (report != nullptr) *report = r;
  return d;
}

}  // namespace qgnn
