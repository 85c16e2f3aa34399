// NPY format (numpy/lib/format.py): magic "\x93NUMPY", version byte pair, little-endian
// header length (uint16 for 1.0, uint32 for 2.0 / 3.0), an ASCII Python dict literal with
// 'descr', 'fortran_order' and 'shape', then the raw array bytes.
#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <limits>
#include <sstream>
#include <utility>

#include "io/npy_internal.h"
#include "qgnn/io/npz.h"

namespace qgnn {
namespace detail {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicLen = 6;
constexpr size_t kAlign = 64;
constexpr uint64_t kMaxHeaderLen = 1 << 20;
constexpr size_t kReadChunk = size_t{1} << 26;

// How a NumPy dtype is held: read as `storage` (same item size as the file), returned
// as `result` (differs only for unsigned 16/32-bit types, which ATen 1.13 lacks).
struct DtypeInfo {
  const char* code;  // kind + item size, e.g. "i8"
  int64_t itemsize;
  at::ScalarType storage;
  at::ScalarType result;
};

constexpr DtypeInfo kDtypes[] = {
    {"b1", 1, at::kBool, at::kBool},   {"u1", 1, at::kByte, at::kByte},
    {"i1", 1, at::kChar, at::kChar},   {"i2", 2, at::kShort, at::kShort},
    {"i4", 4, at::kInt, at::kInt},     {"i8", 8, at::kLong, at::kLong},
    {"u2", 2, at::kShort, at::kInt},   {"u4", 4, at::kInt, at::kLong},
    {"u8", 8, at::kLong, at::kLong},   {"f2", 2, at::kHalf, at::kHalf},
    {"f4", 4, at::kFloat, at::kFloat}, {"f8", 8, at::kDouble, at::kDouble},
};
constexpr char kSupportedDtypes[] = "b1 u1 i1 i2 i4 i8 u2 u4 u8 f2 f4 f8";

std::string shape_repr(const std::vector<int64_t>& shape) {
  std::ostringstream os;
  os << '(';
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) os << ", ";
    os << shape[i];
  }
  if (shape.size() == 1) os << ',';
  os << ')';
  return os.str();
}

// Header text made safe for a one-line message.
std::string printable(const std::string& s) {
  std::string out;
  for (char c : s.substr(0, 200)) {
    out += std::isprint(static_cast<unsigned char>(c)) ? c : ' ';
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  if (s.size() > 200) out += "...";
  return out;
}

const DtypeInfo& parse_descr(const std::string& descr, const std::string& where) {
  std::string code = descr;
  char order = '|';
  if (!code.empty() && std::strchr("<>|=", code[0]) != nullptr) {
    order = code[0];
    code = code.substr(1);
  }
  const DtypeInfo* info = nullptr;
  for (const DtypeInfo& d : kDtypes) {
    if (code == d.code) info = &d;
  }
  TORCH_CHECK(info != nullptr, where, ": unsupported dtype '", descr,
              "' (supported: ", kSupportedDtypes, ")");
  TORCH_CHECK(!(order == '>' && info->itemsize > 1), where, ": big-endian dtype '", descr,
              "' is not supported (save it as little-endian, e.g. arr.astype('<", code, "'))");
  TORCH_CHECK(!(order == '|' && info->itemsize > 1), where, ": dtype '", descr,
              "' lacks a byte order");
  return *info;
}

// Recursive-descent parser of the header dict, e.g.
//   {'descr': '<f4', 'fortran_order': False, 'shape': (2708, 1433), }
class HeaderParser {
 public:
  HeaderParser(const std::string& text, const std::string& where) : s_(text), where_(where) {}

  void parse(std::string* descr, bool* fortran, std::vector<int64_t>* shape) {
    bool has_descr = false, has_fortran = false, has_shape = false;
    skip_ws();
    expect('{');
    while (true) {
      skip_ws();
      if (peek() == '}') break;
      std::string key = parse_string("a key");
      skip_ws();
      expect(':');
      skip_ws();
      if (key == "descr") {
        fail_if(peek() == '[', "unsupported dtype (structured arrays are not supported)");
        *descr = parse_string("the 'descr' string");
        has_descr = true;
      } else if (key == "fortran_order") {
        *fortran = parse_bool();
        has_fortran = true;
      } else if (key == "shape") {
        *shape = parse_shape();
        has_shape = true;
      } else {
        fail("unexpected key '" + key + "' in NPY header");
      }
      skip_ws();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      fail_if(peek() != '}', "expected ',' or '}'");
    }
    ++pos_;
    skip_ws();
    fail_if(pos_ != s_.size(), "unexpected text after '}'");
    fail_if(!has_descr, "NPY header lacks 'descr'");
    fail_if(!has_fortran, "NPY header lacks 'fortran_order'");
    fail_if(!has_shape, "NPY header lacks 'shape'");
  }

 private:
  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  void skip_ws() {
    while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
  }
  void fail(const std::string& problem) const {
    TORCH_CHECK(false, where_, ": bad NPY header: ", problem, " at offset ", pos_, " (got \"",
                printable(s_), "\")");
  }
  void fail_if(bool cond, const std::string& problem) const {
    if (cond) fail(problem);
  }
  void expect(char c) {
    fail_if(peek() != c, std::string("expected '") + c + "'");
    ++pos_;
  }
  std::string parse_string(const char* what) {
    char quote = peek();
    fail_if(quote != '\'' && quote != '"', std::string("expected ") + what);
    ++pos_;
    std::string out;
    while (pos_ < s_.size() && s_[pos_] != quote) {
      if (s_[pos_] == '\\' && pos_ + 1 < s_.size()) ++pos_;
      out += s_[pos_++];
    }
    fail_if(pos_ >= s_.size(), "unterminated string");
    ++pos_;
    return out;
  }
  bool parse_bool() {
    if (s_.compare(pos_, 4, "True") == 0) {
      pos_ += 4;
      return true;
    }
    if (s_.compare(pos_, 5, "False") == 0) {
      pos_ += 5;
      return false;
    }
    fail("expected True or False");
    return false;
  }
  int64_t parse_dim() {
    fail_if(!std::isdigit(static_cast<unsigned char>(peek())), "expected a dimension");
    int64_t v = 0;
    while (std::isdigit(static_cast<unsigned char>(peek()))) {
      int64_t d = s_[pos_++] - '0';
      fail_if(v > (std::numeric_limits<int64_t>::max() - d) / 10, "dimension too large");
      v = v * 10 + d;
    }
    if (peek() == 'L') ++pos_;  // Python 2 long literal, e.g. (3L, 4L)
    return v;
  }
  std::vector<int64_t> parse_shape() {
    std::vector<int64_t> shape;
    expect('(');
    skip_ws();
    while (peek() != ')') {
      shape.push_back(parse_dim());
      skip_ws();
      if (peek() == ',') {
        ++pos_;
        skip_ws();
      } else {
        fail_if(peek() != ')', "expected ',' or ')' in shape");
      }
    }
    ++pos_;
    return shape;
  }

  const std::string& s_;
  const std::string& where_;
  size_t pos_ = 0;
};

void read_exact(ByteReader& in, void* dst, size_t n, const char* what, const std::string& where) {
  size_t done = 0;
  while (done < n) {
    size_t want = std::min(n - done, kReadChunk);
    size_t got = in.read(static_cast<char*>(dst) + done, want);
    done += got;
    TORCH_CHECK(got == want || done == n, where, ": truncated ", what, " (expected ", n,
                " bytes, got ", done, ")");
  }
}

uint64_t read_le(const unsigned char* p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

class BufferReader : public ByteReader {
 public:
  BufferReader(const void* data, size_t size)
      : data_(static_cast<const char*>(data)), size_(size) {}
  size_t read(void* dst, size_t n) override {
    size_t k = std::min(n, size_ - pos_);
    if (k > 0) std::memcpy(dst, data_ + pos_, k);
    pos_ += k;
    return k;
  }

 private:
  const char* data_;
  size_t size_;
  size_t pos_ = 0;
};

}  // namespace

NpyHeader read_npy_header(ByteReader& in, uint64_t size, const std::string& where) {
  unsigned char prefix[12];
  TORCH_CHECK(size >= 10, where, ": not an NPY array (got ", size, " bytes)");
  read_exact(in, prefix, 8, "NPY header", where);
  TORCH_CHECK(std::memcmp(prefix, kMagic, kMagicLen) == 0, where,
              ": not an NPY array (bad magic bytes)");
  const int major = prefix[6], minor = prefix[7];
  TORCH_CHECK(major >= 1 && major <= 3, where, ": unsupported NPY version (got ", major, ".", minor,
              ")");
  const int len_bytes = major == 1 ? 2 : 4;
  TORCH_CHECK(size >= 8 + static_cast<uint64_t>(len_bytes), where, ": truncated NPY header");
  read_exact(in, prefix + 8, len_bytes, "NPY header", where);
  const uint64_t header_len = read_le(prefix + 8, len_bytes);
  const uint64_t data_offset = 8 + len_bytes + header_len;
  TORCH_CHECK(header_len <= kMaxHeaderLen && data_offset <= size, where,
              ": NPY header length exceeds the data (got ", header_len, " bytes of ", size, ")");
  std::string text(header_len, '\0');
  read_exact(in, text.data(), header_len, "NPY header", where);

  NpyHeader out;
  HeaderParser(text, where).parse(&out.descr, &out.fortran, &out.shape);
  const DtypeInfo& dtype = parse_descr(out.descr, where);

  uint64_t numel = 1;
  for (int64_t d : out.shape) {
    TORCH_CHECK(!__builtin_mul_overflow(numel, static_cast<uint64_t>(d), &numel) &&
                    numel <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()),
                where, ": shape too large (got ", shape_repr(out.shape), ")");
  }
  uint64_t nbytes = 0;
  TORCH_CHECK(!__builtin_mul_overflow(numel, static_cast<uint64_t>(dtype.itemsize), &nbytes), where,
              ": shape too large (got ", shape_repr(out.shape), ")");
  TORCH_CHECK(size - data_offset == nbytes, where, ": shape ", shape_repr(out.shape), " of '",
              out.descr, "' needs ", nbytes, " data bytes (got ", size - data_offset, ")");

  out.dtype = dtype.storage;
  out.itemsize = dtype.itemsize;
  out.data_bytes = nbytes;
  return out;
}

NpyArray read_npy(ByteReader& in, uint64_t size, const std::string& where) {
  const NpyHeader h = read_npy_header(in, size, where);
  const DtypeInfo& dtype = parse_descr(h.descr, where);
  const bool fortran = h.fortran;
  const uint64_t nbytes = h.data_bytes;
  const uint64_t numel = nbytes / static_cast<uint64_t>(dtype.itemsize);
  NpyArray out;
  out.descr = h.descr;
  out.shape = h.shape;
  std::vector<int64_t> stored_shape = out.shape;
  if (fortran) std::reverse(stored_shape.begin(), stored_shape.end());
  at::Tensor t = at::empty(stored_shape, at::TensorOptions().dtype(dtype.storage));
  read_exact(in, t.data_ptr(), nbytes, "array data", where);
  char extra;
  TORCH_CHECK(in.read(&extra, 1) == 0, where, ": unexpected bytes after the array data");

  const int64_t n = static_cast<int64_t>(numel);
  if (dtype.storage == at::kBool) {
    // NumPy reads any nonzero byte as True; ATen expects exactly 0 or 1.
    auto* p = static_cast<uint8_t*>(t.data_ptr());
    for (int64_t i = 0; i < n; ++i) p[i] = p[i] != 0;
  }
  if (std::strcmp(dtype.code, "u2") == 0 || std::strcmp(dtype.code, "u4") == 0) {
    at::Tensor wide = at::empty(stored_shape, at::TensorOptions().dtype(dtype.result));
    if (dtype.itemsize == 2) {
      const auto* src = static_cast<const uint16_t*>(t.data_ptr());
      auto* dst = wide.data_ptr<int32_t>();
      for (int64_t i = 0; i < n; ++i) dst[i] = src[i];
    } else {
      const auto* src = static_cast<const uint32_t*>(t.data_ptr());
      auto* dst = wide.data_ptr<int64_t>();
      for (int64_t i = 0; i < n; ++i) dst[i] = src[i];
    }
    t = wide;
  } else if (std::strcmp(dtype.code, "u8") == 0) {
    const auto* p = static_cast<const uint64_t*>(t.data_ptr());
    for (int64_t i = 0; i < n; ++i) {
      TORCH_CHECK(p[i] <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()), where,
                  ": uint64 value exceeds the int64 range (got ", p[i], " at flat index ", i, ")");
    }
  }
  if (fortran && out.shape.size() > 1) {
    std::vector<int64_t> perm(out.shape.size());
    for (size_t i = 0; i < perm.size(); ++i) perm[i] = static_cast<int64_t>(perm.size() - 1 - i);
    t = t.permute(perm).contiguous();
  }
  out.data = t;
  return out;
}

std::string npy_header(const at::Tensor& t, const std::string& where) {
  static constexpr std::pair<at::ScalarType, const char*> kDescrs[] = {
      {at::kBool, "|b1"},  {at::kByte, "|u1"},  {at::kChar, "|i1"},
      {at::kShort, "<i2"}, {at::kInt, "<i4"},   {at::kLong, "<i8"},
      {at::kHalf, "<f2"},  {at::kFloat, "<f4"}, {at::kDouble, "<f8"}};
  const char* descr = nullptr;
  for (const auto& [type, d] : kDescrs) {
    if (t.scalar_type() == type) descr = d;
  }
  TORCH_CHECK(descr != nullptr, where, ": unsupported dtype for NPY (got ", t.scalar_type(),
              "; supported: bool uint8 int8 int16 int32 int64 float16 float32 float64)");
  std::string dict = std::string("{'descr': '") + descr +
                     "', 'fortran_order': False, 'shape': " + shape_repr(t.sizes().vec()) + ", }";
  // As numpy.lib.format: pad with spaces and a final '\n' so the data is 64-byte aligned.
  const size_t unpadded = kMagicLen + 2 + 2 + dict.size() + 1;
  const size_t pad = kAlign - unpadded % kAlign;
  const size_t header_len = dict.size() + pad + 1;
  TORCH_CHECK(header_len <= 0xffff, where, ": NPY header too long (got ", header_len, " bytes)");
  std::string out(kMagic, kMagicLen);
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(header_len & 0xff);
  out += static_cast<char>(header_len >> 8);
  out += dict;
  out.append(pad, ' ');
  out += '\n';
  return out;
}

}  // namespace detail

NpyArray parse_npy(const void* data, size_t size, const std::string& where) {
  TORCH_CHECK(data != nullptr || size == 0, where, ": null data");
  detail::BufferReader in(data, size);
  return detail::read_npy(in, size, where);
}

std::string to_npy(const at::Tensor& t) {
  TORCH_CHECK(t.defined(), "to_npy: undefined tensor");
  at::Tensor c = t.cpu().contiguous();
  std::string out = detail::npy_header(c, "to_npy");
  const size_t nbytes = c.numel() * c.element_size();
  if (nbytes > 0) out.append(static_cast<const char*>(c.data_ptr()), nbytes);
  return out;
}

}  // namespace qgnn
