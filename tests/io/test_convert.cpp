// qgnn convert (qgnn/io/convert.h): edge lists and OGB's raw layout, on fixtures written
// here (plain and gzip), against hand-built CSR graphs; bad rows name file and line.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "qgnn/io/convert.h"
#include "qgnn/io/generate.h"
#include "qgnn/io/npz.h"

namespace qgnn {
namespace {

namespace fs = std::filesystem;

class Fixture : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("qgnn_convert_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& text) {
    const fs::path p = dir_ / name;
    fs::create_directories(p.parent_path());
    if (p.extension() == ".gz") {
      gzFile f = gzopen(p.c_str(), "wb");
      gzwrite(f, text.data(), static_cast<unsigned>(text.size()));
      gzclose(f);
    } else {
      std::ofstream(p) << text;
    }
    return p.string();
  }

  // CSR rows (in-neighbours) as "i: j k" strings, for readable comparisons.
  static std::vector<std::string> rows(const CsrGraph& g) {
    std::vector<std::string> out;
    const int64_t* ip = g.indptr().data_ptr<int64_t>();
    const int64_t* ix = g.indices().data_ptr<int64_t>();
    for (int64_t i = 0; i < g.num_rows(); ++i) {
      std::string s = std::to_string(i) + ":";
      for (int64_t e = ip[i]; e < ip[i + 1]; ++e) s += " " + std::to_string(ix[e]);
      out.push_back(s);
    }
    return out;
  }

  static std::string error_of(const std::function<void()>& f) {
    try {
      f();
    } catch (const c10::Error& e) {
      return e.what_without_backtrace();
    }
    return "(no error)";
  }

  fs::path dir_;
};

TEST_F(Fixture, EdgeListWithHeaderCommentsDuplicatesAndSelfLoops) {
  EdgeListSources s;
  s.edges = write("g.csv",
                  "src,dst\n# a comment\n0,1\n2,1\n0,1\n3,3\n\n1,0\n");  // 0->1 twice
  s.features = write("x.csv", "1,0\n0,1\n0.5,0.5\n2,-1\n");
  s.labels = write("y.txt", "0\n1\n1\n0\n");
  ConvertReport r;
  Dataset d = convert_edge_list(s, &r);
  EXPECT_EQ(r.lines, 5);
  EXPECT_EQ(r.duplicates_dropped, 1);
  EXPECT_EQ(r.self_loops, 1);
  EXPECT_EQ(rows(d.graph), (std::vector<std::string>{"0: 1", "1: 0 2", "2:", "3: 3"}));
  EXPECT_FALSE(d.graph.has_weights());
  EXPECT_TRUE(torch::equal(d.x, torch::tensor({{1.f, 0.f}, {0.f, 1.f}, {.5f, .5f}, {2.f, -1.f}})));
  EXPECT_TRUE(torch::equal(d.y, torch::tensor({0, 1, 1, 0}, torch::kLong)));
  EXPECT_EQ(d.num_classes, 2);
  EXPECT_FALSE(d.has_public_split);
  // The written file is a dataset read_dataset accepts, with a random split.
  const std::string out = (dir_ / "g.npz").string();
  write_dataset(out, d);
  Dataset back = read_dataset(out, 0);
  EXPECT_TRUE(torch::equal(back.graph.indptr(), d.graph.indptr()));
  EXPECT_TRUE(torch::equal(back.graph.indices(), d.graph.indices()));
  EXPECT_EQ(back.split_seed, 0);
}

TEST_F(Fixture, UndirectedOneBasedWeightedGzipWithSplitFiles) {
  EdgeListSources s;
  // 1-based ids, tab separated, weights; 2-3 given in both directions counts once.
  s.edges = write("g.tsv.gz", "1\t2\t0.5\n2\t3\t2\n3\t2\t7\n");
  s.features = write("x.tsv", "1\t2\n3\t4\n5\t6\n");
  s.labels = write("y.tsv", "3\t2\n1\t0\n2\t1\n");  // "node label", any order
  s.train = write("train.txt", "1\n");
  s.val = write("val.txt", "2\n");
  s.test = write("test.txt", "3\n");
  s.one_based = true;
  s.undirected = true;
  ConvertReport r;
  Dataset d = convert_edge_list(s, &r);
  EXPECT_EQ(r.duplicates_dropped, 0);
  EXPECT_EQ(r.reverse_pairs, 1);  // 3 -> 2 repeats 2 -- 3; the first weight stays
  EXPECT_EQ(rows(d.graph), (std::vector<std::string>{"0: 1", "1: 0 2", "2: 1"}));
  ASSERT_TRUE(d.graph.has_weights());
  EXPECT_TRUE(torch::equal(d.graph.weights(), torch::tensor({.5f, .5f, 2.f, 2.f})));
  EXPECT_TRUE(torch::equal(d.y, torch::tensor({0, 1, 2}, torch::kLong)));
  EXPECT_EQ(d.num_classes, 3);
  ASSERT_TRUE(d.has_public_split);
  EXPECT_TRUE(torch::equal(d.train_mask, torch::tensor({true, false, false})));
  EXPECT_TRUE(torch::equal(d.test_mask, torch::tensor({false, false, true})));
  const std::string out = (dir_ / "w.npz").string();
  write_dataset(out, d);
  Dataset back = read_dataset(out);
  ASSERT_TRUE(back.graph.has_weights());
  EXPECT_TRUE(torch::equal(back.graph.weights(), d.graph.weights()));
  EXPECT_TRUE(back.has_public_split);
}

TEST_F(Fixture, NpyFeaturesAndLabels) {
  EdgeListSources s;
  s.edges = write("g.txt", "0 1\n1 0\n");
  s.features = (dir_ / "x.npy").string();
  std::ofstream(s.features, std::ios::binary)
      << to_npy(torch::arange(6, torch::kDouble).view({2, 3}));
  s.labels = (dir_ / "y.npy").string();
  std::ofstream(s.labels, std::ios::binary) << to_npy(torch::tensor({1, 0}, torch::kInt));
  Dataset d = convert_edge_list(s);
  EXPECT_TRUE(torch::equal(d.x, torch::arange(6, torch::kFloat).view({2, 3})));
  EXPECT_TRUE(torch::equal(d.y, torch::tensor({1, 0}, torch::kLong)));
}

TEST_F(Fixture, BadRowsNameTheFileTheLineAndTheValue) {
  EdgeListSources s;
  s.features = write("x.csv", "1\n2\n3\n");
  s.labels = write("y.csv", "0\n1\n0\n");
  s.edges = write("bad_id.csv", "0,1\n1,x2\n");
  EXPECT_EQ(error_of([&] { convert_edge_list(s); }),
            "convert: " + s.edges + ":2: node id is not an integer (got 'x2')");
  s.edges = write("range.csv", "0,1\n\n# c\n1,3\n");
  EXPECT_EQ(error_of([&] { convert_edge_list(s); }),
            "convert: " + s.edges + ":4: node id beyond the 3 nodes the features define (got '3')");
  s.edges = write("weight.csv", "0,1,1\n1,2,-1\n");
  EXPECT_EQ(error_of([&] { convert_edge_list(s); }),
            "convert: " + s.edges + ":2: edge weight must be a finite number > 0 (got '-1')");
  s.edges = write("width.csv", "0,1\n1,2,3\n");
  EXPECT_EQ(error_of([&] { convert_edge_list(s); }),
            "convert: " + s.edges + ":2: expected 2 fields, as the first edge line (got '1,2,3')");
  s.edges = write("ok.csv", "0,1\n");
  s.features = write("ragged.csv", "1,2\n3\n4,5\n");
  EXPECT_EQ(error_of([&] { convert_edge_list(s); }),
            "convert: " + s.features + ":2: row has 1 values, the first row 2 (got '3')");
  s.features = write("x2.csv", "1\n2\nnan\n");
  EXPECT_EQ(error_of([&] { convert_edge_list(s); }),
            "convert: " + s.features + ":3: feature must be finite in float32 (got 'nan')");
  s.features = write("x3.csv", "1\n2\n3\n");
  s.labels = write("short.csv", "0\n1\n");
  EXPECT_EQ(
      error_of([&] { convert_edge_list(s); }),
      "convert: " + s.labels + ": 2 labels, but the features have 3 rows (every node needs one)");
  s.labels = write("neg.csv", "0\n-1\n0\n");
  EXPECT_EQ(error_of([&] { convert_edge_list(s); }),
            "convert: " + s.labels + ":2: label must be >= 0 (got '-1')");
  s.labels = write("y2.csv", "0\n1\n0\n");
  s.train = write("tr.txt", "0\n");
  s.val = write("va.txt", "1\n");
  s.test = write("te.txt", "1\n");
  EXPECT_EQ(error_of([&] { convert_edge_list(s); }), "convert: " + s.test + ": node 1 is also in " +
                                                         s.val + " (split sets must be disjoint)");
  s.test.clear();
  EXPECT_EQ(error_of([&] { convert_edge_list(s); }),
            "convert: a split needs train, val and test files (got 2)");
  s.train.clear();
  s.val.clear();
  s.edges = (dir_ / "missing.csv").string();
  EXPECT_NE(error_of([&] { convert_edge_list(s); }).find("missing.csv: cannot open"),
            std::string::npos);
}

TEST_F(Fixture, TextEdgeCases) {
  EdgeListSources s;
  // A byte-order mark, CRLF line ends and a line longer than one 128 KiB read.
  s.edges = write("crlf.csv",
                  "\xEF\xBB\xBF"
                  "0,1\r\n1,2\r\n2,0\r\n");
  s.features = write("wide.csv", std::string(70000, '0').insert(0, "1,").append("\n2,1\n3,1\n"));
  s.labels = write("y.txt", "0\n1\n0\n");
  Dataset d = convert_edge_list(s);
  EXPECT_EQ(rows(d.graph), (std::vector<std::string>{"0: 2", "1: 0", "2: 1"}));
  EXPECT_FLOAT_EQ(d.x[0][0].item<float>(), 1.f);
  // Errors a header guess must not hide, and values float32 cannot hold.
  s.features = write("big.csv", "1e400\n1\n1\n");
  EXPECT_EQ(error_of([&] { convert_edge_list(s); }),
            "convert: " + s.features + ":1: feature is not a number (got '1e400')");
  s.features = write("x.csv", "1\n2\n3\n");
  s.edges = write("tiny_w.csv", "0,1,1e-50\n");
  EXPECT_EQ(error_of([&] { convert_edge_list(s); }),
            "convert: " + s.edges + ":1: edge weight must be a finite number > 0 (got '1e-50')");
  s.edges = write("nul.csv", std::string("0,1\n1,2\0x\n2,0\n", 15));
  EXPECT_EQ(error_of([&] { convert_edge_list(s); }),
            "convert: " + s.edges + ":2: line holds a NUL byte (not a text file?) (got '1,2')");
  s.edges = write("plus.csv", "0,1\n+-1,2\n");
  EXPECT_EQ(error_of([&] { convert_edge_list(s); }),
            "convert: " + s.edges + ":2: node id is not an integer (got '+-1')");
  s.edges = write("e.csv", "0,1\n");
  s.labels = write("huge.txt", "0\n9223372036854775807\n0\n");
  EXPECT_EQ(error_of([&] { convert_edge_list(s); }),
            "convert: " + s.labels +
                ":2: label must be below the 3 nodes (classes are 0..max label) (got "
                "'9223372036854775807')");
  s.labels = write("y2.txt", "0\n1\n0\n");
  s.train = write("tr.txt", "0,1\n");
  s.val = write("va.txt", "1\n");
  s.test = write("te.txt", "2\n");
  EXPECT_EQ(error_of([&] { convert_edge_list(s); }),
            "convert: " + s.train + ":1: expected one node id per line (got '0,1')");
  // A gzip stream cut short is an error, not a shorter file.
  s.train = s.val = s.test = "";
  std::string gz = (dir_ / "cut.csv.gz").string();
  {
    gzFile f = gzopen(gz.c_str(), "wb");
    std::string text;
    for (int i = 0; i < 2000; ++i)
      text += std::to_string(i % 3) + "," + std::to_string((i + 1) % 3) + "\n";
    gzwrite(f, text.data(), static_cast<unsigned>(text.size()));
    gzclose(f);
  }
  const auto full = fs::file_size(gz);
  fs::resize_file(gz, full - 12);
  s.edges = gz;
  EXPECT_NE(error_of([&] { convert_edge_list(s); }).find("cannot read"), std::string::npos);
}

TEST_F(Fixture, OgbRawLayout) {
  write("arxiv/raw/num-node-list.csv.gz", "4\n");
  write("arxiv/raw/edge.csv.gz", "0,1\n1,2\n2,3\n3,0\n");
  write("arxiv/raw/node-feat.csv.gz", "0.1,0.2\n0.3,0.4\n0.5,0.6\n0.7,0.8\n");
  write("arxiv/raw/node-label.csv.gz", "3\n0\n1\n2\n");
  write("arxiv/split/time/train.csv.gz", "0\n1\n");
  write("arxiv/split/time/valid.csv.gz", "2\n");
  write("arxiv/split/time/test.csv.gz", "3\n");
  const std::string dir = (dir_ / "arxiv").string();
  ConvertReport r;
  Dataset d = convert_ogb(dir, "", /*undirected=*/false, &r);
  EXPECT_EQ(d.name, "arxiv");
  EXPECT_EQ(rows(d.graph), (std::vector<std::string>{"0: 3", "1: 0", "2: 1", "3: 2"}));
  EXPECT_EQ(d.num_classes, 4);
  EXPECT_TRUE(torch::allclose(d.x[3], torch::tensor({0.7f, 0.8f})));
  EXPECT_TRUE(torch::equal(d.train_mask, torch::tensor({true, true, false, false})));
  Dataset u = convert_ogb(dir, "time", /*undirected=*/true);
  EXPECT_EQ(rows(u.graph), (std::vector<std::string>{"0: 1 3", "1: 0 2", "2: 1 3", "3: 0 2"}));
  EXPECT_EQ(error_of([&] { convert_ogb(dir, "random", false); }),
            "convert: " + dir + "/split/random: no such split (got splits: time)");
  write("arxiv/raw/node-feat.csv.gz", "0.1,0.2\n0.3,0.4\n0.5,0.6\n");
  EXPECT_EQ(error_of([&] { convert_ogb(dir, "", false); }),
            "convert: " + (dir_ / "arxiv/raw/node-feat.csv.gz").string() +
                ": 3 rows, but num-node-list.csv.gz says 4 nodes");
}

TEST(ConvertDelimiter, ParsesItsNames) {
  EXPECT_EQ(parse_delimiter("tab"), Delimiter::kTab);
  EXPECT_EQ(parse_delimiter("space"), Delimiter::kWhitespace);
  EXPECT_THROW(parse_delimiter(";"), c10::Error);
}

}  // namespace
}  // namespace qgnn
