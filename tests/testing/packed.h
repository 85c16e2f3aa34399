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
