// Writes the .npz fixtures of tests/cli/test_bad_input.sh into a directory, so that the
// script needs nothing beyond the project's own build (no numpy). The base is the 6-node,
// 2-class path graph of tests/data/cli/tiny_valid.npz; each file changes one thing.
// Usage: qgnn_cli_fixtures <out dir>
#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <zip.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "qgnn/io/npz.h"

namespace {

using Arrays = std::map<std::string, at::Tensor>;

at::Tensor longs(std::vector<int64_t> v) {
  return at::tensor(v, at::TensorOptions().dtype(at::kLong));
}
at::Tensor bools(std::vector<int64_t> v) { return longs(std::move(v)).to(at::kBool); }

// Undirected path 0 - 1 - 2 - 3 - 4 - 5, both directions, rows sorted; x = eye(6, 4).
Arrays tiny_valid() {
  Arrays a;
  a["indptr"] = longs({0, 1, 3, 5, 7, 9, 10});
  a["indices"] = longs({1, 0, 2, 1, 3, 2, 4, 3, 5, 4});
  a["x"] = at::eye(6, 4);
  a["y"] = longs({0, 0, 0, 1, 1, 1});
  a["train_mask"] = bools({1, 0, 0, 1, 0, 0});
  a["val_mask"] = bools({0, 1, 0, 0, 1, 0});
  a["test_mask"] = bools({0, 0, 1, 0, 0, 1});
  a["num_classes"] = at::scalar_tensor(2, at::TensorOptions().dtype(at::kLong));
  return a;
}

at::Tensor scalar(int64_t v) { return at::scalar_tensor(v, at::TensorOptions().dtype(at::kLong)); }

// An NPY version 1.0 blob with a hand-written header (no padding) and raw data bytes.
std::string npy_blob(const std::string& dict, const std::string& data) {
  std::string out = std::string("\x93NUMPY\x01\x00", 8);
  out += static_cast<char>(dict.size() & 0xff);
  out += static_cast<char>((dict.size() >> 8) & 0xff);
  return out + dict + data;
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  TORCH_CHECK(out.good(), "cannot write ", path);
}

// A stored zip archive of the valid arrays plus raw members (replacing arrays of the same
// key), for inputs write_npz cannot produce.
void write_raw(const std::string& path,
               const std::vector<std::pair<std::string, std::string>>& raw) {
  std::vector<std::pair<std::string, std::string>> members;
  for (const auto& [key, t] : tiny_valid()) {
    bool replaced = false;
    for (const auto& r : raw) replaced = replaced || r.first == key + ".npy";
    if (!replaced) members.emplace_back(key + ".npy", qgnn::to_npy(t));
  }
  members.insert(members.end(), raw.begin(), raw.end());
  int err = 0;
  zip_t* za = zip_open(path.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &err);
  TORCH_CHECK(za != nullptr, "cannot create ", path);
  for (const auto& [name, bytes] : members) {
    zip_source_t* src = zip_source_buffer(za, bytes.data(), bytes.size(), 0);
    TORCH_CHECK(src != nullptr && zip_file_add(za, name.c_str(), src, 0) >= 0, "cannot add ", name);
  }
  TORCH_CHECK(zip_close(za) == 0, "cannot write ", path);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <out dir>\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  auto out = [&](const std::string& name) { return dir + "/" + name; };
  try {
    Arrays a = tiny_valid();
    a["num_classes"] = scalar(1000000000);
    qgnn::write_npz(out("many_classes.npz"), a);

    a = tiny_valid();
    a["indptr"] = longs({0});
    a["indices"] = longs({});
    a["x"] = at::zeros({0, 4});
    a["y"] = longs({});
    for (const char* k : {"train_mask", "val_mask", "test_mask"}) a.erase(k);
    qgnn::write_npz(out("no_nodes.npz"), a);

    a = tiny_valid();
    a["indptr"] = longs({0, 0, 0, 0, 0, 0, 0});
    a["indices"] = longs({});
    qgnn::write_npz(out("no_edges.npz"), a);

    a = tiny_valid();
    a["x"] = at::zeros({6, 0});
    qgnn::write_npz(out("no_features.npz"), a);

    for (const char* k : {"train_mask", "val_mask", "test_mask"}) {
      a = tiny_valid();
      a[k] = bools({0, 0, 0, 0, 0, 0});
      qgnn::write_npz(out(std::string("empty_") + k + ".npz"), a);
    }

    a = tiny_valid();  // row 2 lists source 3 twice
    a["indptr"] = longs({0, 1, 3, 6, 8, 10, 11});
    a["indices"] = longs({1, 0, 2, 1, 3, 3, 2, 4, 3, 5, 4});
    qgnn::write_npz(out("duplicate_edge.npz"), a);

    a = tiny_valid();  // node 5 has a self loop: valid
    a["indptr"] = longs({0, 1, 3, 5, 7, 9, 11});
    a["indices"] = longs({1, 0, 2, 1, 3, 2, 4, 3, 5, 4, 5});
    qgnn::write_npz(out("self_loop.npz"), a);

    a = tiny_valid();
    a["x"] = a["x"].to(at::kHalf);
    qgnn::write_npz(out("float16.npz"), a);

    a = tiny_valid();  // for checkpoints trained on tiny_valid: 5 features, 3 classes
    a["x"] = at::eye(6, 5);
    qgnn::write_npz(out("five_features.npz"), a);
    a = tiny_valid();
    a["y"] = longs({0, 0, 2, 1, 1, 2});
    a["num_classes"] = scalar(3);
    qgnn::write_npz(out("three_classes.npz"), a);

    // x declares 10^12 float32 values (4 TB) in a 16-byte member; then a shape whose
    // element count overflows int64.
    write_raw(out("huge_shape.npz"), {{"x.npy", npy_blob("{'descr': '<f4', 'fortran_order': False, "
                                                         "'shape': (1000000, 1000000), }",
                                                         std::string(16, '\0'))}});
    write_raw(out("overflow_shape.npz"),
              {{"x.npy", npy_blob("{'descr': '<f4', 'fortran_order': False, "
                                  "'shape': (4611686018427387904, 4), }",
                                  std::string(16, '\0'))}});

    // Two members named "y.npy": libzip will not add them, so add "y.npy" and "z.npy"
    // and rename the second in the local and central headers (names are not checksummed).
    write_raw(out("duplicate_member.npz"), {{"z.npy", qgnn::to_npy(longs({1, 1, 1, 0, 0, 0}))}});
    std::string bytes = read_bytes(out("duplicate_member.npz"));
    int renamed = 0;
    for (size_t p = bytes.find("z.npy"); p != std::string::npos; p = bytes.find("z.npy", p)) {
      bytes[p] = 'y';
      ++renamed;
    }
    TORCH_CHECK(renamed == 2, "expected z.npy twice in the archive, found ", renamed);
    write_bytes(out("duplicate_member.npz"), bytes);
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "qgnn_cli_fixtures: %s\n", e.what_without_backtrace());
    return 1;
  }
  return 0;
}
