// Dataset reading and validation, random splits, path resolution, feature preprocessing.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "io/io_test_util.h"
#include "qgnn/io/dataset.h"
#include "qgnn/io/npz.h"
#include "qgnn_build_config.h"
#include "testing/graphs.h"

namespace {

using Arrays = std::map<std::string, at::Tensor>;

at::Tensor longs(std::initializer_list<int64_t> v) {
  return at::tensor(v, at::TensorOptions().dtype(at::kLong));
}
at::Tensor bools(std::initializer_list<int64_t> v) { return longs(v).to(at::kBool); }

// Five nodes, undirected path 0 - 1 - 2 - 3 and isolated node 4, each edge stored in both
// directions; two classes; public split train {0}, val {1}, test {2, 3}.
Arrays tiny_dataset() {
  Arrays a;
  a["indptr"] = longs({0, 1, 3, 5, 6, 6});
  a["indices"] = longs({1, 0, 2, 1, 3, 2});
  a["x"] = at::tensor({1.f, 3.f, 0.f, 0.f, 0.f, 0.f, 2.f, 2.f, 4.f, 0.f, 5.f, 0.f, 1.f, 1.f, 1.f})
               .reshape({5, 3});
  a["y"] = longs({0, 1, 0, 1, 1});
  a["num_classes"] = at::scalar_tensor(2, at::TensorOptions().dtype(at::kLong));
  a["train_mask"] = bools({1, 0, 0, 0, 0});
  a["val_mask"] = bools({0, 1, 0, 0, 0});
  a["test_mask"] = bools({0, 0, 1, 1, 0});
  return a;
}

int64_t count(const at::Tensor& mask) { return mask.sum().item<int64_t>(); }

class DatasetTest : public ::testing::Test {
 protected:
  std::string write(const Arrays& arrays, const std::string& name = "tiny.npz") {
    const std::string path = dir_.file(name);
    qgnn::write_npz(path, arrays);
    return path;
  }

  // Writes `arrays`, expects read_dataset to fail with a message starting with
  // "read_dataset(<path>): " and containing every one of `parts`.
  void expect_invalid(const Arrays& arrays, std::initializer_list<std::string> parts) {
    const std::string path = write(arrays, "bad.npz");
    const std::string prefix = "read_dataset(" + path + "): ";
    qgnn_test::expect_error(
        [&] {
          try {
            qgnn::read_dataset(path);
          } catch (const c10::Error& e) {
            EXPECT_EQ(std::string(e.what_without_backtrace()).rfind(prefix, 0), 0u)
                << e.what_without_backtrace();
            throw;
          }
        },
        parts);
  }

  qgnn_test::ScratchDir dir_;
};

// Restores an environment variable on scope exit.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = getenv(name)) {
      old_ = old;
      had_ = true;
    }
    setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (had_) {
      setenv(name_, old_.c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::string old_;
  bool had_ = false;
};

}  // namespace

TEST_F(DatasetTest, ReadsTinyDataset) {
  const std::string path = write(tiny_dataset());
  qgnn::Dataset d = qgnn::read_dataset(path);
  EXPECT_EQ(d.name, "tiny");
  EXPECT_EQ(d.path, path);
  EXPECT_EQ(d.num_nodes(), 5);
  EXPECT_EQ(d.graph.num_edges(), 6);
  EXPECT_EQ(d.num_features(), 3);
  EXPECT_EQ(d.num_classes, 2);
  EXPECT_TRUE(d.has_public_split);
  EXPECT_EQ(d.split_seed, -1);
  EXPECT_EQ(d.x.scalar_type(), at::kFloat);
  EXPECT_EQ(d.y.scalar_type(), at::kLong);
  EXPECT_TRUE(at::equal(d.test_mask, bools({0, 0, 1, 1, 0})));
  EXPECT_TRUE(at::equal(d.graph.indices(), longs({1, 0, 2, 1, 3, 2})));
}

TEST_F(DatasetTest, AcceptsNarrowAndWideDtypes) {
  Arrays a = tiny_dataset();
  for (const char* k : {"indptr", "indices", "y"}) a[k] = a[k].to(at::kInt);
  a["num_classes"] = at::tensor({2}, at::TensorOptions().dtype(at::kInt));
  a["x"] = a["x"].to(at::kDouble);
  for (const char* k : {"train_mask", "val_mask", "test_mask"}) a[k] = a[k].to(at::kByte);
  qgnn::Dataset d = qgnn::read_dataset(write(a));
  EXPECT_EQ(d.graph.indptr().scalar_type(), at::kLong);
  EXPECT_EQ(d.y.scalar_type(), at::kLong);
  EXPECT_EQ(d.x.scalar_type(), at::kFloat);
  EXPECT_EQ(d.train_mask.scalar_type(), at::kBool);
  EXPECT_EQ(d.num_classes, 2);
  EXPECT_TRUE(at::equal(d.x, tiny_dataset()["x"]));
  EXPECT_TRUE(at::equal(d.val_mask, bools({0, 1, 0, 0, 0})));
}

TEST_F(DatasetTest, NoMasksGetsRandomSplit) {
  Arrays a = tiny_dataset();
  for (const char* k : {"train_mask", "val_mask", "test_mask"}) a.erase(k);
  qgnn::Dataset d = qgnn::read_dataset(write(a), /*split_seed=*/3);
  EXPECT_FALSE(d.has_public_split);
  EXPECT_EQ(d.split_seed, 3);
  // Two nodes of class 0 and three of class 1: all fit in the 20 train slots per class.
  EXPECT_EQ(count(d.train_mask), 5);
  EXPECT_EQ(count(d.val_mask) + count(d.test_mask), 0);
}

TEST_F(DatasetTest, RejectsMissingOrBrokenFile) {
  const std::string missing = dir_.file("missing.npz");
  EXPECT_ERROR(qgnn::read_dataset(missing), missing, "no such file");
  const std::string path = write(tiny_dataset(), "trunc.npz");
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 30);
  EXPECT_ERROR(qgnn::read_dataset(path), path, "truncated");
  const std::string be = std::string(QGNN_TEST_DATA_DIR) + "/big_endian.npz";
  EXPECT_ERROR(qgnn::read_dataset(be), be, "a.npy", "big-endian", ">i4");
}

TEST_F(DatasetTest, RejectsMissingArrays) {
  Arrays a = tiny_dataset();
  a.erase("y");
  expect_invalid(a, {"y: required array is missing", "indices, indptr, num_classes"});
}

TEST_F(DatasetTest, RejectsWrongDtypes) {
  Arrays a = tiny_dataset();
  a["indptr"] = a["indptr"].to(at::kFloat);
  expect_invalid(a, {"indptr: dtype must be int32 or int64", "(got '<f4')"});
  a = tiny_dataset();
  a["x"] = a["x"].to(at::kLong);
  expect_invalid(a, {"x: dtype must be float16, float32 or float64", "(got '<i8')"});
  a = tiny_dataset();
  a["y"] = a["y"].to(at::kShort);
  expect_invalid(a, {"y: dtype must be int32 or int64", "(got '<i2')"});
  a = tiny_dataset();
  a["val_mask"] = a["val_mask"].to(at::kLong);
  expect_invalid(a, {"val_mask: dtype must be bool or uint8", "(got '<i8')"});
  a = tiny_dataset();
  a["train_mask"] = longs({1, 0, 2, 0, 0}).to(at::kByte);
  expect_invalid(a, {"train_mask: uint8 mask values must be 0 or 1", "got 2 at node 2"});
}

TEST_F(DatasetTest, RejectsWrongShapes) {
  Arrays a = tiny_dataset();
  a["x"] = a["x"].slice(0, 0, 4);
  expect_invalid(a, {"x: shape must be [N, F] with N = 5", "(got [4, 3])"});
  a = tiny_dataset();
  a["y"] = longs({0, 1, 0, 1});
  expect_invalid(a, {"y: shape must be [N] with N = 5", "(got [4])"});
  a = tiny_dataset();
  a["test_mask"] = bools({0, 0, 1, 1, 0, 0});
  expect_invalid(a, {"test_mask: shape must be [N] with N = 5", "(got [6])"});
  a = tiny_dataset();
  a["num_classes"] = longs({2, 2});
  expect_invalid(a, {"num_classes: shape must be [] or [1]", "(got [2])"});
  a = tiny_dataset();
  a["indptr"] = at::zeros({0}, at::kLong);
  expect_invalid(a, {"indptr: shape must be [N + 1]", "(got [0])"});
}

TEST_F(DatasetTest, RejectsBadIndptr) {
  Arrays a = tiny_dataset();
  a["indptr"] = longs({1, 1, 3, 5, 6, 6});
  expect_invalid(a, {"indptr: indptr[0] must be 0", "(got 1)"});
  a["indptr"] = longs({0, 3, 1, 5, 6, 6});
  expect_invalid(a, {"indptr: must be non-decreasing", "(got indptr[2] = 1 < indptr[1] = 3)"});
  a["indptr"] = longs({0, 1, 3, 5, 6, 7});
  expect_invalid(a, {"indptr: indptr[N] must equal the number of indices E = 6", "(got 7)"});
}

TEST_F(DatasetTest, RejectsOutOfRangeIndices) {
  Arrays a = tiny_dataset();
  a["indices"] = longs({1, 0, 2, 7, 3, 2});
  expect_invalid(a, {"indices: values must be in [0, 5)", "(got 7 at position 3)"});
  a["indices"] = longs({1, 0, 2, 1, 3, -1});
  expect_invalid(a, {"indices: values must be in [0, 5)", "(got -1 at position 5)"});
}

TEST_F(DatasetTest, RejectsBadLabels) {
  Arrays a = tiny_dataset();
  a["y"] = longs({0, 1, 0, 2, 1});
  expect_invalid(a, {"y: labels must be in [0, num_classes = 2)", "(got 2 at node 3)"});
  a["y"] = longs({-1, 1, 0, 1, 1});
  expect_invalid(a, {"y: labels must be in [0, num_classes = 2)", "(got -1 at node 0)"});
  a = tiny_dataset();
  a["num_classes"] = at::scalar_tensor(0, at::TensorOptions().dtype(at::kLong));
  expect_invalid(a, {"num_classes: must be > 0", "(got 0)"});
}

TEST_F(DatasetTest, RejectsNonFiniteFeatures) {
  Arrays a = tiny_dataset();
  a["x"][1][2] = std::numeric_limits<float>::quiet_NaN();
  expect_invalid(a, {"x: values must be finite", "(got nan at [1, 2])"});
  a = tiny_dataset();
  a["x"][4][0] = -std::numeric_limits<float>::infinity();
  expect_invalid(a, {"x: values must be finite", "(got -inf at [4, 0])"});
  a = tiny_dataset();
  a["x"] = a["x"].to(at::kDouble);
  a["x"][3][1] = 1e300;
  expect_invalid(a, {"x: value out of the float32 range", "(got 1e+300 at [3, 1])"});
}

TEST_F(DatasetTest, RejectsBadMasks) {
  Arrays a = tiny_dataset();
  a["test_mask"] = bools({0, 1, 1, 1, 0});
  expect_invalid(a, {"test_mask: overlaps val_mask", "(got node 1 in both)"});
  a = tiny_dataset();
  a["val_mask"] = bools({1, 1, 0, 0, 0});
  expect_invalid(a, {"val_mask: overlaps train_mask", "(got node 0 in both)"});
  a = tiny_dataset();
  a.erase("test_mask");
  expect_invalid(
      a, {"test_mask: missing; masks must be all three or none", "(got [train_mask, val_mask])"});
}

TEST(DatasetCoraTest, LoadsBundledCora) {
  qgnn::Dataset d = qgnn::read_dataset(QGNN_SOURCE_DATA_DIR "/cora.npz");
  EXPECT_EQ(d.name, "cora");
  EXPECT_EQ(d.num_nodes(), 2708);
  EXPECT_EQ(d.graph.num_edges(), 10556);
  EXPECT_EQ(d.num_features(), 1433);
  EXPECT_EQ(d.num_classes, 7);
  EXPECT_TRUE(d.has_public_split);
  EXPECT_EQ(count(d.train_mask), 140);
  EXPECT_EQ(count(d.val_mask), 500);
  EXPECT_EQ(count(d.test_mask), 1000);
  EXPECT_TRUE(at::equal(at::bincount(d.y), longs({351, 217, 418, 818, 426, 298, 180})));
  EXPECT_TRUE(at::equal(at::bincount(d.y.masked_select(d.train_mask)),
                        at::full({7}, 20, at::TensorOptions().dtype(at::kLong))));
}

TEST(DatasetSplitTest, TwentyThirtyPerClassOnCora) {
  qgnn::Dataset d = qgnn::read_dataset(QGNN_SOURCE_DATA_DIR "/cora.npz");
  qgnn::split_random(d, 1);
  EXPECT_FALSE(d.has_public_split);
  EXPECT_EQ(d.split_seed, 1);
  const auto per_class = [&](const at::Tensor& mask) {
    return at::bincount(d.y.masked_select(mask), {}, d.num_classes);
  };
  auto i64 = at::TensorOptions().dtype(at::kLong);
  EXPECT_TRUE(at::equal(per_class(d.train_mask), at::full({7}, 20, i64)));
  EXPECT_TRUE(at::equal(per_class(d.val_mask), at::full({7}, 30, i64)));
  EXPECT_TRUE(at::equal(per_class(d.test_mask), longs({351, 217, 418, 818, 426, 298, 180}) - 50));
  const at::Tensor cover =
      d.train_mask.to(at::kLong) + d.val_mask.to(at::kLong) + d.test_mask.to(at::kLong);
  EXPECT_TRUE(at::equal(cover, at::ones({d.num_nodes()}, i64)));  // disjoint and complete

  qgnn::Dataset same = d, other = d;
  qgnn::split_random(same, 1);
  qgnn::split_random(other, 2);
  EXPECT_TRUE(at::equal(same.train_mask, d.train_mask));
  EXPECT_TRUE(at::equal(same.val_mask, d.val_mask));
  EXPECT_FALSE(at::equal(other.train_mask, d.train_mask));
  EXPECT_FALSE(at::equal(other.val_mask, d.val_mask));
}

TEST(DatasetSplitTest, SmallClassesFillTrainThenVal) {
  qgnn::Dataset d;
  // Class sizes 10, 35, 60.
  d.y = at::cat({at::zeros({10}, at::kLong), at::ones({35}, at::kLong),
                 at::full({60}, 2, at::TensorOptions().dtype(at::kLong))});
  d.num_classes = 3;
  qgnn::split_random(d, 0);
  const auto per_class = [&](const at::Tensor& mask) {
    return at::bincount(d.y.masked_select(mask), {}, d.num_classes);
  };
  EXPECT_TRUE(at::equal(per_class(d.train_mask), longs({10, 20, 20})));
  EXPECT_TRUE(at::equal(per_class(d.val_mask), longs({0, 15, 30})));
  EXPECT_TRUE(at::equal(per_class(d.test_mask), longs({0, 0, 10})));
}

TEST(DatasetSplitTest, SameSplitOnEveryPlatform) {
  // Pinned output of the mt19937_64 + rejection-sampling Fisher-Yates: changing the
  // algorithm changes every published split, so it must be deliberate.
  qgnn::Dataset d;
  d.y = at::arange(12, at::TensorOptions().dtype(at::kLong)).remainder(2);
  d.num_classes = 2;
  qgnn::split_random(d, 42, /*train_per_class=*/2, /*val_per_class=*/1);
  EXPECT_TRUE(at::equal(d.train_mask.nonzero().flatten(), longs({2, 6, 7, 11})));
  EXPECT_TRUE(at::equal(d.val_mask.nonzero().flatten(), longs({9, 10})));
}

TEST(DatasetSplitTest, DeclaredClassCountBeyondLabelsAllocatesNothingForIt) {
  // num_classes = 2^62 once sized a vector of per-class node lists (std::length_error);
  // more classes than nodes is now one line, before any allocation.
  qgnn::Dataset d;
  d.y = at::arange(12, at::TensorOptions().dtype(at::kLong)).remainder(2);
  d.num_classes = int64_t{1} << 62;
  EXPECT_ERROR(qgnn::split_random(d, 42, /*train_per_class=*/2, /*val_per_class=*/1),
               "split_random: num_classes must be <= N = 12", "got 4611686018427387904");
  // The same labels with a plausible class count split as before.
  d.num_classes = 2;
  qgnn::split_random(d, 42, /*train_per_class=*/2, /*val_per_class=*/1);
  EXPECT_TRUE(at::equal(d.train_mask.nonzero().flatten(), longs({2, 6, 7, 11})));
  EXPECT_TRUE(at::equal(d.val_mask.nonzero().flatten(), longs({9, 10})));
}

TEST(DatasetSplitTest, RejectsBadArguments) {
  qgnn::Dataset d;
  d.y = longs({0, 1, 3});
  d.num_classes = 2;
  EXPECT_ERROR(qgnn::split_random(d, -1), "seed must be >= 0", "got -1");
  EXPECT_ERROR(qgnn::split_random(d, 0), "split_random", "got 3 at node 2");
}

TEST_F(DatasetTest, PreprocessFeatures) {
  qgnn::Dataset d = qgnn::read_dataset(write(tiny_dataset()));
  const at::Tensor x = d.x.clone();
  const at::Tensor row = qgnn::preprocess_features(d, qgnn::FeatureNorm::kRow);
  const at::Tensor row_expected = at::tensor({.25f, .75f, 0.f, 0.f, 0.f, 0.f, .25f, .25f, .5f, 0.f,
                                              1.f, 0.f, 1.f / 3, 1.f / 3, 1.f / 3})
                                      .reshape({5, 3});
  EXPECT_TRUE(at::allclose(row, row_expected));
  EXPECT_TRUE(at::equal(row[1], at::zeros({3})));  // a zero row stays zero, no NaN
  const at::Tensor bin = qgnn::preprocess_features(d, qgnn::FeatureNorm::kBinarize);
  EXPECT_TRUE(at::equal(bin, (x > 0).to(at::kFloat)));
  EXPECT_TRUE(at::equal(qgnn::preprocess_features(d, qgnn::FeatureNorm::kAuto), row));
  d.has_public_split = false;
  EXPECT_TRUE(at::equal(qgnn::preprocess_features(d, qgnn::FeatureNorm::kAuto), bin));
  at::Tensor none = qgnn::preprocess_features(d, qgnn::FeatureNorm::kNone);
  EXPECT_TRUE(at::equal(none, x));
  none.zero_();
  EXPECT_TRUE(at::equal(d.x, x));  // a new tensor: the dataset is untouched
  // Continuous features stay continuous under auto; counts are binarized.
  EXPECT_EQ(qgnn::auto_feature_norm(d), qgnn::FeatureNorm::kBinarize);
  d.x[2][1] = 0.5f;
  EXPECT_EQ(qgnn::auto_feature_norm(d), qgnn::FeatureNorm::kNone);
  EXPECT_TRUE(at::equal(qgnn::preprocess_features(d, qgnn::FeatureNorm::kAuto), d.x));
  d.x[2][1] = -2.0f;
  EXPECT_EQ(qgnn::auto_feature_norm(d), qgnn::FeatureNorm::kNone);
  d.has_public_split = true;
  EXPECT_EQ(qgnn::auto_feature_norm(d), qgnn::FeatureNorm::kRow);
}

TEST_F(DatasetTest, TfidfWeightsByInverseDocumentFrequency) {
  qgnn::Dataset d = qgnn::read_dataset(write(tiny_dataset()));
  // x = [[1,3,0],[0,0,0],[2,2,4],[0,5,0],[1,1,1]], N = 5: df = (3, 4, 2).
  const double i0 = std::log(5.0 / 3), i1 = std::log(5.0 / 4), i2 = std::log(5.0 / 2);
  const std::vector<std::vector<double>> w = {
      {1 * i0, 3 * i1, 0}, {0, 0, 0}, {2 * i0, 2 * i1, 4 * i2}, {0, 5 * i1, 0}, {i0, i1, i2}};
  const at::Tensor weighted = qgnn::tfidf_weight(d.x);
  const at::Tensor tfidf = qgnn::preprocess_features(d, qgnn::FeatureNorm::kTfidf);
  for (int64_t r = 0; r < 5; ++r) {
    const double sum = w[r][0] + w[r][1] + w[r][2];
    for (int64_t c = 0; c < 3; ++c) {
      EXPECT_NEAR(weighted[r][c].item<double>(), w[r][c], 1e-6) << r << "," << c;
      EXPECT_NEAR(tfidf[r][c].item<double>(), sum > 0 ? w[r][c] / sum : 0.0, 1e-6) << r << "," << c;
    }
  }
  // A column no row uses stays zero; negative values are rejected with their position.
  d.x.select(1, 2).zero_();
  EXPECT_TRUE(at::equal(qgnn::tfidf_weight(d.x).select(1, 2), at::zeros({5})));
  d.x[3][1] = -1.0f;
  EXPECT_ERROR(qgnn::tfidf_weight(d.x), "tfidf", "got -1 at [3, 1]");
}

TEST(DatasetFeatureNormTest, ParsesNames) {
  EXPECT_EQ(qgnn::parse_feature_norm("auto"), qgnn::FeatureNorm::kAuto);
  EXPECT_EQ(qgnn::parse_feature_norm("none"), qgnn::FeatureNorm::kNone);
  EXPECT_EQ(qgnn::parse_feature_norm("row"), qgnn::FeatureNorm::kRow);
  EXPECT_EQ(qgnn::parse_feature_norm("binarize"), qgnn::FeatureNorm::kBinarize);
  EXPECT_EQ(qgnn::parse_feature_norm("tfidf"), qgnn::FeatureNorm::kTfidf);
  for (const char* name : {"auto", "none", "row", "binarize", "tfidf"}) {
    EXPECT_EQ(qgnn::to_string(qgnn::parse_feature_norm(name)), name);
  }
  EXPECT_ERROR(qgnn::parse_feature_norm("l2"), "'l2'", "auto, none, row, binarize, tfidf");
}

TEST_F(DatasetTest, ResolvesDatasetPaths) {
  EXPECT_EQ(qgnn::resolve_dataset_path("some/dir/x.npz"), "some/dir/x.npz");
  EXPECT_EQ(qgnn::resolve_dataset_path("./cora"), "./cora");
  EXPECT_EQ(qgnn::resolve_dataset_path("mine.npz"), "mine.npz");

  const std::string cora = qgnn::resolve_dataset_path("cora");
  EXPECT_TRUE(std::filesystem::is_regular_file(cora)) << cora;
  EXPECT_EQ(std::filesystem::path(cora).filename(), "cora.npz");

  const std::string mine = write(tiny_dataset(), "cora.npz");
  {
    ScopedEnv env("QGNN_DATA_DIR", dir_.path());
    EXPECT_EQ(qgnn::resolve_dataset_path("cora"), mine);  // $QGNN_DATA_DIR comes first
    EXPECT_ERROR(qgnn::resolve_dataset_path("no_such_dataset"), "'no_such_dataset' not found",
                 dir_.file("no_such_dataset.npz"),
                 std::string(QGNN_SOURCE_DATA_DIR) + "/no_such_dataset.npz");
  }
  EXPECT_ERROR(qgnn::resolve_dataset_path(""), "empty dataset name");
}

TEST_F(DatasetTest, RejectsEmptyGraphFeaturesOrEdges) {
  Arrays a = tiny_dataset();
  a["indptr"] = longs({0});
  a["indices"] = at::zeros({0}, at::kLong);
  a["x"] = at::zeros({0, 3});
  a["y"] = at::zeros({0}, at::kLong);
  for (const char* k : {"train_mask", "val_mask", "test_mask"}) a.erase(k);
  expect_invalid(a, {"indptr: the graph has no nodes", "(got [1])"});
  a = tiny_dataset();
  a["indptr"] = longs({0, 0, 0, 0, 0, 0});
  a["indices"] = at::zeros({0}, at::kLong);
  expect_invalid(a, {"indices: the graph has no edges", "(got [0])"});
  a = tiny_dataset();
  a["x"] = at::zeros({5, 0});
  expect_invalid(a, {"x: no features: shape must be [N, F] with F >= 1", "(got [5, 0])"});
}

TEST_F(DatasetTest, RejectsMoreClassesThanNodes) {
  // 1e9 classes would make split_random allocate a bucket per class (~24 GB).
  Arrays a = tiny_dataset();
  a["num_classes"] = at::scalar_tensor(int64_t{1000000000}, at::TensorOptions().dtype(at::kLong));
  expect_invalid(a, {"num_classes: must be <= N = 5", "(got 1000000000)"});
  for (const char* k : {"train_mask", "val_mask", "test_mask"}) a.erase(k);
  expect_invalid(a, {"num_classes: must be <= N = 5", "(got 1000000000)"});
  a["num_classes"] = at::scalar_tensor(6, at::TensorOptions().dtype(at::kLong));
  expect_invalid(a, {"num_classes: must be <= N = 5", "(got 6)"});
  a["num_classes"] = at::scalar_tensor(5, at::TensorOptions().dtype(at::kLong));
  EXPECT_EQ(qgnn::read_dataset(write(a)).num_classes, 5);  // N classes is still fine
}

TEST(DatasetSplitTest, RejectsMoreClassesThanNodes) {
  qgnn::Dataset d;
  d.y = longs({0, 1, 0});
  d.num_classes = 1000000000;
  EXPECT_ERROR(qgnn::split_random(d, 0), "split_random: num_classes must be <= N = 3",
               "got 1000000000");
}

TEST_F(DatasetTest, RejectsAnEmptyMask) {
  for (const char* k : {"train_mask", "val_mask", "test_mask"}) {
    Arrays a = tiny_dataset();
    a[k] = bools({0, 0, 0, 0, 0});
    expect_invalid(a, {std::string(k) + ": selects no node", "(got 0 of 5 nodes set)"});
  }
}

TEST_F(DatasetTest, RejectsDuplicateEdges) {
  Arrays a = tiny_dataset();
  // Row 1 lists source 2 twice (unsorted row): 2 -> 1 would count double in every sum.
  a["indptr"] = longs({0, 1, 4, 6, 7, 7});
  a["indices"] = longs({1, 2, 0, 2, 1, 3, 2});
  expect_invalid(a,
                 {"indices: duplicate edge", "(got source 2 twice in row 1 at positions 1 and 3)"});
  // Two self loops on node 4 are a duplicate too.
  a["indptr"] = longs({0, 1, 3, 5, 6, 8});
  a["indices"] = longs({1, 0, 2, 1, 3, 2, 4, 4});
  expect_invalid(a,
                 {"indices: duplicate edge", "(got source 4 twice in row 4 at positions 6 and 7)"});
}

TEST_F(DatasetTest, SelfLoopInTheFileIsKeptAndGcnAddsNoSecondOne) {
  //   0 --- 1 --- 2 (loop)     undirected path, node 2 has a self loop in the file
  // Rows (in-neighbours): 0: {1}; 1: {0, 2}; 2: {1, 2}.
  Arrays a;
  a["indptr"] = longs({0, 1, 3, 5});
  a["indices"] = longs({1, 0, 2, 1, 2});
  a["x"] = at::eye(3, 2);
  a["y"] = longs({0, 1, 0});
  a["num_classes"] = at::scalar_tensor(2, at::TensorOptions().dtype(at::kLong));
  a["train_mask"] = bools({1, 0, 0});
  a["val_mask"] = bools({0, 1, 0});
  a["test_mask"] = bools({0, 0, 1});
  const qgnn::Dataset d = qgnn::read_dataset(write(a));
  EXPECT_EQ(d.graph.num_edges(), 5);
  // A + I adds loops at 0 and 1 only: rows 0: {0, 1}; 1: {0, 1, 2}; 2: {1, 2}, degrees
  // 2, 3, 2; norm(j -> i) = 1 / sqrt(d_i d_j).
  const qgnn::CsrGraph& g = d.graph.gcn_normalized();
  EXPECT_EQ(g.num_edges(), 7);
  const double s6 = 1 / std::sqrt(6.0);
  const at::Tensor expected =
      at::tensor({0.5, s6, 0.0, s6, 1 / 3.0, s6, 0.0, s6, 0.5}).view({3, 3});
  EXPECT_TRUE(at::allclose(qgnn::testing::dense_adjacency(g), expected.to(at::kFloat)))
      << qgnn::testing::dense_adjacency(g);
  EXPECT_EQ(d.graph.with_self_loops().num_edges(), 7);
}

TEST_F(DatasetTest, Float16FeaturesAreConvertedExactly) {
  Arrays a = tiny_dataset();
  a["x"] = (a["x"] / 3).to(at::kHalf);  // values that need all of float16's mantissa
  const std::string path = write(a);
  const qgnn::Dataset d = qgnn::read_dataset(path);
  EXPECT_EQ(d.x_source_dtype, "float16");
  ASSERT_EQ(d.x.scalar_type(), at::kFloat);
  EXPECT_TRUE(at::equal(d.x, a["x"].to(at::kFloat)));
  EXPECT_EQ(qgnn::read_dataset(write(tiny_dataset(), "f32.npz")).x_source_dtype, "float32");

  const qgnn::Dataset lazy = qgnn::read_dataset(path, 0, /*load_features=*/false);
  EXPECT_EQ(lazy.x_source_dtype, "float16");
  EXPECT_EQ(lazy.num_features(), 3);
  std::vector<at::Tensor> chunks;
  qgnn::read_dataset_features(path, 2, [&](const at::Tensor& chunk, int64_t first_row) {
    EXPECT_EQ(first_row, static_cast<int64_t>(chunks.size()) * 2);
    EXPECT_EQ(chunk.scalar_type(), at::kFloat);
    chunks.push_back(chunk.clone());
  });
  EXPECT_TRUE(at::equal(at::cat(chunks), d.x));

  a["x"][2][1] = std::numeric_limits<float>::infinity();
  expect_invalid(a, {"x: values must be finite", "(got inf at [2, 1])"});
}
