// Streaming a feature matrix by rows (read_npz_rows, read_dataset without x,
// read_dataset_features) and packing it chunk by chunk (PackedTensor::concat_rows).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "io/io_test_util.h"
#include "qgnn/io/dataset.h"
#include "qgnn/io/npz.h"
#include "qgnn/quant/packed_tensor.h"

namespace {

using qgnn_test::expect_error;
using qgnn_test::ScratchDir;

// Rows of read_npz_rows(path, key, chunk) stacked back into one matrix; checks that the
// chunks arrive in order, contiguous, float32, with at most `chunk` rows.
at::Tensor stream_all(const std::string& path, const std::string& key, int64_t chunk) {
  std::vector<at::Tensor> parts;
  int64_t next = 0;
  qgnn::read_npz_rows(path, key, chunk, [&](const at::Tensor& c, int64_t first_row) {
    EXPECT_EQ(first_row, next);
    EXPECT_EQ(c.scalar_type(), at::kFloat);
    EXPECT_TRUE(c.is_contiguous());
    EXPECT_GE(c.size(0), 1);
    EXPECT_LE(c.size(0), chunk);
    next += c.size(0);
    parts.push_back(c);
  });
  return parts.empty() ? at::empty({0}) : at::cat(parts);
}

TEST(ReadNpzRows, ChunksEqualTheWholeArray) {
  ScratchDir dir;
  at::manual_seed(0);
  const at::Tensor x = at::randn({7, 5});
  const at::Tensor x64 = at::randn({7, 3}, at::TensorOptions().dtype(at::kDouble));
  for (bool compress : {false, true}) {
    const std::string path = dir.file(compress ? "c.npz" : "s.npz");
    qgnn::write_npz(path, {{"x", x}, {"x64", x64}, {"y", at::arange(7)}}, compress);
    const auto whole = qgnn::read_npz(path);
    for (int64_t chunk : {1, 3, 7, 100}) {
      SCOPED_TRACE("compress " + std::to_string(compress) + ", chunk " + std::to_string(chunk));
      EXPECT_TRUE(at::equal(stream_all(path, "x", chunk), whole.at("x").data));
      EXPECT_TRUE(at::equal(stream_all(path, "x64", chunk), whole.at("x64").data.to(at::kFloat)));
    }
  }
}

TEST(ReadNpzRows, EmptyArrayCallsNothing) {
  ScratchDir dir;
  const std::string path = dir.file("e.npz");
  qgnn::write_npz(path, {{"x", at::zeros({0, 4})}});
  int calls = 0;
  qgnn::read_npz_rows(path, "x", 2, [&](const at::Tensor&, int64_t) { ++calls; });
  EXPECT_EQ(calls, 0);
}

TEST(ReadNpzRows, Errors) {
  ScratchDir dir;
  const std::string path = dir.file("a.npz");
  qgnn::write_npz(
      path, {{"x", at::zeros({3, 2})}, {"v", at::zeros({4})}, {"i", at::arange(6).view({3, 2})}});
  auto none = [](const at::Tensor&, int64_t) {};
  expect_error([&] { qgnn::read_npz_rows(path, "w", 2, none); },
               {"read_npz_rows(" + path + ")", "w.npy", "no such array"});
  expect_error([&] { qgnn::read_npz_rows(path, "v", 2, none); }, {"v.npy", "2-D", "got 1"});
  expect_error([&] { qgnn::read_npz_rows(path, "i", 2, none); }, {"i.npy", "float32", "<i8"});
  expect_error([&] { qgnn::read_npz_rows(path, "x", 0, none); }, {"rows_per_chunk", "got 0"});
  expect_error([&] { qgnn::read_npz_rows(dir.file("missing.npz"), "x", 2, none); },
               {"missing.npz", "no such file"});
}

std::map<std::string, at::Tensor> small_dataset(const at::Tensor& x) {
  const auto i64 = at::TensorOptions().dtype(at::kLong);
  return {{"indptr", at::tensor({0, 1, 2, 2}, i64)},
          {"indices", at::tensor({1, 0}, i64)},
          {"x", x},
          {"y", at::tensor({0, 1, 0}, i64)},
          {"num_classes", at::scalar_tensor(2, i64)}};
}

TEST(ReadDataset, WithoutFeaturesThenStreamed) {
  ScratchDir dir;
  const std::string path = dir.file("d.npz");
  const at::Tensor x = at::tensor({0.f, 2.f, 1.f, 0.f, 3.f, 1.f}).view({3, 2});
  qgnn::write_npz(path, small_dataset(x));
  qgnn::Dataset d = qgnn::read_dataset(path, 0, /*load_features=*/false);
  EXPECT_FALSE(d.x.defined());
  EXPECT_EQ(d.num_features(), 2);
  EXPECT_EQ(d.num_nodes(), 3);
  EXPECT_EQ(qgnn::read_dataset(path).num_features(), 2);
  std::vector<at::Tensor> parts;
  qgnn::read_dataset_features(path, 2, [&](const at::Tensor& c, int64_t) { parts.push_back(c); });
  EXPECT_TRUE(at::equal(at::cat(parts), x));
}

TEST(ReadDataset, StreamedFeaturesAreChecked) {
  ScratchDir dir;
  const std::string path = dir.file("nan.npz");
  at::Tensor x = at::zeros({3, 2});
  x[2][1] = std::numeric_limits<float>::quiet_NaN();
  qgnn::write_npz(path, small_dataset(x));
  // Without x the header is checked but not the values ...
  EXPECT_NO_THROW(qgnn::read_dataset(path, 0, /*load_features=*/false));
  // ... which the stream checks, naming the row of the whole matrix.
  expect_error([&] { qgnn::read_dataset_features(path, 2, [](const at::Tensor&, int64_t) {}); },
               {"read_dataset(" + path + "): x: values must be finite", "at [2, 1]"});
  const std::string bad = dir.file("int.npz");
  qgnn::write_npz(bad, small_dataset(at::zeros({3, 2}, at::TensorOptions().dtype(at::kLong))));
  expect_error([&] { qgnn::read_dataset(bad, 0, false); },
               {"x: dtype must be float16, float32 or float64", "<i8"});
}

TEST(PackedConcatRows, EqualsPackingTheWholeMatrix) {
  at::manual_seed(1);
  const at::Tensor x = at::randn({11, 13});
  for (int bits : {1, 2, 3, 4, 8, 16, 32}) {
    SCOPED_TRACE("bits " + std::to_string(bits));
    const auto rb = qgnn::RowBits::uniform(bits);
    const qgnn::PackedTensor whole = qgnn::PackedTensor::pack(x, rb, qgnn::Granularity::kRow);
    for (int64_t chunk : {1, 4, 11}) {
      std::vector<qgnn::PackedTensor> parts;
      for (int64_t r = 0; r < x.size(0); r += chunk) {
        parts.push_back(qgnn::PackedTensor::pack(x.slice(0, r, std::min(r + chunk, x.size(0))), rb,
                                                 qgnn::Granularity::kRow));
      }
      const qgnn::PackedTensor cat = qgnn::PackedTensor::concat_rows(std::move(parts));
      EXPECT_EQ(cat.num_rows(), 11);
      EXPECT_EQ(cat.num_cols(), 13);
      EXPECT_EQ(cat.nbytes(), whole.nbytes());
      EXPECT_EQ(cat.code_bytes(), whole.code_bytes());
      EXPECT_TRUE(at::equal(cat.codes_as_int(), whole.codes_as_int()));
      EXPECT_TRUE(at::equal(cat.decode(), whole.decode()));
      for (int64_t r = 0; r < 11; ++r) {
        EXPECT_EQ(cat.row_scale(r), whole.row_scale(r));
        EXPECT_EQ(cat.row_lo(r), whole.row_lo(r));
      }
    }
  }
}

TEST(PackedConcatRows, Errors) {
  const at::Tensor x = at::randn({4, 6});
  using qgnn::Granularity;
  using qgnn::PackedTensor;
  using qgnn::RowBits;
  expect_error([] { PackedTensor::concat_rows({}); }, {"no parts"});
  expect_error(
      [&] {
        PackedTensor::concat_rows({PackedTensor::pack(x, RowBits::uniform(4)),
                                   PackedTensor::pack(x, RowBits::uniform(2))});
      },
      {"part 1", "at 2 bits", "at 4 bits"});
  expect_error(
      [&] {
        PackedTensor::concat_rows({PackedTensor::pack(x, RowBits::uniform(4)),
                                   PackedTensor::pack(x.slice(1, 0, 5), RowBits::uniform(4))});
      },
      {"part 1", "[4, 5]"});
  expect_error(
      [&] {
        PackedTensor::concat_rows(
            {PackedTensor::pack(x, RowBits::uniform(4), Granularity::kTensor)});
      },
      {"part 0", "kRow"});
  RowBits two{at::tensor({0, 1, 0, 1}, at::TensorOptions().dtype(at::kByte)), {4, 2}};
  expect_error([&] { PackedTensor::concat_rows({PackedTensor::pack(x, two)}); },
               {"part 0", "2 row groups"});
  expect_error([] { PackedTensor::concat_rows({PackedTensor()}); }, {"part 0", "undefined"});
}

}  // namespace
