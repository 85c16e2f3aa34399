// libFuzzer target: NPY / NPZ readers and dataset validation on arbitrary bytes.
// Bad input must end in c10::Error; any other exception, crash, sanitizer report,
// timeout or allocation beyond -rss_limit_mb is a bug. The same bytes go to parse_npy
// (as one .npy blob) and, written to a scratch file, to read_npz, read_npz_rows and
// read_dataset (which reads the archive again and validates the arrays).
#include <c10/util/Exception.h>
#include <zlib.h>

#include <cstdint>
#include <map>
#include <string>

#include "fuzz_util.h"
#include "qgnn/io/dataset.h"
#include "qgnn/io/npz.h"

namespace {

uint32_t le(const std::string& z, size_t at, int bytes) {
  uint32_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(z[at + i]);
  return v;
}

void put_le32(std::string& z, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) z[at + i] = static_cast<char>(v >> (8 * i));
}

// A mutation inside a member's data almost always breaks its CRC-32, which libzip reports
// only at the member's end, so the arrays would never reach read_dataset's checks: the
// CRCs of stored members are recomputed (local headers and central directory) before
// the archive is read. Archives the walk does not understand are left as they are.
void fix_stored_crcs(std::string& z) {
  std::map<uint32_t, uint32_t> crc_of;  // local header offset -> CRC-32 of its data
  size_t p = 0;
  while (p + 30 <= z.size() && z.compare(p, 4, "PK\x03\x04", 4) == 0) {
    const uint32_t flags = le(z, p + 6, 2), method = le(z, p + 8, 2), csize = le(z, p + 18, 4);
    const size_t data = p + 30 + le(z, p + 26, 2) + le(z, p + 28, 2);
    if ((flags & 8) != 0 || data > z.size() || csize > z.size() - data) break;
    if (method == 0) {
      const uint32_t crc = static_cast<uint32_t>(
          crc32(0, reinterpret_cast<const Bytef*>(z.data() + data), static_cast<uInt>(csize)));
      put_le32(z, p + 14, crc);
      crc_of[static_cast<uint32_t>(p)] = crc;
    }
    p = data + csize;
  }
  for (size_t q = z.find("PK\x01\x02", p); q != std::string::npos && q + 46 <= z.size();
       q = z.find("PK\x01\x02", q + 4)) {
    const auto it = crc_of.find(le(z, q + 42, 4));
    if (it != crc_of.end()) put_le32(z, q + 16, it->second);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static qgnn::fuzz::ScratchFile file(".npz");
  try {
    qgnn::parse_npy(data, size, "fuzz.npy");
  } catch (const c10::Error&) {
  }
  std::string bytes(reinterpret_cast<const char*>(data), size);
  fix_stored_crcs(bytes);
  const std::string& path =
      file.write(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  try {
    qgnn::read_npz(path);
  } catch (const c10::Error&) {
  }
  try {
    qgnn::read_npz_rows(path, "x", 7, [](const at::Tensor&, int64_t) {});
  } catch (const c10::Error&) {
  }
  try {
    qgnn::read_dataset(path, /*split_seed=*/1);
  } catch (const c10::Error&) {
  }
  return 0;
}
