#include "qgnn/io/text_file.h"

#include <c10/util/Exception.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace qgnn {

void write_file_atomic(const std::string& path, const std::string& contents) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  TORCH_CHECK(fd >= 0, "write_file_atomic(", path, "): cannot create ", tmp, " (",
              std::strerror(errno), ")");
  // Every write(2), fsync(2) and close(2) is checked: a full disk or a file size limit
  // must fail the write, never rename a truncated file over the existing one.
  size_t done = 0;
  int err = 0;
  while (done < contents.size()) {
    const ssize_t n = ::write(fd, contents.data() + done, contents.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      err = n < 0 ? errno : EIO;
      break;
    }
    done += static_cast<size_t>(n);
  }
  if (err == 0 && ::fsync(fd) != 0) err = errno;
  if (::close(fd) != 0 && err == 0) err = errno;
  if (err != 0) {
    std::remove(tmp.c_str());
    TORCH_CHECK(false, "write_file_atomic(", path, "): cannot write ", tmp, " (",
                std::strerror(err), ")");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    std::remove(tmp.c_str());
    TORCH_CHECK(false, "write_file_atomic(", path, "): cannot rename ", tmp, " to it (",
                std::strerror(e), ")");
  }
}

}  // namespace qgnn
