#pragma once
// Internal NPY plumbing shared by npy.cpp and npz.cpp (not installed).
#include <ATen/core/Tensor.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "qgnn/io/npz.h"

namespace qgnn::detail {

// A forward-only byte stream: an in-memory blob or a (decompressing) zip member.
class ByteReader {
 public:
  virtual ~ByteReader() = default;
  // Reads up to n bytes into dst; returns fewer only at the end of the stream.
  // Throws c10::Error (one line) on a read / decompression / checksum error.
  virtual size_t read(void* dst, size_t n) = 0;
};

// A parsed NPY header: what follows it is `data_bytes` bytes of `shape` items of `dtype`
// (the storage type, same item size as the file; C order unless `fortran`).
struct NpyHeader {
  std::string descr;
  std::vector<int64_t> shape;
  bool fortran = false;
  at::ScalarType dtype = at::kFloat;
  int64_t itemsize = 0;
  uint64_t data_bytes = 0;
};

// Reads and checks the header of an NPY array of exactly `size` bytes (magic, version,
// dict, supported dtype, data size matching the shape); `in` is left at the first data
// byte. Throws c10::Error "<where>: <problem>".
NpyHeader read_npy_header(ByteReader& in, uint64_t size, const std::string& where);

// Reads one NPY array of exactly `size` bytes from `in`: parses the header from the first
// bytes, allocates the result tensor and reads the data straight into it (no second copy
// except for Fortran-ordered or unsigned 16/32/64-bit arrays, which are converted).
// `where` prefixes every error message ("<where>: <problem>").
NpyArray read_npy(ByteReader& in, uint64_t size, const std::string& where);

// NPY 1.0 header (magic through the final '\n', padded to a multiple of 64 bytes) for a
// contiguous tensor `t`; `where` prefixes error messages (unsupported dtype).
std::string npy_header(const at::Tensor& t, const std::string& where);

}  // namespace qgnn::detail
