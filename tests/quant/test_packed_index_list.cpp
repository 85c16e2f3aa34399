// The index-list layout of 1-bit PackedTensors (sparse binary inputs): when pack() picks
// it, its exact size, and that it is only a storage layout (codes, parameters, decoded
// values bit-identical to the bitmap's), plus packed_linear / packed_spmm on it against
// dense ATen references.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "qgnn/quant/packed_tensor.h"
#include "testing/graphs.h"
#include "testing/guards.h"
#include "testing/packed.h"

namespace qgnn {
namespace {

using testing::bitwise_equal;
using testing::dense_adjacency;
using testing::expect_spmm_close;
using testing::granularity_name;
using testing::kAllGranularities;
using testing::random_graph;
using testing::random_groups;
using testing::ThreadGuard;

// Bag-of-words style 0/1 rows at `density`, seeded; row 3 all zeros, row 5 all ones
// (lo == hi: every code 0).
at::Tensor sparse_binary(int64_t n, int64_t f, double density, uint64_t seed) {
  at::manual_seed(seed);
  at::Tensor x = (at::rand({n, f}) < density).to(at::kFloat);
  if (n > 3) x[3].zero_();
  if (n > 5) x[5].fill_(1.0f);
  return x;
}

// Sparse non-binary rows (values in [0.2, 1) at `density`); with `shifted`, every 7th row
// is moved to negative values, so its lo is not 0 (the lo term of the kernels matters).
at::Tensor sparse_valued(int64_t n, int64_t f, double density, uint64_t seed, bool shifted) {
  at::manual_seed(seed);
  at::Tensor x = (at::rand({n, f}) < density).to(at::kFloat) * (at::rand({n, f}) * 0.8 + 0.2);
  if (shifted) {
    for (int64_t r = 2; r < n; r += 7) x[r].sub_(2.5f);
  }
  return x;
}

// Bytes of the bitmap's row offset table (several groups only).
int64_t bitmap_offsets(const RowBits& rows, int64_t n) {
  return rows.row_group.defined() && rows.num_groups() > 1 ? 8 * (n + 1) : 0;
}

// Packs x with the automatic layout, which must be an index list, and checks it against
// the forced bitmap: codes, parameters, decoded values (bitwise), the stored indices (the
// columns of the 1-codes, ascending) and the exact sizes.
void expect_index_list_equals_bitmap(const at::Tensor& x, const RowBits& rows, Granularity gran,
                                     const std::string& what) {
  SCOPED_TRACE(what);
  const PackedTensor t = PackedTensor::pack(x, rows, gran);
  const PackedTensor b = PackedTensor::pack(x, rows, gran, PackLayoutChoice::kBitmap);
  ASSERT_EQ(t.layout(), PackedLayout::kIndexList);
  ASSERT_EQ(b.layout(), PackedLayout::kBitmap);
  const int64_t n = x.size(0), f = x.size(1);
  ASSERT_EQ(t.num_rows(), n);
  ASSERT_EQ(t.num_cols(), f);
  const at::Tensor codes = b.codes_as_int();
  EXPECT_TRUE(at::equal(t.codes_as_int(), codes));
  EXPECT_TRUE(bitwise_equal(t.decode(), b.decode()));
  int64_t ones = 0;
  for (int64_t r = 0; r < n; ++r) {
    ASSERT_EQ(t.row_bits(r), 1);
    ASSERT_EQ(t.row_scale(r), b.row_scale(r)) << "row " << r;
    ASSERT_EQ(t.row_lo(r), b.row_lo(r)) << "row " << r;
    const PackedTensor::RowIndices idx = t.row_indices(r);
    const at::Tensor expect = codes[r].nonzero().view({-1});
    ASSERT_EQ(idx.size, expect.numel()) << "row " << r;
    for (int64_t i = 0; i < idx.size; ++i) ASSERT_EQ(idx[i], expect[i].item<int64_t>());
    ones += idx.size;
  }
  EXPECT_EQ(ones, codes.sum().item<int64_t>());
  EXPECT_EQ(t.num_index_entries(), ones);
  const int64_t esize = f <= 65536 ? 2 : 4;
  EXPECT_EQ(t.code_bytes(), ones * esize + 8 * (n + 1));
  EXPECT_EQ(t.nbytes(), b.nbytes() - b.code_bytes() - bitmap_offsets(rows, n) + t.code_bytes());
  EXPECT_LT(t.nbytes(), b.nbytes());
  EXPECT_DOUBLE_EQ(t.average_bits(), 8.0 * t.code_bytes() / (n * f));
  // A partial row range decodes the same rows.
  std::vector<float> buf(static_cast<size_t>(3 * f));
  t.decode_rows(n - 3, n, buf.data());
  EXPECT_TRUE(bitwise_equal(at::from_blob(buf.data(), {3, f}), b.decode().narrow(0, n - 3, 3)));
}

TEST(PackedIndexList, LayoutChoice) {
  const at::Tensor sparse = sparse_binary(60, 1433, 0.013, 1);
  const at::Tensor dense = sparse_binary(60, 1433, 0.5, 2);
  EXPECT_EQ(PackedTensor::pack(sparse, RowBits::uniform(1)).layout(), PackedLayout::kIndexList);
  EXPECT_EQ(PackedTensor::pack(dense, RowBits::uniform(1)).layout(), PackedLayout::kBitmap);
  EXPECT_EQ(
      PackedTensor::pack(sparse, RowBits::uniform(1), Granularity::kRow, PackLayoutChoice::kBitmap)
          .layout(),
      PackedLayout::kBitmap);
  for (int bits : {2, 3, 8, 16, 32}) {
    EXPECT_EQ(PackedTensor::pack(sparse, RowBits::uniform(bits)).layout(), PackedLayout::kBitmap)
        << bits;
  }
  // Groups: all at 1 bit -> index list; any group wider -> bitmap.
  const at::Tensor g = random_groups(60, 3, 3);
  EXPECT_EQ(PackedTensor::pack(sparse, RowBits{g, {1, 1, 1}}).layout(), PackedLayout::kIndexList);
  EXPECT_EQ(PackedTensor::pack(sparse, RowBits{g, {1, 2, 1}}).layout(), PackedLayout::kBitmap);
  // The choice is strict: offsets cost 8 bytes a row, so a narrow matrix stays a bitmap
  // even without any 1-code (index 8 (N + 1) = 488 vs bitmap 60 * 8 = 480).
  EXPECT_EQ(PackedTensor::pack(at::zeros({60, 64}), RowBits::uniform(1)).layout(),
            PackedLayout::kBitmap);
  // ... and one byte more per row tips it: F = 72 -> bitmap 540 > 488.
  EXPECT_EQ(PackedTensor::pack(at::zeros({60, 72}), RowBits::uniform(1)).layout(),
            PackedLayout::kIndexList);
}

TEST(PackedIndexList, NbytesHandComputed) {
  // N = 4, F = 1000, 1 bit, kRow; row 0 has ones at 1, 500, 999, row 2 at 0..6, rows 1 and
  // 3 are all zero (constant: codes 0). Indices 10 * 2 + offsets 5 * 8 = 60 code bytes;
  // params 4 * 8 = 32 -> 92. The bitmap: 4 * 125 + 32 = 532.
  at::Tensor x = at::zeros({4, 1000});
  for (int64_t k : {1, 500, 999}) x[0][k] = 1.0f;
  for (int64_t k = 0; k < 7; ++k) x[2][k] = 1.0f;
  const PackedTensor t = PackedTensor::pack(x, RowBits::uniform(1));
  ASSERT_EQ(t.layout(), PackedLayout::kIndexList);
  EXPECT_EQ(t.code_bytes(), 60);
  EXPECT_EQ(t.nbytes(), 92);
  EXPECT_EQ(index_list_code_bytes(4, 1000, 10), 60);
  EXPECT_DOUBLE_EQ(t.average_bits(), 8.0 * 60 / 4000);
  EXPECT_EQ(PackedTensor::pack(x, RowBits::uniform(1), Granularity::kRow, PackLayoutChoice::kBitmap)
                .nbytes(),
            532);
  const PackedTensor::RowIndices r0 = t.row_indices(0);
  ASSERT_EQ(r0.size, 3);
  ASSERT_NE(r0.u16, nullptr);
  EXPECT_EQ(r0.i32, nullptr);
  EXPECT_EQ(r0[0], 1);
  EXPECT_EQ(r0[1], 500);
  EXPECT_EQ(r0[2], 999);
  EXPECT_EQ(t.row_indices(1).size, 0);
  EXPECT_EQ(t.row_indices(2).size, 7);
  EXPECT_TRUE(at::equal(t.decode(), x));
  // Groups [0, 1, 1, 0] at {1, 1}, kBucket: 60 code bytes + row groups 4 + group bits 2 +
  // params 2 * 8 = 82 (no byte offset table: the index offsets locate the rows).
  const PackedTensor g = PackedTensor::pack(x, RowBits{at::tensor({0, 1, 1, 0}, at::kByte), {1, 1}},
                                            Granularity::kBucket);
  ASSERT_EQ(g.layout(), PackedLayout::kIndexList);
  EXPECT_EQ(g.nbytes(), 82);
}

TEST(PackedIndexList, BinaryCodesAreTheNonZeros) {
  // Independent of the bitmap: a 0/1 row with both values has lo 0, scale 1 and codes
  // equal to x; constant rows (all 0, all 1) have scale 1, lo = the value, codes 0.
  const at::Tensor x = sparse_binary(40, 2000, 0.01, 4);
  const PackedTensor t = PackedTensor::pack(x, RowBits::uniform(1));
  ASSERT_EQ(t.layout(), PackedLayout::kIndexList);
  const at::Tensor has_both = x.amax(1).ne(x.amin(1));
  const at::Tensor expect = x.to(at::kInt) * has_both.unsqueeze(1).to(at::kInt);
  EXPECT_TRUE(at::equal(t.codes_as_int(), expect));
  EXPECT_TRUE(at::equal(t.decode(), x));  // lossless for 0/1 rows
  EXPECT_EQ(t.row_lo(5), 1.0f);
  EXPECT_EQ(t.row_scale(5), 1.0f);
  EXPECT_EQ(t.row_indices(5).size, 0);
  EXPECT_EQ(t.row_indices(3).size, 0);
}

TEST(PackedIndexList, DecodeEqualsBitmapEveryGranularityAndGrouping) {
  for (int64_t f : {257, 700, 1433}) {
    const int64_t n = 53;
    const std::vector<std::pair<std::string, at::Tensor>> inputs = {
        {"binary", sparse_binary(n, f, 0.015, 10 + f)},
        {"valued", sparse_valued(n, f, 0.02, 20 + f, /*shifted=*/false)}};
    for (const auto& [name, x] : inputs) {
      for (Granularity gran : kAllGranularities) {
        const std::string what = name + " F " + std::to_string(f) + " " + granularity_name(gran);
        expect_index_list_equals_bitmap(x, RowBits::uniform(1), gran, what);
        expect_index_list_equals_bitmap(x, RowBits{random_groups(n, 3, f), {1, 1, 1}}, gran,
                                        what + " 3 groups");
      }
    }
    // Rows with lo != 0 (per-row ranges keep them sparse).
    expect_index_list_equals_bitmap(sparse_valued(n, f, 0.02, 30 + f, /*shifted=*/true),
                                    RowBits::uniform(1), Granularity::kRow,
                                    "shifted F " + std::to_string(f));
  }
}

TEST(PackedIndexList, WideRowsUseInt32Indices) {
  // F > 65536: indices do not fit 16 bits.
  const int64_t f = 70000;
  at::Tensor x = at::zeros({3, f});
  for (int64_t k : {0, 65535, 65536, 69999}) x[0][k] = 1.0f;
  x[2][40000] = 1.0f;
  x[2][1] = 0.5f;  // row 2: range [0, 1], 0.5 rounds half to even: code 0
  const PackedTensor t = PackedTensor::pack(x, RowBits::uniform(1));
  ASSERT_EQ(t.layout(), PackedLayout::kIndexList);
  const PackedTensor::RowIndices r0 = t.row_indices(0);
  ASSERT_NE(r0.i32, nullptr);
  EXPECT_EQ(r0.u16, nullptr);
  ASSERT_EQ(r0.size, 4);
  EXPECT_EQ(r0[1], 65535);
  EXPECT_EQ(r0[2], 65536);
  EXPECT_EQ(r0[3], 69999);
  EXPECT_EQ(t.row_indices(2).size, 1);
  // 5 indices * 4 + offsets 4 * 8 + params 3 * 8.
  EXPECT_EQ(t.nbytes(), 5 * 4 + 32 + 24);
  expect_index_list_equals_bitmap(x, RowBits::uniform(1), Granularity::kRow, "F 70000");
  at::manual_seed(2);
  const at::Tensor w = at::randn({5, f});
  const at::Tensor ref = at::linear(x * (x == 1.0f).to(at::kFloat), w);
  EXPECT_TRUE(at::allclose(packed_linear(t, w), ref, 1e-5, 1e-5));
}

TEST(PackedIndexList, EdgeCases) {
  // Empty matrices stay bitmaps (an index list would still cost its offsets).
  const PackedTensor e = PackedTensor::pack(at::zeros({0, 5000}), RowBits::uniform(1));
  EXPECT_EQ(e.layout(), PackedLayout::kBitmap);
  EXPECT_EQ(e.nbytes(), 0);
  EXPECT_EQ(e.decode().sizes(), (std::vector<int64_t>{0, 5000}));
  // All-zero matrix: lo == hi == 0, no indices; decodes to zeros.
  const PackedTensor z = PackedTensor::pack(at::zeros({7, 3000}), RowBits::uniform(1));
  ASSERT_EQ(z.layout(), PackedLayout::kIndexList);
  EXPECT_EQ(z.num_index_entries(), 0);
  EXPECT_EQ(z.nbytes(), 8 * 8 + 7 * 8);
  EXPECT_TRUE(at::equal(z.decode(), at::zeros({7, 3000})));
  // All ones: lo == hi == 1, codes 0, decodes to ones.
  const PackedTensor o = PackedTensor::pack(at::ones({7, 3000}), RowBits::uniform(1));
  ASSERT_EQ(o.layout(), PackedLayout::kIndexList);
  EXPECT_EQ(o.num_index_entries(), 0);
  EXPECT_TRUE(at::equal(o.decode(), at::ones({7, 3000})));
  EXPECT_TRUE(at::equal(o.codes_as_int(), at::zeros({7, 3000}, at::kInt)));
  // Per-layout accessors name the layout in their error.
  EXPECT_THROW(o.row_data(0), c10::Error);
  EXPECT_THROW(o.row_indices(7), c10::Error);
  EXPECT_EQ(o.row_bits(6), 1);
  const PackedTensor b = PackedTensor::pack(at::ones({2, 8}), RowBits::uniform(1));
  ASSERT_EQ(b.layout(), PackedLayout::kBitmap);
  EXPECT_THROW(b.row_indices(0), c10::Error);
  EXPECT_EQ(b.num_index_entries(), -1);
  try {
    o.row_data(0);
  } catch (const c10::Error& err) {
    EXPECT_NE(std::string(err.what_without_backtrace()).find("kIndexList"), std::string::npos);
  }
}

TEST(PackedIndexList, ConcatRowsEqualsPackingTheWhole) {
  const at::Tensor sparse = sparse_binary(90, 1433, 0.013, 7);
  const at::Tensor dense = sparse_binary(30, 1433, 0.5, 8);
  const std::vector<std::pair<std::string, at::Tensor>> inputs = {
      {"sparse", sparse},
      {"sparse with a dense chunk",
       at::cat({sparse.narrow(0, 0, 40), dense.narrow(0, 0, 5), sparse.narrow(0, 40, 50)})},
      {"mostly dense", at::cat({dense, sparse.narrow(0, 0, 5)})}};
  for (const auto& [name, x] : inputs) {
    for (PackLayoutChoice choice : {PackLayoutChoice::kAuto, PackLayoutChoice::kBitmap}) {
      SCOPED_TRACE(name + (choice == PackLayoutChoice::kAuto ? " auto" : " bitmap"));
      const PackedTensor whole =
          PackedTensor::pack(x, RowBits::uniform(1), Granularity::kRow, choice);
      // Chunks of 17 rows, each packed with the automatic layout (some bitmaps, some lists).
      std::vector<PackedTensor> parts;
      for (int64_t r = 0; r < x.size(0); r += 17) {
        parts.push_back(PackedTensor::pack(x.narrow(0, r, std::min<int64_t>(17, x.size(0) - r)),
                                           RowBits::uniform(1)));
      }
      const PackedTensor cat = PackedTensor::concat_rows(std::move(parts), choice);
      EXPECT_EQ(cat.layout(), whole.layout());
      EXPECT_EQ(cat.nbytes(), whole.nbytes());
      EXPECT_EQ(cat.code_bytes(), whole.code_bytes());
      EXPECT_TRUE(at::equal(cat.codes_as_int(), whole.codes_as_int()));
      EXPECT_TRUE(bitwise_equal(cat.decode(), whole.decode()));
      for (int64_t r = 0; r < x.size(0); ++r) {
        ASSERT_EQ(cat.row_scale(r), whole.row_scale(r));
        ASSERT_EQ(cat.row_lo(r), whole.row_lo(r));
      }
    }
  }
  EXPECT_EQ(PackedTensor::pack(sparse, RowBits::uniform(1)).layout(), PackedLayout::kIndexList);
  EXPECT_EQ(PackedTensor::pack(inputs[2].second, RowBits::uniform(1)).layout(),
            PackedLayout::kBitmap);
}

TEST(PackedIndexList, LinearMatchesAtenOnTheDecodedMatrix) {
  at::manual_seed(5);
  const int64_t n = 301, f = 1433;
  const std::vector<std::pair<std::string, at::Tensor>> inputs = {
      {"binary", sparse_binary(n, f, 0.013, 1)},
      {"shifted", sparse_valued(n, f, 0.013, 2, /*shifted=*/true)}};
  int tested = 0;
  for (const auto& [name, x] : inputs) {
    for (Granularity gran : kAllGranularities) {
      for (const RowBits& rows :
           {RowBits::uniform(1), RowBits{random_groups(n, 3, 4), {1, 1, 1}}}) {
        const PackedTensor t = PackedTensor::pack(x, rows, gran);
        if (t.layout() != PackedLayout::kIndexList) continue;  // kTensor of shifted: dense
        ++tested;
        const at::Tensor xhat =
            PackedTensor::pack(x, rows, gran, PackLayoutChoice::kBitmap).decode();
        for (int64_t out : {1, 16, 64, 67}) {
          const std::string what = name + " " + granularity_name(gran) + " groups " +
                                   std::to_string(rows.num_groups()) + " out " +
                                   std::to_string(out);
          const at::Tensor w = at::randn({out, f});
          const at::Tensor b = at::randn({out});
          const double atol = 1e-5 * at::mm(xhat.abs(), w.abs().t()).max().item<double>() + 1e-6;
          EXPECT_TRUE(at::allclose(packed_linear(t, w, b), at::linear(xhat, w, b), 1e-4, atol))
              << what << ": max diff "
              << (packed_linear(t, w, b) - at::linear(xhat, w, b)).abs().max().item<float>();
          EXPECT_TRUE(at::allclose(packed_linear(t, w), at::linear(xhat, w), 1e-4, atol)) << what;
        }
      }
    }
  }
  // Binary: every granularity and grouping; shifted: per-row ranges (lo != 0 rows).
  EXPECT_EQ(tested, 8);
  EXPECT_EQ(PackedTensor::pack(inputs[1].second, RowBits::uniform(1)).layout(),
            PackedLayout::kIndexList);
}

TEST(PackedIndexList, LinearSameWithOneAndTwoThreads) {
  const PackedTensor t =
      PackedTensor::pack(sparse_binary(2000, 1433, 0.013, 9), RowBits::uniform(1));
  ASSERT_EQ(t.layout(), PackedLayout::kIndexList);
  at::manual_seed(1);
  const at::Tensor w = at::randn({32, 1433}, at::requires_grad());
  at::Tensor y[2];
  for (int threads : {1, 2}) {
    ThreadGuard guard(threads);
    y[threads - 1] = packed_linear(t, w);
  }
  EXPECT_TRUE(bitwise_equal(y[0], y[1]));  // each row summed by one thread, in index order
  EXPECT_FALSE(y[0].requires_grad());
  EXPECT_THROW(packed_linear(t, at::randn({4, 1432})), c10::Error);
}

TEST(PackedIndexList, SpmmMatchesDenseAdjacency) {
  const int64_t n = 120;
  const CsrGraph g = random_graph(n, 5, 3, /*isolated=*/3, /*weighted=*/true);
  const at::Tensor a_w = dense_adjacency(g);
  const at::Tensor a_1 = dense_adjacency(g.with_weights(at::ones({g.num_edges()})));
  int tested = 0;
  for (int64_t f : {700, 1433}) {
    const std::vector<std::pair<std::string, at::Tensor>> inputs = {
        {"binary", sparse_binary(n, f, 0.013, f)},
        {"shifted", sparse_valued(n, f, 0.013, f + 1, /*shifted=*/true)}};
    for (const auto& [name, x] : inputs) {
      for (Granularity gran : kAllGranularities) {
        for (const RowBits& rows :
             {RowBits::uniform(1), RowBits{random_groups(n, 3, f), {1, 1, 1}}}) {
          const PackedTensor t = PackedTensor::pack(x, rows, gran);
          if (t.layout() != PackedLayout::kIndexList) continue;
          ++tested;
          const at::Tensor xhat =
              PackedTensor::pack(x, rows, gran, PackLayoutChoice::kBitmap).decode();
          const std::string what = name + " F " + std::to_string(f) + " " + granularity_name(gran) +
                                   " groups " + std::to_string(rows.num_groups());
          const at::Tensor out_w = packed_spmm(g, t);
          expect_spmm_close(out_w, a_w, xhat, what + " weighted");
          expect_spmm_close(packed_spmm(g.indptr(), g.indices(), at::Tensor(), t), a_1, xhat,
                            what + " unweighted");
          EXPECT_TRUE(at::equal(out_w.narrow(0, n - 3, 3), at::zeros({3, f}))) << what;
        }
      }
    }
  }
  EXPECT_EQ(tested, 16);
}

TEST(PackedIndexList, SpmmDeterministicAndChecked) {
  const CsrGraph g = random_graph(1500, 10, 4, 2, true);
  const PackedTensor t =
      PackedTensor::pack(sparse_binary(1500, 1433, 0.013, 5), RowBits::uniform(1));
  ASSERT_EQ(t.layout(), PackedLayout::kIndexList);
  at::Tensor y[2];
  for (int threads : {1, 2}) {
    ThreadGuard guard(threads);
    y[threads - 1] = packed_spmm(g, t);
  }
  EXPECT_TRUE(bitwise_equal(y[0], y[1]));
  const at::Tensor ip = at::tensor({0, 2, 3}, at::kLong);
  EXPECT_NO_THROW(packed_spmm(ip, at::tensor({0, 1499, 1}, at::kLong), {}, t));
  EXPECT_THROW(packed_spmm(ip, at::tensor({0, 1500, 1}, at::kLong), {}, t), c10::Error);
  EXPECT_THROW(packed_spmm(ip, at::tensor({0, -1, 1}, at::kLong), {}, t), c10::Error);
}

}  // namespace
}  // namespace qgnn
