#pragma once
// NPY / NPZ arrays (NumPy's formats) read and written through libzip.
#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <vector>

#include "qgnn/util/export.h"

namespace qgnn {

// One array as stored: its NumPy dtype string (e.g. "<i8", "<f4", "|b1") and a tensor
// holding the data in the matching ATen dtype (int64, float32, bool, ...), C order.
// Unsigned types ATen lacks are widened: u2 -> int32, u4 -> int64, u8 -> int64 (values
// above INT64_MAX are an error).
struct NpyArray {
  std::string descr;
  std::vector<int64_t> shape;
  at::Tensor data;
};

// Reads every member "<key>.npy" of an .npz archive (stored or deflated members, zip64
// extras allowed, as written by numpy.savez / savez_compressed). NPY versions 1, 2, 3;
// little-endian or byte-order-free dtypes among b1 u1 i1 i2 i4 i8 u2 u4 u8 f2 f4 f8;
// Fortran-ordered arrays are converted to C order.
//   path: file path.  returns: key -> array, keys without the ".npy" suffix; members
//   not named "*.npy" are skipped.
// Throws c10::Error with a one-line message "read_npz(<path>): <member>: <problem>" for a
// missing / unreadable / truncated file, a corrupt member, an unsupported dtype, or a
// header whose shape does not match the data size.
QGNN_API std::map<std::string, NpyArray> read_npz(const std::string& path);

// Parses one NPY blob (for tests and for readers of single .npy files).
//   where: names the source in error messages.
QGNN_API NpyArray parse_npy(const void* data, size_t size, const std::string& where);

// Serializes a tensor as an NPY version 1.0 blob (dtype from the tensor: int64 "<i8",
// int32 "<i4", float32 "<f4", float64 "<f8", bool "|b1", uint8 "|u1").
QGNN_API std::string to_npy(const at::Tensor& t);

// Writes arrays to an .npz archive atomically (temporary file in the same directory,
// then rename). compress = true uses DEFLATE members, like numpy.savez_compressed.
// Throws c10::Error naming the path on failure; an existing file is untouched then.
QGNN_API void write_npz(const std::string& path, const std::map<std::string, at::Tensor>& arrays,
                        bool compress = true);

}  // namespace qgnn
