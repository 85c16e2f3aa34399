// NPZ archives through libzip: reading (stored / deflated members, zip64) and atomic writing.
#include "qgnn/io/npz.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <random>

#include "io/npy_internal.h"

namespace qgnn {
namespace {

constexpr char kNpySuffix[] = ".npy";
constexpr size_t kNpySuffixLen = 4;
// Fixed member timestamp (2000-01-01) so that equal arrays give byte-identical archives.
constexpr time_t kMemberMtime = 946684800;
constexpr zip_uint32_t kDeflateLevel = 6;  // zlib's default, as numpy.savez_compressed

struct ZipDiscard {
  void operator()(zip_t* z) const { zip_discard(z); }
};
struct ZipFileClose {
  void operator()(zip_file_t* f) const { zip_fclose(f); }
};
using ZipPtr = std::unique_ptr<zip_t, ZipDiscard>;
using ZipFilePtr = std::unique_ptr<zip_file_t, ZipFileClose>;

std::string zip_error_text(int code) {
  zip_error_t e;
  zip_error_init_with_code(&e, code);
  std::string s = zip_error_strerror(&e);
  zip_error_fini(&e);
  return s;
}

bool ends_with(const std::string& s, const char* suffix, size_t n) {
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

class ZipMemberReader : public detail::ByteReader {
 public:
  ZipMemberReader(zip_file_t* f, const std::string& where) : f_(f), where_(where) {}
  size_t read(void* dst, size_t n) override {
    zip_int64_t got = zip_fread(f_, dst, n);
    TORCH_CHECK(got >= 0, where_, ": corrupt or truncated member (", zip_file_strerror(f_), ")");
    return static_cast<size_t>(got);
  }

 private:
  zip_file_t* f_;
  const std::string& where_;
};

// The first member name that occurs twice in the archive at `path`, or "" (libzip's
// consistency check rejects such an archive with ZIP_ER_EXISTS without naming it).
std::string duplicate_member_name(const std::string& path) {
  int err = 0;
  ZipPtr za(zip_open(path.c_str(), ZIP_RDONLY, &err));
  if (!za) return "";
  std::map<std::string, int> seen;
  const zip_int64_t count = zip_get_num_entries(za.get(), 0);
  for (zip_int64_t i = 0; i < count; ++i) {
    const char* name = zip_get_name(za.get(), i, ZIP_FL_ENC_RAW);
    if (name != nullptr && ++seen[name] == 2) return name;
  }
  return "";
}

ZipPtr open_archive(const std::string& path, const std::string& where) {
  int err = 0;
  ZipPtr za(zip_open(path.c_str(), ZIP_RDONLY | ZIP_CHECKCONS, &err));
  if (!za) {
    if (err == ZIP_ER_NOENT) TORCH_CHECK(false, where, ": no such file");
    if (err == ZIP_ER_EXISTS) {
      const std::string name = duplicate_member_name(path);
      TORCH_CHECK(name.empty(), where, ": ", name,
                  ": duplicate member (two members of the archive have this name)");
    }
    TORCH_CHECK(err != ZIP_ER_NOZIP, where, ": not a zip archive (truncated or not an .npz file)");
    TORCH_CHECK(false, where, ": cannot open archive (", zip_error_text(err), ")");
  }
  return za;
}

// A member's declared uncompressed size, which is only a claim of the archive: bounded by
// what its compressed bytes can expand to (stored: equal; DEFLATE: at most 1032:1, one
// 258-byte match per 2 bits), so that a tiny member cannot make the reader allocate for
// a huge array before the data runs out (ZIP_CHECKCONS keeps comp_size inside the file).
uint64_t checked_member_size(const zip_stat_t& st, const std::string& where) {
  constexpr uint64_t kMaxDeflateRatio = 1032;
  TORCH_CHECK((st.valid & ZIP_STAT_COMP_SIZE) && (st.valid & ZIP_STAT_COMP_METHOD), where,
              ": cannot stat the compressed size");
  TORCH_CHECK(st.comp_method == ZIP_CM_STORE || st.comp_method == ZIP_CM_DEFLATE, where,
              ": unsupported compression method ", st.comp_method, " (stored or deflated only)");
  const uint64_t limit = st.comp_method == ZIP_CM_STORE ? st.comp_size
                         : st.comp_size > UINT64_MAX / kMaxDeflateRatio
                             ? UINT64_MAX
                             : st.comp_size * kMaxDeflateRatio;
  TORCH_CHECK(st.size <= limit, where, ": declared size ", st.size, " bytes exceeds what its ",
              st.comp_size, " compressed bytes can expand to");
  return st.size;
}

// "<path>.tmp.XXXXXX", created exclusively with the default (umask-filtered) mode.
std::string create_temp_file(const std::string& path, const std::string& where) {
  static constexpr char kChars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  std::random_device rd;
  std::mt19937_64 rng((static_cast<uint64_t>(rd()) << 32) ^ rd() ^ getpid());
  int last_errno = 0;
  for (int attempt = 0; attempt < 100; ++attempt) {
    std::string tmp = path + ".tmp.";
    for (int i = 0; i < 6; ++i) tmp += kChars[rng() % (sizeof(kChars) - 1)];
    int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0) {
      close(fd);
      return tmp;
    }
    last_errno = errno;
    if (last_errno != EEXIST) break;
  }
  TORCH_CHECK(false, where, ": cannot create a temporary file next to it (",
              std::strerror(last_errno), ")");
  return {};
}

void fsync_file(const std::string& file) {
  int fd = open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    fsync(fd);
    close(fd);
  }
}

}  // namespace

std::map<std::string, NpyArray> read_npz(const std::string& path,
                                         const std::vector<std::string>& header_only) {
  const std::string where = "read_npz(" + path + ")";
  ZipPtr za = open_archive(path, where);
  std::map<std::string, NpyArray> out;
  const zip_int64_t count = zip_get_num_entries(za.get(), 0);
  TORCH_CHECK(count >= 0, where, ": cannot list members (", zip_strerror(za.get()), ")");
  for (zip_int64_t i = 0; i < count; ++i) {
    zip_stat_t st;
    zip_stat_init(&st);
    TORCH_CHECK(zip_stat_index(za.get(), i, 0, &st) == 0 && (st.valid & ZIP_STAT_NAME) &&
                    (st.valid & ZIP_STAT_SIZE),
                where, ": member ", i, ": cannot stat (", zip_strerror(za.get()), ")");
    const std::string name = st.name;
    if (!ends_with(name, kNpySuffix, kNpySuffixLen)) continue;  // not an array member
    const std::string member_where = where + ": " + name;
    const std::string key = name.substr(0, name.size() - kNpySuffixLen);
    TORCH_CHECK(out.count(key) == 0, member_where, ": duplicate member");
    const uint64_t size = checked_member_size(st, member_where);
    ZipFilePtr f(zip_fopen_index(za.get(), i, 0));
    TORCH_CHECK(f != nullptr, member_where, ": cannot open member (", zip_strerror(za.get()), ")");
    ZipMemberReader reader(f.get(), member_where);
    if (std::find(header_only.begin(), header_only.end(), key) != header_only.end()) {
      detail::NpyHeader h = detail::read_npy_header(reader, size, member_where);
      out.emplace(key, NpyArray{h.descr, h.shape, at::Tensor()});
    } else {
      out.emplace(key, detail::read_npy(reader, size, member_where));
    }
  }
  return out;
}

void read_npz_rows(const std::string& path, const std::string& key, int64_t rows_per_chunk,
                   const std::function<void(const at::Tensor& chunk, int64_t first_row)>& fn) {
  const std::string where = "read_npz_rows(" + path + ")";
  TORCH_CHECK(rows_per_chunk >= 1, where, ": rows_per_chunk must be >= 1 (got ", rows_per_chunk,
              ")");
  ZipPtr za = open_archive(path, where);
  const std::string name = key + kNpySuffix;
  const std::string member_where = where + ": " + name;
  const zip_int64_t index = zip_name_locate(za.get(), name.c_str(), 0);
  TORCH_CHECK(index >= 0, member_where, ": no such array in the archive");
  zip_stat_t st;
  zip_stat_init(&st);
  TORCH_CHECK(zip_stat_index(za.get(), index, 0, &st) == 0 && (st.valid & ZIP_STAT_SIZE),
              member_where, ": cannot stat (", zip_strerror(za.get()), ")");
  const uint64_t size = checked_member_size(st, member_where);
  ZipFilePtr f(zip_fopen_index(za.get(), index, 0));
  TORCH_CHECK(f != nullptr, member_where, ": cannot open member (", zip_strerror(za.get()), ")");
  ZipMemberReader reader(f.get(), member_where);
  const detail::NpyHeader h = detail::read_npy_header(reader, size, member_where);
  TORCH_CHECK(h.shape.size() == 2, member_where, ": expected a 2-D array (got ", h.shape.size(),
              " dimensions)");
  TORCH_CHECK(h.dtype == at::kFloat || h.dtype == at::kDouble || h.dtype == at::kHalf, member_where,
              ": dtype must be float16, float32 or float64 (got '", h.descr, "')");
  TORCH_CHECK(!h.fortran || h.shape[0] <= 1 || h.shape[1] <= 1, member_where,
              ": a Fortran-ordered array cannot be read by rows");
  const int64_t n = h.shape[0], cols = h.shape[1];
  const size_t row_bytes = static_cast<size_t>(cols) * static_cast<size_t>(h.itemsize);
  for (int64_t first = 0; first < n; first += rows_per_chunk) {
    const int64_t r = std::min(rows_per_chunk, n - first);
    at::Tensor raw = at::empty({r, cols}, at::TensorOptions().dtype(h.dtype));
    const size_t want = static_cast<size_t>(r) * row_bytes;
    size_t done = 0;
    while (done < want) {
      const size_t got = reader.read(static_cast<char*>(raw.data_ptr()) + done, want - done);
      TORCH_CHECK(got > 0, member_where, ": truncated array data (expected ", h.data_bytes,
                  " bytes, got ", static_cast<uint64_t>(first) * row_bytes + done, ")");
      done += got;
    }
    fn(h.dtype == at::kFloat ? raw : raw.to(at::kFloat), first);
  }
  char extra;
  TORCH_CHECK(reader.read(&extra, 1) == 0, member_where, ": unexpected bytes after the array data");
}

void write_npz(const std::string& path, const std::map<std::string, at::Tensor>& arrays,
               bool compress) {
  const std::string where = "write_npz(" + path + ")";
  TORCH_CHECK(!arrays.empty(), where, ": no arrays to write");
  // Headers and contiguous CPU tensors must outlive zip_close, which reads the sources.
  std::vector<std::string> headers;
  std::vector<at::Tensor> tensors;
  headers.reserve(arrays.size());
  tensors.reserve(arrays.size());
  for (const auto& [key, t] : arrays) {
    TORCH_CHECK(!key.empty(), where, ": empty array name");
    TORCH_CHECK(t.defined(), where, ": ", key, ": undefined tensor");
    tensors.push_back(t.cpu().contiguous());
    headers.push_back(detail::npy_header(tensors.back(), where + ": " + key));
  }

  const std::string tmp = create_temp_file(path, where);
  int err = 0;
  zip_t* za = zip_open(tmp.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &err);
  if (za == nullptr) {
    std::remove(tmp.c_str());
    TORCH_CHECK(false, where, ": cannot create archive (", zip_error_text(err), ")");
  }
  auto fail = [&](const std::string& problem) {
    std::string msg = where + ": " + problem + " (" + zip_strerror(za) + ")";
    zip_discard(za);
    std::remove(tmp.c_str());
    TORCH_CHECK(false, msg);
  };
  size_t i = 0;
  for (const auto& entry : arrays) {
    const std::string& key = entry.first;
    const at::Tensor& t = tensors[i];
    const std::string& header = headers[i];
    ++i;
    zip_buffer_fragment_t fragments[2] = {
        {reinterpret_cast<zip_uint8_t*>(const_cast<char*>(header.data())), header.size()},
        {static_cast<zip_uint8_t*>(t.data_ptr()), static_cast<zip_uint64_t>(t.nbytes())}};
    const zip_uint64_t num_fragments = t.nbytes() > 0 ? 2 : 1;
    zip_error_t zerr;
    zip_error_init(&zerr);
    zip_source_t* src = zip_source_buffer_fragment_create(fragments, num_fragments, 0, &zerr);
    if (src == nullptr) {
      std::string problem = key + ": cannot create source: " + zip_error_strerror(&zerr);
      zip_error_fini(&zerr);
      fail(problem);
    }
    zip_error_fini(&zerr);
    const std::string member = key + kNpySuffix;
    zip_int64_t idx = zip_file_add(za, member.c_str(), src, ZIP_FL_ENC_UTF_8);
    if (idx < 0) {
      zip_source_free(src);
      fail(member + ": cannot add member");
    }
    if (zip_set_file_compression(za, idx, compress ? ZIP_CM_DEFLATE : ZIP_CM_STORE,
                                 compress ? kDeflateLevel : 0) != 0 ||
        zip_file_set_mtime(za, idx, kMemberMtime, 0) != 0) {
      fail(member + ": cannot set member attributes");
    }
  }
  if (zip_close(za) != 0) fail("cannot write archive");
  fsync_file(tmp);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    std::remove(tmp.c_str());
    TORCH_CHECK(false, where, ": cannot rename the temporary file into place (", std::strerror(e),
                ")");
  }
}

}  // namespace qgnn
