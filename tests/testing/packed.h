#pragma once
// Shared tables and checks for the packed-tensor tests.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "qgnn/quant/packed_tensor.h"

namespace qgnn::testing {

// Row widths that straddle every packing boundary (bytes, 32-bit words, SIMD lanes).
inline const std::vector<int64_t> kPackWidths = {1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 257};

// Every range granularity.
inline const std::vector<Granularity> kAllGranularities = {Granularity::kRow, Granularity::kBucket,
                                                           Granularity::kTensor};

inline std::string granularity_name(Granularity g) {
  return g == Granularity::kRow ? "row" : g == Granularity::kBucket ? "bucket" : "tensor";
}

// Reference bit packing, written from the layout in qgnn/quant/packed_tensor.h and not
// from the library: code k of a row occupies bits [k * bits, (k + 1) * bits) of the row,
// LSB-first (bit i of the code is bit (k * bits + i) % 8 of byte (k * bits + i) / 8); the
// row fills ceil(F * bits / 8) bytes and the padding bits are 0. For bits 16 and 32 this
// is the little-endian byte order of the half / float bit patterns.
//   codes: F codes, each in [0, 2^bits) (read as unsigned).
inline std::vector<uint8_t> pack_lsb_first(const int32_t* codes, int64_t f, int bits) {
  std::vector<uint8_t> out(static_cast<size_t>((f * bits + 7) / 8), 0);
  for (int64_t k = 0; k < f; ++k) {
    const uint32_t c = static_cast<uint32_t>(codes[k]);
    for (int i = 0; i < bits; ++i) {
      if ((c >> i) & 1u) {
        const int64_t bit = k * bits + i;
        out[static_cast<size_t>(bit / 8)] |= static_cast<uint8_t>(1u << (bit % 8));
      }
    }
  }
  return out;
}

// Checks out == a @ xhat elementwise within 1e-5 (|a| @ |xhat|) + 1e-5: float sums of
// ~deg terms in an order that differs from the dense product's.
inline void expect_spmm_close(const at::Tensor& out, const at::Tensor& a, const at::Tensor& xhat,
                              const std::string& what) {
  const at::Tensor ref = at::mm(a, xhat);
  const at::Tensor tol = at::mm(a.abs(), xhat.abs()) * 1e-5 + 1e-5;
  ASSERT_EQ(out.sizes(), ref.sizes()) << what;
  EXPECT_TRUE(((out - ref).abs() <= tol).all().item<bool>())
      << what << ": max abs diff " << (out - ref).abs().max().item<float>();
}

}  // namespace qgnn::testing
