#pragma once
// Small text files written atomically (reports, JSON, CSV).
#include <string>

#include "qgnn/util/export.h"

namespace qgnn {

// Writes `contents` to `path` through a temporary file "<path>.tmp.<pid>" in the same
// directory, fsync(2) and rename(2): readers see the old file or the new one, never a
// torn one. Every write, the fsync and the close are checked.
// Throws c10::Error naming the path when the temporary cannot be created or written
// (directory not writable, disk full, file size limit) or cannot be renamed; the
// temporary is removed and an existing file at `path` is untouched then.
QGNN_API void write_file_atomic(const std::string& path, const std::string& contents);

}  // namespace qgnn
