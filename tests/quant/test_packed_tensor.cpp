// PackedTensor against an independent scalar reference of the formulas in
// qgnn/quant/packed_tensor.h (std::nearbyint, bit-by-bit packing), plus hand-computed cases.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/Half.h>
#include <gtest/gtest.h>

#include <cfenv>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "ops/cpu/kernels.h"
#include "qgnn/quant/packed_tensor.h"
#include "testing/graphs.h"
#include "testing/guards.h"
#include "testing/packed.h"

namespace qgnn {
namespace {

using testing::bitwise_equal;
using testing::granularity_name;
using testing::kAllGranularities;
using testing::kPackWidths;
using testing::random_groups;

using testing::IsaGuard;
using testing::isas;
using testing::ThreadGuard;

uint32_t bits_of(float v) {
  uint32_t u;
  std::memcpy(&u, &v, 4);
  return u;
}

// Rows of different scales and offsets, some constant, seeded.
at::Tensor test_matrix(int64_t n, int64_t f, uint64_t seed, bool constant_rows = true) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> unit(-4.0f, 4.0f);
  at::Tensor x = at::empty({n, f});
  float* p = x.data_ptr<float>();
  for (int64_t r = 0; r < n; ++r) {
    const float scale = std::exp(unit(rng)), shift = unit(rng) * 3;
    const bool constant = constant_rows && r % 11 == 5;
    for (int64_t k = 0; k < f; ++k) p[r * f + k] = constant ? shift : shift + scale * normal(rng);
  }
  return x;
}

// ---- the reference (scalar, written from the header's formulas) ----
struct Reference {
  at::Tensor codes;              // [N, F] int32
  at::Tensor xhat;               // [N, F] float32
  std::vector<float> scale, lo;  // per row (1, 0 for 16/32-bit rows)
  std::vector<int> bits;         // per row
};

Reference reference(const at::Tensor& x_in, const RowBits& rows, Granularity gran,
                    Rounding rounding = Rounding::kNearest) {
  const at::Tensor x = x_in.contiguous();
  const int64_t n = x.size(0), f = x.size(1);
  const float* xp = x.data_ptr<float>();
  Reference ref;
  ref.codes = at::zeros({n, f}, at::kInt);
  ref.xhat = at::zeros({n, f});
  ref.scale.assign(n, 1.0f);
  ref.lo.assign(n, 0.0f);
  ref.bits.resize(n);
  const int64_t g = rows.num_groups();
  std::vector<int64_t> gid(n, 0);
  for (int64_t r = 0; r < n; ++r) {
    if (rows.row_group.defined()) gid[r] = rows.row_group[r].item<int64_t>();
    ref.bits[r] = rows.group_bits[gid[r]];
  }
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> glo(g, inf), ghi(g, -inf);
  float tlo = inf, thi = -inf;
  for (int64_t r = 0; r < n; ++r) {
    if (ref.bits[r] > 8) continue;
    for (int64_t k = 0; k < f; ++k) {
      const float v = xp[r * f + k];
      glo[gid[r]] = std::min(glo[gid[r]], v);
      ghi[gid[r]] = std::max(ghi[gid[r]], v);
      tlo = std::min(tlo, v);
      thi = std::max(thi, v);
    }
  }
  for (int64_t r = 0; r < n; ++r) {
    const int b = ref.bits[r];
    for (int64_t k = 0; k < f; ++k) {
      const float v = xp[r * f + k];
      if (b == 32) {
        ref.codes[r][k] = static_cast<int32_t>(bits_of(v));
        ref.xhat[r][k] = v;
      } else if (b == 16) {
        const c10::Half h(v);
        ref.codes[r][k] = static_cast<int32_t>(h.x);
        ref.xhat[r][k] = static_cast<float>(h);
      }
    }
    if (b > 8 || f == 0) continue;
    float lo, hi;
    if (gran == Granularity::kRow) {
      lo = inf;
      hi = -inf;
      for (int64_t k = 0; k < f; ++k) {
        lo = std::min(lo, xp[r * f + k]);
        hi = std::max(hi, xp[r * f + k]);
      }
    } else if (gran == Granularity::kBucket) {
      lo = glo[gid[r]];
      hi = ghi[gid[r]];
    } else {
      lo = tlo;
      hi = thi;
    }
    const float maxq = static_cast<float>((1 << b) - 1);
    const float scale = hi == lo ? 1.0f : (hi - lo) / maxq;
    ref.scale[r] = scale;
    ref.lo[r] = lo;
    for (int64_t k = 0; k < f; ++k) {
      const float t = (xp[r * f + k] - lo) / scale;
      float q = std::min(std::max(std::nearbyint(t), 0.0f), maxq);
      // kNonzero: in a row whose range starts at 0, a non-zero value keeps a non-zero code.
      if (rounding == Rounding::kNonzero && lo == 0.0f && xp[r * f + k] != 0.0f) {
        q = std::max(q, 1.0f);
      }
      volatile float prod = q * scale;  // no FMA contraction: two roundings
      ref.codes[r][k] = static_cast<int32_t>(q);
      ref.xhat[r][k] = lo + prod;
    }
  }
  return ref;
}

// Every row's bytes, concatenated (the stored codes as the kernels see them).
std::vector<uint8_t> row_bytes_of(const PackedTensor& t) {
  std::vector<uint8_t> out;
  for (int64_t r = 0; r < t.num_rows(); ++r) {
    const int64_t nb = (t.num_cols() * t.row_bits(r) + 7) / 8;
    out.insert(out.end(), t.row_data(r), t.row_data(r) + nb);
  }
  return out;
}

// Checks t against the reference: codes, parameters, decoded values (bitwise), the error
// bound, the code range, the row layout and zero padding bits.
void check_against_reference(const at::Tensor& x, const RowBits& rows, Granularity gran,
                             const std::string& what) {
  SCOPED_TRACE(what);
  const PackedTensor t = PackedTensor::pack(x, rows, gran);
  const Reference ref = reference(x, rows, gran);
  const int64_t n = x.size(0), f = x.size(1);
  ASSERT_EQ(t.num_rows(), n);
  ASSERT_EQ(t.num_cols(), f);
  // The stored bytes against the reference's own packing of its codes (not read back
  // through the library's decoder).
  const at::Tensor ref_codes = ref.codes.contiguous();
  for (int64_t r = 0; r < n; ++r) {
    const int32_t* rc = ref_codes.data_ptr<int32_t>() + r * f;
    if (t.layout() == PackedLayout::kBitmap) {
      const std::vector<uint8_t> want = testing::pack_lsb_first(rc, f, ref.bits[r]);
      const std::vector<uint8_t> got(t.row_data(r), t.row_data(r) + want.size());
      ASSERT_EQ(got, want) << "stored bytes of row " << r << " (" << ref.bits[r] << " bits)";
    } else {  // index list: the sorted columns of the 1-codes
      std::vector<int64_t> want, got;
      for (int64_t k = 0; k < f; ++k) {
        if (rc[k] == 1) want.push_back(k);
      }
      const PackedTensor::RowIndices idx = t.row_indices(r);
      for (int64_t i = 0; i < idx.size; ++i) got.push_back(idx[i]);
      ASSERT_EQ(got, want) << "index list of row " << r;
    }
  }
  const at::Tensor codes = t.codes_as_int();
  const at::Tensor xhat = t.decode();
  ASSERT_TRUE(at::equal(codes, ref.codes)) << "decoded codes differ";
  ASSERT_TRUE(bitwise_equal(xhat, ref.xhat))
      << "decoded values differ, max " << (xhat - ref.xhat).abs().max().item<float>();
  const at::Tensor xc = x.contiguous();
  for (int64_t r = 0; r < n; ++r) {
    const int b = ref.bits[r];
    ASSERT_EQ(t.row_bits(r), b) << "row " << r;
    ASSERT_EQ(t.row_scale(r), ref.scale[r]) << "row " << r;
    ASSERT_EQ(t.row_lo(r), ref.lo[r]) << "row " << r;
    if (r + 1 < n) {
      ASSERT_EQ(t.row_data(r + 1) - t.row_data(r), (f * b + 7) / 8) << "row " << r;
    }
    if (b > 8) continue;
    const int32_t* c = codes.data_ptr<int32_t>() + r * f;
    const float* xr = xc.data_ptr<float>() + r * f;
    const float* hr = xhat.data_ptr<float>() + r * f;
    const float bound =
        ref.scale[r] / 2 * (1 + 1e-5f) + 4 * std::numeric_limits<float>::epsilon() *
                                             std::max(std::abs(ref.lo[r]), std::abs(xr[0]) + 1.0f);
    for (int64_t k = 0; k < f; ++k) {
      ASSERT_GE(c[k], 0);
      ASSERT_LE(c[k], (1 << b) - 1);
      ASSERT_LE(std::abs(xr[k] - hr[k]), bound) << "row " << r << " col " << k;
    }
    if ((f * b) % 8 != 0) {  // padding bits of the last byte are zero
      const uint8_t last = t.row_data(r)[(f * b + 7) / 8 - 1];
      ASSERT_EQ(last >> ((f * b) % 8), 0) << "row " << r;
    }
  }
}

TEST(PackedTensor, HandComputedTwoBitRow) {
  // x = [[0, 1, 2, 3]] at 2 bits per row: lo 0, scale 1, codes 0 1 2 3, LSB-first:
  // 00 | 01 << 2 | 10 << 4 | 11 << 6 = 0b11100100 = 0xE4.
  const at::Tensor x = at::tensor({0.0f, 1.0f, 2.0f, 3.0f}).view({1, 4});
  const PackedTensor t = PackedTensor::pack(x, RowBits::uniform(2), Granularity::kRow);
  EXPECT_EQ(t.code_bytes(), 1);
  EXPECT_EQ(t.row_data(0)[0], 0xE4);
  EXPECT_EQ(t.row_scale(0), 1.0f);
  EXPECT_EQ(t.row_lo(0), 0.0f);
  EXPECT_TRUE(at::equal(t.decode(), x));
  EXPECT_EQ(t.nbytes(), 1 + 8);
  EXPECT_DOUBLE_EQ(t.average_bits(), 2.0);
}

TEST(PackedTensor, NonzeroRoundingByHand) {
  // x = [[0, 0.1, 0.4, 3]] at 2 bits: lo 0, scale 1. Nearest: codes 0 0 0 3 (0.1 and 0.4
  // vanish); nonzero: 0 1 1 3, and the zero stays exactly 0.
  const at::Tensor x = at::tensor({0.0f, 0.1f, 0.4f, 3.0f}).reshape({1, 4});
  const PackedTensor nearest = PackedTensor::pack(x, RowBits::uniform(2));
  EXPECT_TRUE(
      at::equal(nearest.codes_as_int(), at::tensor({0, 0, 0, 3}, at::kInt).reshape({1, 4})));
  QuantOptions nz;
  nz.rounding = Rounding::kNonzero;
  const PackedTensor kept =
      PackedTensor::pack(x, RowBits::uniform(2), Granularity::kRow, PackLayoutChoice::kAuto, nz);
  EXPECT_TRUE(at::equal(kept.codes_as_int(), at::tensor({0, 1, 1, 3}, at::kInt).reshape({1, 4})));
  EXPECT_TRUE(at::equal(kept.decode(), at::tensor({0.0f, 1.0f, 1.0f, 3.0f}).reshape({1, 4})));
  // A row without a zero in its range (lo = -1) rounds as nearest: 0.1 -> code 1 either way.
  const at::Tensor y = at::tensor({-1.0f, 0.0f, 0.1f, 2.0f}).reshape({1, 4});
  EXPECT_TRUE(at::equal(
      PackedTensor::pack(y, RowBits::uniform(2), Granularity::kRow, PackLayoutChoice::kAuto, nz)
          .codes_as_int(),
      PackedTensor::pack(y, RowBits::uniform(2)).codes_as_int()));
}

TEST(PackedTensor, NonzeroRoundingMatchesReferenceEveryWidthIsaAndGranularity) {
  // Sparse non-negative rows (TF-IDF-like: 85% zeros, magnitudes over three decades), some
  // rows shifted negative (lo != 0) and some all zero.
  const std::vector<int> gb = {1, 2, 3, 4, 5, 6, 7, 8, 16, 32};
  QuantOptions nz;
  nz.rounding = Rounding::kNonzero;
  for (int64_t f : kPackWidths) {
    const int64_t n = 41;
    torch::manual_seed(5 + f);
    at::Tensor x =
        (torch::rand({n, f}) < 0.15).to(torch::kFloat) * torch::exp(torch::rand({n, f}) * 7);
    for (int64_t r = 0; r < n; r += 7) x[r].sub_(1.0f);
    x[3].zero_();
    const RowBits rows{random_groups(n, static_cast<int64_t>(gb.size()), 17 + f), gb};
    for (Granularity gran : kAllGranularities) {
      SCOPED_TRACE("F " + std::to_string(f) + " " + granularity_name(gran));
      const Reference ref = reference(x, rows, gran, Rounding::kNonzero);
      std::vector<at::Tensor> codes;
      for (cpu::Isa isa : isas()) {
        IsaGuard guard(isa);
        const PackedTensor t = PackedTensor::pack(x, rows, gran, PackLayoutChoice::kBitmap, nz);
        codes.push_back(t.codes_as_int());
        ASSERT_TRUE(at::equal(codes.back(), ref.codes));
        ASSERT_TRUE(bitwise_equal(t.decode(), ref.xhat));
        // fake_quantize is pack + decode, bit for bit, with the same options.
        ASSERT_TRUE(bitwise_equal(fake_quantize(x, rows, gran, nz), ref.xhat));
      }
      // The property itself: where lo == 0, zeros decode to 0 and non-zeros never do.
      for (int64_t r = 0; r < n; ++r) {
        if (ref.bits[r] > 8 || ref.lo[r] != 0.0f) continue;
        const at::Tensor nonzero = x[r].ne(0);
        EXPECT_TRUE(codes[0][r].masked_select(nonzero).ge(1).all().item<bool>()) << "row " << r;
        EXPECT_TRUE(ref.xhat[r].masked_select(nonzero.logical_not()).eq(0).all().item<bool>());
      }
    }
  }
}

TEST(PackedTensor, ColumnScalesStoreTfidfLosslesslyAtOneBit) {
  // x = B * idf with a binary B: column_scales(x) = idf, and x / idf is binary, so 1 bit per
  // value (row ranges [0, 1]) reproduces x exactly; decode, packed_linear and packed_spmm
  // apply the scales.
  const int64_t n = 30, f = 50;
  torch::manual_seed(9);
  const at::Tensor b = (torch::rand({n, f}) < 0.2).to(torch::kFloat);
  b.select(1, 7).zero_();  // an unused column: scale 1
  const at::Tensor idf = torch::log(torch::rand({f}) * 40 + 1.5).to(torch::kFloat);
  const at::Tensor x = b * idf.unsqueeze(0);
  QuantOptions opt;
  opt.column_scale = column_scales(x);
  EXPECT_TRUE(at::allclose(opt.column_scale.narrow(0, 0, 7), idf.narrow(0, 0, 7)));
  EXPECT_EQ(opt.column_scale[7].item<float>(), 1.0f);
  for (PackLayoutChoice layout : {PackLayoutChoice::kAuto, PackLayoutChoice::kBitmap}) {
    const PackedTensor t =
        PackedTensor::pack(x, RowBits::uniform(1), Granularity::kRow, layout, opt);
    EXPECT_TRUE(at::allclose(t.decode(), x, 1e-6, 0)) << (t.decode() - x).abs().max().item<float>();
    const PackedTensor plain =
        PackedTensor::pack(x, RowBits::uniform(1), Granularity::kRow, layout);
    EXPECT_EQ(t.nbytes(), plain.nbytes() + 4 * f);  // the scales' bytes
    EXPECT_TRUE(
        bitwise_equal(fake_quantize(x, RowBits::uniform(1), Granularity::kRow, opt), t.decode()));
    const at::Tensor w = torch::randn({6, f});
    EXPECT_TRUE(at::allclose(packed_linear(t, w), at::matmul(t.decode(), w.t()), 1e-4, 1e-4));
    const CsrGraph g = testing::random_graph(n, 3.0, 4);
    EXPECT_TRUE(at::allclose(packed_spmm(g, t), at::matmul(testing::dense_adjacency(g), t.decode()),
                             1e-4, 1e-4));
  }
  // Column scales on a 32-bit tensor are ignored (nothing is quantized).
  const PackedTensor full =
      PackedTensor::pack(x, RowBits::uniform(32), Granularity::kRow, PackLayoutChoice::kAuto, opt);
  EXPECT_FALSE(full.column_scale().defined());
  EXPECT_TRUE(at::equal(full.decode(), x));
  QuantOptions bad;
  bad.column_scale = at::zeros({f});
  EXPECT_THROW(
      PackedTensor::pack(x, RowBits::uniform(2), Granularity::kRow, PackLayoutChoice::kAuto, bad),
      c10::Error);
}

TEST(PackedTensor, RoundsHalfToEven) {
  // lo 0, hi 3, scale 1 at 2 bits: 0.5 -> 0, 1.5 -> 2, 2.5 -> 2.
  const at::Tensor x = at::tensor({0.0f, 0.5f, 1.5f, 2.5f, 3.0f}).view({1, 5});
  const PackedTensor t = PackedTensor::pack(x, RowBits::uniform(2), Granularity::kRow);
  EXPECT_TRUE(at::equal(t.codes_as_int(), at::tensor({0, 0, 2, 2, 3}, at::kInt).view({1, 5})));
  // 0b10100000 | 0b11 << 8: codes 0, 0, 2, 2 in byte 0 and 3 in byte 1.
  EXPECT_EQ(t.row_data(0)[0], 0xA0);
  EXPECT_EQ(t.row_data(0)[1], 0x03);
}

TEST(PackedTensor, NbytesHandComputed) {
  at::manual_seed(0);
  {  // N=3, F=10, 3 bits, kRow: codes 3 * ceil(30 / 8) = 12, params 3 * 8 = 24.
    const PackedTensor t = PackedTensor::pack(at::randn({3, 10}), RowBits::uniform(3));
    EXPECT_EQ(t.code_bytes(), 12);
    EXPECT_EQ(t.nbytes(), 36);
    EXPECT_DOUBLE_EQ(t.average_bits(), 8.0 * 12 / 30);
  }
  {  // N=5, F=7, 8 bits, kTensor: codes 35, one (scale, lo) = 8.
    const PackedTensor t =
        PackedTensor::pack(at::randn({5, 7}), RowBits::uniform(8), Granularity::kTensor);
    EXPECT_EQ(t.nbytes(), 35 + 8);
  }
  {  // N=4, F=5, groups [0, 1, 1, 0] with bits {4, 2}, kBucket: codes 2 * ceil(20 / 8) +
     // 2 * ceil(10 / 8) = 6 + 4; row offsets 5 * 8 = 40; row groups 4; group bits 2;
     // params 2 * 8 = 16 -> 72.
    RowBits rows{at::tensor({0, 1, 1, 0}, at::kByte), {4, 2}};
    const PackedTensor t = PackedTensor::pack(at::randn({4, 5}), rows, Granularity::kBucket);
    EXPECT_EQ(t.code_bytes(), 10);
    EXPECT_EQ(t.nbytes(), 72);
  }
  {  // Same grouping, kRow: params 4 * 8 = 32 -> 10 + 40 + 4 + 2 + 32 = 88.
    RowBits rows{at::tensor({0, 1, 1, 0}, at::kByte), {4, 2}};
    const PackedTensor t = PackedTensor::pack(at::randn({4, 5}), rows, Granularity::kRow);
    EXPECT_EQ(t.nbytes(), 88);
  }
  {  // 32 bits: the float bytes alone; 16 bits: 2 bytes a value.
    EXPECT_EQ(PackedTensor::pack(at::randn({2, 3}), RowBits::uniform(32)).nbytes(), 24);
    EXPECT_EQ(PackedTensor::pack(at::randn({2, 3}), RowBits::uniform(16)).nbytes(), 12);
  }
  {  // Groups {32, 1}, rows [1, 0, 1], F = 9, kTensor: codes 36 + 2 * 2 = 40; offsets 32;
     // groups 3; bits 2; params 2 * 8 = 16 -> 93.
    RowBits rows{at::tensor({1, 0, 1}, at::kByte), {32, 1}};
    const PackedTensor t = PackedTensor::pack(at::randn({3, 9}), rows, Granularity::kTensor);
    EXPECT_EQ(t.nbytes(), 93);
  }
}

TEST(PackedTensor, MatchesReferenceEveryWidthAndGranularity) {
  for (int bits = 1; bits <= 8; ++bits) {
    for (int64_t f : kPackWidths) {
      const at::Tensor x = test_matrix(23, f, 1000 + bits * 37 + f);
      for (Granularity gran : kAllGranularities) {
        check_against_reference(x, RowBits::uniform(bits), gran,
                                "bits " + std::to_string(bits) + " F " + std::to_string(f) + " " +
                                    granularity_name(gran));
      }
    }
  }
}

TEST(PackedTensor, MixedBitRowGroups) {
  const std::vector<std::vector<int>> configs = {{4, 3, 2}, {8, 1, 16, 32, 5}, {7, 6}, {16, 32}};
  for (const auto& gb : configs) {
    for (int64_t f : kPackWidths) {
      const int64_t n = 41;
      const at::Tensor x = test_matrix(n, f, 77 + f);
      RowBits rows{random_groups(n, static_cast<int64_t>(gb.size()), 5 + f), gb};
      for (Granularity gran : kAllGranularities) {
        check_against_reference(x, rows, gran,
                                "groups of " + std::to_string(gb.size()) + " F " +
                                    std::to_string(f) + " " + granularity_name(gran));
      }
    }
  }
}

TEST(PackedTensor, ConstantRangesGiveScaleOneAndLo) {
  for (int bits = 1; bits <= 8; ++bits) {
    for (Granularity gran : kAllGranularities) {
      const at::Tensor x = at::full({3, 9}, -2.75f);
      const PackedTensor t = PackedTensor::pack(x, RowBits::uniform(bits), gran);
      for (int64_t r = 0; r < 3; ++r) {
        EXPECT_EQ(t.row_scale(r), 1.0f);
        EXPECT_EQ(t.row_lo(r), -2.75f);
      }
      EXPECT_TRUE(at::equal(t.codes_as_int(), at::zeros({3, 9}, at::kInt)));
      EXPECT_TRUE(at::equal(t.decode(), x));
    }
  }
  // kRow: only the constant row gets scale 1.
  const at::Tensor x = at::tensor({1.0f, 1.0f, 1.0f, 0.0f, 2.0f, 4.0f}).view({2, 3});
  const PackedTensor t = PackedTensor::pack(x, RowBits::uniform(2));
  EXPECT_EQ(t.row_scale(0), 1.0f);
  EXPECT_EQ(t.row_scale(1), 4.0f / 3.0f);
  EXPECT_TRUE(at::equal(t.decode()[0], x[0]));
}

TEST(PackedTensor, EncodeDecodeEncodeIsIdempotent) {
  for (int bits = 1; bits <= 8; ++bits) {
    for (int64_t f : {7, 33, 257}) {
      for (Granularity gran : kAllGranularities) {
        SCOPED_TRACE("bits " + std::to_string(bits) + " F " + std::to_string(f) + " " +
                     granularity_name(gran));
        RowBits rows{random_groups(19, 3, 9), {bits, std::max(1, bits - 1), 16}};
        const at::Tensor x = test_matrix(19, f, 300 + bits + f);
        const PackedTensor a = PackedTensor::pack(x, rows, gran);
        const at::Tensor xa = a.decode();
        const PackedTensor b = PackedTensor::pack(xa, rows, gran);
        const at::Tensor xb = b.decode();
        EXPECT_TRUE(at::equal(a.codes_as_int(), b.codes_as_int()));
        // The re-measured range hi' = lo + (2^b - 1) scale may differ from hi in the last
        // bit, and so may scale' and x^ (by at most a few ulp of the range); from then on
        // the codes and values are fixed points.
        const float range = (x.max() - x.min()).item<float>();
        EXPECT_LE((xa - xb).abs().max().item<float>(),
                  8 * 1.2e-7f * (range + x.abs().max().item<float>()));
        const PackedTensor c = PackedTensor::pack(xb, rows, gran);
        EXPECT_TRUE(at::equal(c.codes_as_int(), a.codes_as_int()));
        EXPECT_TRUE(bitwise_equal(c.decode(), xb));
      }
    }
  }
}

TEST(PackedTensor, HalfEqualsAtenHalfRoundTrip) {
  at::manual_seed(3);
  // Normal values, values around half's subnormal range and its overflow, exact ties.
  at::Tensor x =
      at::cat({at::randn({4, 33}) * 1000, at::randn({4, 33}) * 1e-6f, at::randn({4, 33}) * 3e4f,
               (at::arange(132, at::kFloat) * (1.0f / 2048) + 1).view({4, 33})});
  for (int64_t f : kPackWidths) {
    const at::Tensor xf = x.narrow(1, 0, std::min<int64_t>(f, 33)).contiguous();
    const PackedTensor t = PackedTensor::pack(xf, RowBits::uniform(16));
    EXPECT_TRUE(bitwise_equal(t.decode(), xf.to(at::kHalf).to(at::kFloat))) << "F " << f;
    EXPECT_EQ(t.nbytes(), 2 * xf.numel());
  }
  check_against_reference(x, RowBits::uniform(16), Granularity::kRow, "half");
}

TEST(PackedTensor, Float32IsExact) {
  at::manual_seed(4);
  at::Tensor x = at::randn({5, 17}) * 1e30f;
  x[0][0] = -0.0f;
  x[1][1] = std::numeric_limits<float>::denorm_min();
  x[2][2] = -std::numeric_limits<float>::max();
  const PackedTensor t = PackedTensor::pack(x, RowBits::uniform(32));
  EXPECT_TRUE(bitwise_equal(t.decode(), x));
  EXPECT_EQ(t.nbytes(), 4 * x.numel());
  EXPECT_DOUBLE_EQ(t.average_bits(), 32.0);
}

TEST(PackedTensor, SimdPathsGiveIdenticalBytes) {
  const std::vector<int> gb = {1, 2, 3, 4, 5, 6, 7, 8, 16, 32};
  for (int64_t f : kPackWidths) {
    const int64_t n = 57;
    const at::Tensor x = test_matrix(n, f, 11 + f);
    RowBits rows{random_groups(n, static_cast<int64_t>(gb.size()), 13 + f), gb};
    for (Granularity gran : kAllGranularities) {
      std::vector<std::vector<uint8_t>> bytes;
      std::vector<at::Tensor> decoded;
      for (cpu::Isa isa : isas()) {
        IsaGuard guard(isa);
        const PackedTensor t = PackedTensor::pack(x, rows, gran);
        bytes.push_back(row_bytes_of(t));
        decoded.push_back(t.decode());
      }
      for (size_t i = 1; i < bytes.size(); ++i) {
        EXPECT_EQ(bytes[i], bytes[0]) << "F " << f << " " << granularity_name(gran);
        EXPECT_TRUE(bitwise_equal(decoded[i], decoded[0])) << "F " << f;
      }
    }
  }
}

TEST(PackedTensor, SameResultWithOneAndTwoThreads) {
  const int64_t n = 3001, f = 67;
  const at::Tensor x = test_matrix(n, f, 21);
  RowBits rows{random_groups(n, 3, 22), {4, 3, 2}};
  for (Granularity gran : kAllGranularities) {
    std::vector<uint8_t> bytes[2];
    at::Tensor decoded[2];
    for (int threads : {1, 2}) {
      ThreadGuard guard(threads);
      const PackedTensor t = PackedTensor::pack(x, rows, gran);
      bytes[threads - 1] = row_bytes_of(t);
      decoded[threads - 1] = t.decode();
    }
    EXPECT_EQ(bytes[0], bytes[1]);
    EXPECT_TRUE(bitwise_equal(decoded[0], decoded[1]));
  }
}

TEST(PackedTensor, StridedInputEqualsContiguous) {
  const at::Tensor base = test_matrix(33, 20, 8);
  const at::Tensor xt = base.t();  // [20, 33], not contiguous
  for (int bits : {2, 5, 8, 16}) {
    const PackedTensor a = PackedTensor::pack(xt, RowBits::uniform(bits));
    const PackedTensor b = PackedTensor::pack(xt.contiguous(), RowBits::uniform(bits));
    EXPECT_EQ(row_bytes_of(a), row_bytes_of(b));
  }
}

TEST(PackedTensor, DecodeRowsMatchesDecode) {
  const at::Tensor x = test_matrix(50, 19, 31);
  RowBits rows{random_groups(50, 3, 32), {3, 8, 16}};
  const PackedTensor t = PackedTensor::pack(x, rows, Granularity::kBucket);
  const at::Tensor full = t.decode();
  std::vector<float> buf(static_cast<size_t>(13 * 19));
  t.decode_rows(37, 50, buf.data());
  EXPECT_TRUE(bitwise_equal(at::from_blob(buf.data(), {13, 19}), full.narrow(0, 37, 13)));
  EXPECT_THROW(t.decode_rows(40, 51, buf.data()), c10::Error);
}

TEST(PackedTensor, EmptyShapes) {
  const PackedTensor a = PackedTensor::pack(at::zeros({0, 5}), RowBits::uniform(4));
  EXPECT_EQ(a.num_rows(), 0);
  EXPECT_EQ(a.decode().sizes(), (std::vector<int64_t>{0, 5}));
  EXPECT_EQ(a.nbytes(), 0);
  const PackedTensor b = PackedTensor::pack(at::zeros({3, 0}), RowBits::uniform(4));
  EXPECT_EQ(b.decode().sizes(), (std::vector<int64_t>{3, 0}));
  EXPECT_EQ(b.code_bytes(), 0);
}

TEST(PackedTensor, RejectsBadArguments) {
  const at::Tensor x = at::randn({4, 6});
  for (int bits : {0, 9, 12, 31, -1}) {
    EXPECT_THROW(PackedTensor::pack(x, RowBits::uniform(bits)), c10::Error) << bits;
  }
  EXPECT_THROW(PackedTensor::pack(x, RowBits{{}, {4, 2}}), c10::Error);
  EXPECT_THROW(PackedTensor::pack(x, RowBits{at::tensor({0, 1, 2, 0}, at::kByte), {4, 2}}),
               c10::Error);
  EXPECT_THROW(PackedTensor::pack(x, RowBits{at::tensor({0, 1, 1}, at::kByte), {4, 2}}),
               c10::Error);
  EXPECT_THROW(PackedTensor::pack(at::randn({24}), RowBits::uniform(4)), c10::Error);
  EXPECT_THROW(PackedTensor::pack(x.to(at::kDouble), RowBits::uniform(4)), c10::Error);
  for (Granularity gran : kAllGranularities) {
    at::Tensor bad = x.clone();
    bad[2][3] = std::numeric_limits<float>::quiet_NaN();
    EXPECT_THROW(PackedTensor::pack(bad, RowBits::uniform(4), gran), c10::Error);
    bad[2][3] = std::numeric_limits<float>::infinity();
    EXPECT_THROW(PackedTensor::pack(bad, RowBits::uniform(4), gran), c10::Error);
  }
  const PackedTensor t = PackedTensor::pack(x, RowBits::uniform(4));
  EXPECT_THROW(t.row_bits(4), c10::Error);
  EXPECT_THROW(PackedTensor().decode(), c10::Error);
}

}  // namespace
}  // namespace qgnn
