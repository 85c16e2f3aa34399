#pragma once
// Small text files written atomically (reports, JSON, CSV).
#include <string>

#include "qgnn/util/export.h"

namespace qgnn {

// Writes `contents` to `path` through a temporary file in the same directory and
// rename(2): readers see the old file or the new one, never a torn one.
// Throws c10::Error naming the path when the directory is not writable.
QGNN_API void write_file_atomic(const std::string& path, const std::string& contents);

}  // namespace qgnn
