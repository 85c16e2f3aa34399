// NPY parsing / serialization and NPZ reading / writing.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <zip.h>

#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "io/io_test_util.h"
#include "qgnn/io/npz.h"
#include "qgnn_build_config.h"

namespace {

using qgnn::NpyArray;
using qgnn_test::ScratchDir;

const std::string kFixtures = QGNN_TEST_DATA_DIR;

// An NPY blob with a hand-written header dict (no padding) and raw data bytes.
std::string npy_blob(const std::string& dict, const std::string& data, int major = 1) {
  std::string out = std::string("\x93NUMPY", 6) + static_cast<char>(major) + '\0';
  const size_t len = dict.size();
  out += static_cast<char>(len & 0xff);
  out += static_cast<char>((len >> 8) & 0xff);
  if (major > 1) out += std::string(2, '\0');
  return out + dict + data;
}

std::string le_bytes(std::initializer_list<int32_t> values) {
  std::string out;
  for (int32_t v : values) {
    for (int b = 0; b < 4; ++b)
      out += static_cast<char>((static_cast<uint32_t>(v) >> (8 * b)) & 0xff);
  }
  return out;
}

NpyArray parse(const std::string& blob) { return qgnn::parse_npy(blob.data(), blob.size(), "t"); }

// A zip archive with the given raw members, for inputs write_npz cannot produce.
void write_zip(const std::string& path,
               const std::vector<std::pair<std::string, std::string>>& members, bool compress) {
  int err = 0;
  zip_t* za = zip_open(path.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &err);
  ASSERT_NE(za, nullptr);
  for (const auto& [name, bytes] : members) {
    zip_source_t* src = zip_source_buffer(za, bytes.data(), bytes.size(), 0);
    ASSERT_NE(src, nullptr);
    const zip_int64_t idx = zip_file_add(za, name.c_str(), src, 0);
    ASSERT_GE(idx, 0);
    zip_set_file_compression(za, idx, compress ? ZIP_CM_DEFLATE : ZIP_CM_STORE, 0);
  }
  ASSERT_EQ(zip_close(za), 0);
}

// Compression method of every member of an archive.
std::vector<int32_t> member_methods(const std::string& path) {
  std::vector<int32_t> methods;
  zip_t* za = zip_open(path.c_str(), ZIP_RDONLY, nullptr);
  if (za == nullptr) return methods;
  for (zip_int64_t i = 0; i < zip_get_num_entries(za, 0); ++i) {
    zip_stat_t st;
    zip_stat_index(za, i, 0, &st);
    methods.push_back(st.comp_method);
  }
  zip_discard(za);
  return methods;
}

void expect_array(const std::map<std::string, NpyArray>& arrays, const std::string& key,
                  const std::string& descr, const at::Tensor& expected) {
  SCOPED_TRACE(key);
  auto it = arrays.find(key);
  ASSERT_NE(it, arrays.end());
  const NpyArray& a = it->second;
  EXPECT_EQ(a.descr, descr);
  EXPECT_EQ(a.shape, expected.sizes().vec());
  ASSERT_EQ(a.data.scalar_type(), expected.scalar_type());
  EXPECT_TRUE(a.data.is_contiguous());
  EXPECT_TRUE(at::equal(a.data, expected)) << a.data << "\nvs\n" << expected;
}

// The arrays written by tests/data/make_fixtures.py (same values in both archives).
void expect_numpy_fixture(const std::map<std::string, NpyArray>& a) {
  auto i64 = at::TensorOptions().dtype(at::kLong);
  EXPECT_EQ(a.size(), 14u);
  expect_array(a, "b1", "|b1", at::tensor({1, 0, 1, 1}, i64).to(at::kBool));
  expect_array(a, "u1", "|u1", at::arange(250, 256, i64).to(at::kByte));
  expect_array(a, "i1", "|i1", at::arange(-3, 3, i64).to(at::kChar));
  expect_array(a, "i2", "<i2", at::arange(-300, -294, i64).to(at::kShort));
  expect_array(a, "i4", "<i4", at::arange(6, i64).reshape({2, 3}).to(at::kInt));
  expect_array(a, "i8", "<i8", at::arange(10, i64) - 3);
  expect_array(a, "u2", "<u2", at::arange(65530, 65536, i64).to(at::kInt));
  expect_array(a, "u4", "<u4", at::arange(int64_t{4294967290}, int64_t{4294967296}, i64));
  expect_array(a, "u8", "<u8", at::arange(4, i64) * (int64_t{1} << 61));
  expect_array(a, "f2", "<f2", (at::arange(4, i64).to(at::kFloat) / 2).to(at::kHalf));
  expect_array(a, "f4", "<f4", at::arange(12, i64).reshape({3, 4}).to(at::kFloat) / 4);
  expect_array(a, "f8", "<f8", at::arange(24, i64).reshape({2, 3, 4}).to(at::kDouble));
  expect_array(a, "scalar", "<i8", at::scalar_tensor(7, i64));
  expect_array(a, "empty", "<f4", at::zeros({0, 3}, at::kFloat));
}

// One tensor of every supported dtype, including 0-d and empty shapes.
std::map<std::string, at::Tensor> every_dtype() {
  auto i64 = at::TensorOptions().dtype(at::kLong);
  std::map<std::string, at::Tensor> m;
  const std::vector<std::pair<std::string, at::ScalarType>> dtypes = {
      {"bool", at::kBool},    {"uint8", at::kByte},    {"int8", at::kChar},
      {"int16", at::kShort},  {"int32", at::kInt},     {"int64", at::kLong},
      {"float16", at::kHalf}, {"float32", at::kFloat}, {"float64", at::kDouble}};
  for (const auto& [name, dtype] : dtypes) {
    at::Tensor base =
        dtype == at::kBool ? at::arange(35, i64).remainder(3).eq(0) : (at::arange(35, i64) - 17);
    m[name + "_2d"] = base.reshape({5, 7}).to(dtype);
    m[name + "_1d"] = base.to(dtype);
    m[name + "_0d"] = base[20].to(dtype);
    m[name + "_empty"] = at::empty({0}, at::TensorOptions().dtype(dtype));
    m[name + "_empty3d"] = at::empty({2, 0, 4}, at::TensorOptions().dtype(dtype));
  }
  m["float32_values"] = at::tensor({0.1f, -1e30f, 1e-40f, 3.5f});
  m["int64_extremes"] =
      at::tensor({std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()}, i64);
  m["noncontiguous"] = at::arange(12, i64).reshape({3, 4}).t();
  return m;
}

void expect_round_trip(const std::map<std::string, at::Tensor>& in,
                       const std::map<std::string, NpyArray>& out) {
  ASSERT_EQ(out.size(), in.size());
  for (const auto& [key, t] : in) {
    SCOPED_TRACE(key);
    auto it = out.find(key);
    ASSERT_NE(it, out.end());
    EXPECT_EQ(it->second.shape, t.sizes().vec());
    ASSERT_EQ(it->second.data.scalar_type(), t.scalar_type());
    EXPECT_TRUE(at::equal(it->second.data, t));
  }
}

}  // namespace

TEST(NpyTest, RoundTripEveryDtype) {
  const auto arrays = every_dtype();
  std::map<std::string, NpyArray> parsed;
  for (const auto& [key, t] : arrays) {
    parsed[key] = parse(qgnn::to_npy(t));
  }
  expect_round_trip(arrays, parsed);
  EXPECT_EQ(parsed["float64_2d"].descr, "<f8");
  EXPECT_EQ(parsed["bool_1d"].descr, "|b1");
  EXPECT_EQ(parsed["uint8_0d"].descr, "|u1");
}

TEST(NpyTest, HeaderMatchesNumpyLayout) {
  at::Tensor t = at::arange(2709, at::TensorOptions().dtype(at::kLong));
  const std::string blob = qgnn::to_npy(t);
  ASSERT_GE(blob.size(), 128u);
  EXPECT_EQ(blob.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
  const size_t header_len = static_cast<uint8_t>(blob[8]) | (static_cast<uint8_t>(blob[9]) << 8);
  EXPECT_EQ((10 + header_len) % 64, 0u);
  EXPECT_EQ(blob[10 + header_len - 1], '\n');
  EXPECT_EQ(blob.substr(10, 60), "{'descr': '<i8', 'fortran_order': False, 'shape': (2709,), }");
  EXPECT_EQ(blob.size(), 10 + header_len + 2709 * 8);
}

TEST(NpyTest, ParsesHeaderSpellings) {
  const std::string data = le_bytes({4, 5});
  for (const std::string dict :
       {"{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }",
        "{'descr':'<i4','fortran_order':False,'shape':(2,)}",
        "{ \"shape\" : ( 2 , ) ,\n 'fortran_order' : False , 'descr' : \"<i4\" }  \n",
        "{'descr': '<i4', 'fortran_order': True, 'shape': (2L,), }",
        "{'descr': '=i4', 'fortran_order': False, 'shape': (1, 2), }       \n"}) {
    SCOPED_TRACE(dict);
    NpyArray a = parse(npy_blob(dict, data));
    EXPECT_EQ(a.data.numel(), 2);
    EXPECT_EQ(a.data.flatten()[1].item<int32_t>(), 5);
  }
  NpyArray scalar =
      parse(npy_blob("{'descr': '<i4', 'fortran_order': False, 'shape': ()}", le_bytes({42})));
  EXPECT_EQ(scalar.data.dim(), 0);
  EXPECT_EQ(scalar.data.item<int32_t>(), 42);
}

TEST(NpyTest, FortranOrderBecomesCOrder) {
  // Fortran bytes of [[0, 1, 2], [3, 4, 5]] are column by column: 0 3 1 4 2 5.
  NpyArray a = parse(npy_blob("{'descr': '<i4', 'fortran_order': True, 'shape': (2, 3), }",
                              le_bytes({0, 3, 1, 4, 2, 5})));
  EXPECT_TRUE(a.data.is_contiguous());
  EXPECT_TRUE(
      at::equal(a.data, at::arange(6, at::TensorOptions().dtype(at::kInt)).reshape({2, 3})));
}

TEST(NpyTest, ReadsVersions2And3) {
  for (const char* name : {"v2.npy", "v3.npy"}) {
    SCOPED_TRACE(name);
    const std::string blob = qgnn_test::read_file_bytes(kFixtures + "/" + name);
    ASSERT_FALSE(blob.empty());
    NpyArray a = qgnn::parse_npy(blob.data(), blob.size(), name);
    EXPECT_TRUE(
        at::equal(a.data, at::arange(6, at::TensorOptions().dtype(at::kInt)).reshape({3, 2})));
  }
}

TEST(NpyTest, BoolBytesAreNormalized) {
  NpyArray a = parse(npy_blob("{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }",
                              std::string("\x00\x07\x01", 3)));
  EXPECT_EQ(a.data.sum().item<int64_t>(), 2);
  EXPECT_TRUE(a.data[1].item<bool>());
}

TEST(NpyTest, RejectsBadInput) {
  const std::string ok_dict = "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }";
  const std::string data = le_bytes({1, 2});
  EXPECT_ERROR(parse("\x93NUMP"), "t:", "not an NPY array");
  EXPECT_ERROR(parse("XXNUMPY\x01\x00\x00\x00" + data), "t:", "bad magic");
  EXPECT_ERROR(parse(npy_blob(ok_dict, data, 4)), "t:", "unsupported NPY version", "4.0");
  EXPECT_ERROR(parse(npy_blob(ok_dict, data).substr(0, 30)), "t:", "header length");
  EXPECT_ERROR(parse(npy_blob(ok_dict, data + data)), "t:", "needs 8 data bytes", "got 16");
  EXPECT_ERROR(parse(npy_blob(ok_dict, data.substr(0, 5))), "t:", "needs 8 data bytes", "got 5");
  EXPECT_ERROR(parse(npy_blob("{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", data)),
               "t:", "unsupported dtype '<c8'");
  EXPECT_ERROR(parse(npy_blob("{'descr': '>i4', 'fortran_order': False, 'shape': (2,), }", data)),
               "t:", "big-endian dtype '>i4'");
  EXPECT_ERROR(parse(npy_blob("{'descr': '<i4', 'shape': (2,), }", data)),
               "t:", "lacks 'fortran_order'");
  EXPECT_ERROR(
      parse(npy_blob("{'descr': '<i4', 'fortran_order': False, 'shape': (2,), 'x': 1}", data)),
      "t:", "unexpected key 'x'");
  EXPECT_ERROR(
      parse(npy_blob("{'descr': [('a', '<i4')], 'fortran_order': False, 'shape': (2,)}", data)),
      "t:", "structured");
  EXPECT_ERROR(parse(npy_blob("{'descr': '<i4', 'fortran_order': False, 'shape': (2, -1)}", data)),
               "t:", "expected a dimension");
  EXPECT_ERROR(parse(npy_blob("{'descr': '<u8', 'fortran_order': False, 'shape': (1,)}",
                              std::string(8, '\xff'))),
               "t:", "exceeds the int64 range", "18446744073709551615");
}

TEST(NpzTest, RoundTripCompressedAndStored) {
  ScratchDir dir;
  const auto arrays = every_dtype();
  for (bool compress : {true, false}) {
    SCOPED_TRACE(compress);
    const std::string path = dir.file(compress ? "c.npz" : "s.npz");
    qgnn::write_npz(path, arrays, compress);
    expect_round_trip(arrays, qgnn::read_npz(path));
    for (int32_t method : member_methods(path)) {
      EXPECT_EQ(method, compress ? ZIP_CM_DEFLATE : ZIP_CM_STORE);
    }
  }
}

TEST(NpzTest, ReadsNumpySavezCompressed) {
  const std::string path = kFixtures + "/numpy_compressed.npz";
  const auto methods = member_methods(path);
  ASSERT_EQ(methods.size(), 14u);
  for (int32_t m : methods) EXPECT_EQ(m, ZIP_CM_DEFLATE);
  expect_numpy_fixture(qgnn::read_npz(path));
}

TEST(NpzTest, ReadsNumpySavezStored) {
  const std::string path = kFixtures + "/numpy_stored.npz";
  const auto methods = member_methods(path);
  ASSERT_EQ(methods.size(), 14u);
  for (int32_t m : methods) EXPECT_EQ(m, ZIP_CM_STORE);
  expect_numpy_fixture(qgnn::read_npz(path));
}

TEST(NpzTest, WriteReplacesAtomically) {
  ScratchDir dir;
  const std::string path = dir.file("a.npz");
  auto i64 = at::TensorOptions().dtype(at::kLong);
  qgnn::write_npz(path, {{"a", at::arange(3, i64)}});
  qgnn::write_npz(path, {{"b", at::arange(5, i64)}});
  auto read = qgnn::read_npz(path);
  ASSERT_EQ(read.size(), 1u);
  EXPECT_TRUE(at::equal(read.at("b").data, at::arange(5, i64)));
  // A failing write leaves the existing file as it was and no temporary file behind.
  const std::string before = qgnn_test::read_file_bytes(path);
  EXPECT_ERROR(qgnn::write_npz(path, {{"z", at::zeros({2}, at::kComplexFloat)}}), path, "z",
               "unsupported dtype");
  EXPECT_ERROR(qgnn::write_npz(path, {}), path, "no arrays");
  EXPECT_EQ(qgnn_test::read_file_bytes(path), before);
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    (void)entry;
    ++files;
  }
  EXPECT_EQ(files, 1);
  EXPECT_ERROR(qgnn::write_npz(dir.file("no/such/dir.npz"), {{"a", at::arange(3, i64)}}),
               dir.file("no/such/dir.npz"), "temporary file");
}

TEST(NpzTest, DeterministicBytes) {
  ScratchDir dir;
  const auto arrays = every_dtype();
  qgnn::write_npz(dir.file("1.npz"), arrays);
  qgnn::write_npz(dir.file("2.npz"), arrays);
  EXPECT_EQ(qgnn_test::read_file_bytes(dir.file("1.npz")),
            qgnn_test::read_file_bytes(dir.file("2.npz")));
}

TEST(NpzTest, MissingFile) {
  ScratchDir dir;
  const std::string path = dir.file("missing.npz");
  EXPECT_ERROR(qgnn::read_npz(path), "read_npz(" + path + ")", "no such file");
}

TEST(NpzTest, TruncatedArchive) {
  ScratchDir dir;
  const std::string path = dir.file("t.npz");
  qgnn::write_npz(path, {{"a", at::arange(1000, at::TensorOptions().dtype(at::kLong))}});
  const auto size = std::filesystem::file_size(path);
  std::filesystem::resize_file(path, size / 2);
  EXPECT_ERROR(qgnn::read_npz(path), "read_npz(" + path + ")", "truncated");
  std::filesystem::resize_file(path, 0);
  EXPECT_ERROR(qgnn::read_npz(path), "read_npz(" + path + ")");
}

TEST(NpzTest, CorruptMember) {
  ScratchDir dir;
  const std::string path = dir.file("c.npz");
  qgnn::write_npz(path, {{"a", at::arange(1000, at::TensorOptions().dtype(at::kLong))}},
                  /*compress=*/false);
  std::string bytes = qgnn_test::read_file_bytes(path);
  const size_t npy = bytes.find("\x93NUMPY");
  ASSERT_NE(npy, std::string::npos);
  bytes[npy + 64 + 800] ^= 0x5a;  // inside the array data: only the CRC-32 can tell
  qgnn_test::write_file_bytes(path, bytes);
  EXPECT_ERROR(qgnn::read_npz(path), "read_npz(" + path + "): a.npy", "CRC");
}

TEST(NpzTest, UnsupportedDtypes) {
  const std::string be = kFixtures + "/big_endian.npz";
  EXPECT_ERROR(qgnn::read_npz(be), "read_npz(" + be + "): a.npy", "big-endian dtype '>i4'");
  const std::string cx = kFixtures + "/complex.npz";
  EXPECT_ERROR(qgnn::read_npz(cx), "read_npz(" + cx + "): a.npy", "unsupported dtype '<c8'");
}

TEST(NpzTest, MemberSizeMismatchAndOtherMembers) {
  ScratchDir dir;
  const std::string path = dir.file("m.npz");
  const std::string dict = "{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }";
  write_zip(path, {{"readme.txt", "not an array"}, {"ok.npy", npy_blob(dict, le_bytes({1, 2, 3}))}},
            true);
  auto arrays = qgnn::read_npz(path);
  ASSERT_EQ(arrays.size(), 1u);  // members not named *.npy are skipped
  EXPECT_EQ(arrays.at("ok").data[2].item<int32_t>(), 3);
  write_zip(path, {{"short.npy", npy_blob(dict, le_bytes({1, 2}))}}, true);
  EXPECT_ERROR(qgnn::read_npz(path), "read_npz(" + path + "): short.npy", "needs 12 data bytes",
               "got 8");
  write_zip(path, {{"junk.npy", "definitely not npy"}}, false);
  EXPECT_ERROR(qgnn::read_npz(path), "read_npz(" + path + "): junk.npy", "bad magic");
}

TEST(NpyTest, RejectsShapesThatOverflowOrExceedTheData) {
  const std::string data = le_bytes({1, 2});
  // 2^62 * 4 elements overflow int64.
  EXPECT_ERROR(
      parse(npy_blob(
          "{'descr': '<i4', 'fortran_order': False, 'shape': (4611686018427387904, 4), }", data)),
      "t:", "shape too large", "(4611686018427387904, 4)");
  // 2^61 elements fit int64, but 2^61 * 8 bytes do not fit 64 bits.
  EXPECT_ERROR(
      parse(npy_blob("{'descr': '<f8', 'fortran_order': False, 'shape': (2305843009213693952,), }",
                     data)),
      "t:", "shape too large", "(2305843009213693952,)");
  // Representable, but far more than the 8 bytes present: rejected before any allocation
  // (allocating 8 TB would throw std::bad_alloc, not c10::Error).
  EXPECT_ERROR(parse(npy_blob(
                   "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000,), }", data)),
               "t:", "needs 8000000000000 data bytes", "got 8");
}

TEST(NpzTest, RejectsAMemberShapeLargerThanTheMember) {
  ScratchDir dir;
  const std::string path = dir.file("big.npz");
  const std::string huge =
      "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000, 1000000), }";
  for (bool compress : {false, true}) {
    write_zip(path, {{"x.npy", npy_blob(huge, le_bytes({1, 2}))}}, compress);
    EXPECT_ERROR(qgnn::read_npz(path), "read_npz(" + path + "): x.npy",
                 "needs 4000000000000 data bytes", "got 8");
    EXPECT_ERROR(qgnn::read_npz(path, {"x"}), "read_npz(" + path + "): x.npy",
                 "needs 4000000000000 data bytes", "got 8");
    EXPECT_ERROR(qgnn::read_npz_rows(path, "x", 1, [](const at::Tensor&, int64_t) {}),
                 "read_npz_rows(" + path + "): x.npy", "needs 4000000000000 data bytes", "got 8");
  }
}

TEST(NpzTest, RejectsDuplicateMembers) {
  // libzip refuses to add a second member of the same name, so write "a.npy" and "b.npy"
  // and rename the second in the local and central headers (names are not checksummed).
  ScratchDir dir;
  const std::string path = dir.file("dup.npz");
  const std::string dict = "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }";
  write_zip(
      path,
      {{"a.npy", npy_blob(dict, le_bytes({1, 2}))}, {"b.npy", npy_blob(dict, le_bytes({3, 4}))}},
      false);
  std::string bytes = qgnn_test::read_file_bytes(path);
  int renamed = 0;
  for (size_t p = bytes.find("b.npy"); p != std::string::npos; p = bytes.find("b.npy", p)) {
    bytes[p] = 'a';
    ++renamed;
  }
  ASSERT_EQ(renamed, 2);  // local header and central directory
  qgnn_test::write_file_bytes(path, bytes);
  EXPECT_ERROR(qgnn::read_npz(path), "read_npz(" + path + "): a.npy", "duplicate member");
  EXPECT_ERROR(qgnn::read_npz_rows(path, "a", 1, [](const at::Tensor&, int64_t) {}),
               "read_npz_rows(" + path + "): a.npy", "duplicate member");
}

// A deflated member of a few bytes whose zip headers declare 4 GB and whose NPY header
// declares the matching shape: rejected from the sizes alone, before any allocation.
TEST(NpzTest, DeclaredSizeBeyondCompressedBytes) {
  ScratchDir dir;
  const std::string path = dir.file("bomb.npz");
  const std::string dict = "{'descr': '<i8', 'fortran_order': False, 'shape': (500000000,), }";
  const std::string blob = npy_blob(dict, "");
  write_zip(path, {{"x.npy", blob}}, true);
  std::string bytes = qgnn_test::read_file_bytes(path);
  const uint64_t declared = blob.size() + uint64_t{500000000} * 8;  // < 2^32: no zip64 needed
  auto patch_size = [&](const std::string& signature, size_t offset) {
    const size_t at = bytes.find(signature);
    ASSERT_NE(at, std::string::npos) << "no zip header " << signature.size();
    for (int b = 0; b < 4; ++b) bytes[at + offset + b] = static_cast<char>(declared >> (8 * b));
  };
  patch_size(std::string("PK\x03\x04", 4), 22);  // local file header: uncompressed size
  patch_size(std::string("PK\x01\x02", 4), 24);  // central directory entry: the same
  qgnn_test::write_file_bytes(path, bytes);
  EXPECT_ERROR(qgnn::read_npz(path), "read_npz(" + path + "): x.npy",
               "declared size " + std::to_string(declared), "compressed bytes can expand to");
  EXPECT_ERROR(qgnn::read_npz_rows(path, "x", 1, [](const at::Tensor&, int64_t) {}),
               "read_npz_rows(" + path + "): x.npy", "declared size " + std::to_string(declared));
}
