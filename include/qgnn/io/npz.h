#pragma once
// NPY / NPZ arrays (NumPy's formats) read and written through libzip.
#include <ATen/core/Tensor.h>

#include <functional>
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
// missing / unreadable / truncated file, two members of the same name, a corrupt member,
// an unsupported dtype, or a header whose shape (times the item size) overflows or does
// not match the member's declared size; nothing is allocated for the data before that.
//   header_only: keys whose data is not read; they are returned with descr and shape and
//   an undefined data tensor (e.g. a dataset's feature matrix, to be streamed instead).
QGNN_API std::map<std::string, NpyArray> read_npz(const std::string& path,
                                                  const std::vector<std::string>& header_only = {});

// Streams one 2-D float array "<key>.npy" of an .npz archive in row chunks, reading the
// member sequentially (stored or deflated), so that at most one chunk is held in memory.
//   key: array name without ".npy"; rows_per_chunk >= 1.
//   fn(chunk, first_row): called in row order with chunk = rows [first_row, first_row + r)
//   as a fresh contiguous [r, F] float32 tensor (float16 and float64 data are converted
//   per chunk),
//   1 <= r <= rows_per_chunk; not called for an array with no rows.
// Throws c10::Error "read_npz_rows(<path>): <member>: <problem>" for what read_npz rejects
// and for a missing key, an array that is not 2-D, a dtype other than float16 / float32 /
// float64 or
// a Fortran-ordered array; exceptions from fn propagate.
QGNN_API void read_npz_rows(
    const std::string& path, const std::string& key, int64_t rows_per_chunk,
    const std::function<void(const at::Tensor& chunk, int64_t first_row)>& fn);

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
