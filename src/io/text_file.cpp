#include "qgnn/io/text_file.h"

#include <c10/util/Exception.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

namespace qgnn {

void write_file_atomic(const std::string& path, const std::string& contents) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    TORCH_CHECK(out.good(), "write_file_atomic(", path, "): cannot create ", tmp);
    out << contents;
    out.flush();
    if (!out.good()) {
      std::remove(tmp.c_str());
      TORCH_CHECK(false, "write_file_atomic(", path, "): write failed");
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    TORCH_CHECK(false, "write_file_atomic(", path, "): cannot rename ", tmp, " to it");
  }
}

}  // namespace qgnn
