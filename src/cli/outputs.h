#pragma once
// The output files of one `qgnn` command, written all or nothing.
//
// Every output path (--json, --save, --csv, --out) is reserved when the command starts:
// its temporary sibling "<path>.tmp.XXXXXX" is created then, so an unwritable path fails
// in a second instead of after an hour of training. Writers write to the temporary
// (temp()); commit() renames every temporary onto its path once the command has
// succeeded. A command that fails (throws) or is interrupted (SIGINT, SIGTERM, SIGHUP)
// leaves no file and no temporary behind, and a file that already existed at any of the
// paths keeps its bytes.
#include <map>
#include <string>

namespace qgnn::cli {

class Outputs {
 public:
  Outputs();
  Outputs(const Outputs&) = delete;
  Outputs& operator=(const Outputs&) = delete;
  // Removes every temporary not yet committed.
  ~Outputs();

  // Reserves `path` for the output named by `flag` (e.g. "--json"); an empty path
  // reserves nothing. Throws c10::Error "<flag>: cannot write <path> (<reason>)" when the
  // path is a directory or its directory does not exist or is not writable, and
  // UsageError (exit code 2) when two flags name the same path.
  void reserve(const std::string& flag, const std::string& path);

  // The temporary file standing in for a reserved `path` until commit().
  const std::string& temp(const std::string& path) const;

  // Writes `contents` to the temporary of a reserved `path` (no-op for an empty path).
  void write_text(const std::string& path, const std::string& contents) const;

  // Renames every temporary onto its path, in reservation order. Throws c10::Error naming
  // the path when a rename fails (outputs renamed before it stay in place).
  void commit();

 private:
  std::map<std::string, std::string> temp_;  // path -> temporary
  std::map<std::string, std::string> flag_;  // path -> flag that reserved it
  std::map<size_t, std::string> order_;      // reservation index -> path
};

}  // namespace qgnn::cli
