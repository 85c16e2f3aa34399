#pragma once
// Helpers shared by the io tests: error-message checks and a scratch directory.
#include <c10/util/Exception.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <string>

namespace qgnn_test {

// Runs `fn` and expects a c10::Error whose message is one line and contains every string
// of `parts` (file path, array name, bad value, ...).
template <typename Fn>
void expect_error(Fn&& fn, std::initializer_list<std::string> parts) {
  try {
    fn();
  } catch (const c10::Error& e) {
    const std::string msg = e.what_without_backtrace();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "message is not one line: " << msg;
    for (const std::string& part : parts) {
      EXPECT_NE(msg.find(part), std::string::npos) << "message lacks \"" << part << "\": " << msg;
    }
    return;
  }
  ADD_FAILURE() << "no c10::Error was thrown";
}

// A fresh directory under the test temp dir, removed with its contents on destruction.
class ScratchDir {
 public:
  ScratchDir() {
    std::string tmpl = ::testing::TempDir() + "qgnn_io_XXXXXX";
    const char* made = mkdtemp(tmpl.data());
    if (made == nullptr) ADD_FAILURE() << "mkdtemp failed for " << tmpl;
    path_ = tmpl;
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  std::string file(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline std::string read_file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline void write_file_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace qgnn_test

// EXPECT_ERROR(statement, "substring", ...): `statement` throws a one-line c10::Error
// containing every substring.
#define EXPECT_ERROR(stmt, ...)                              \
  do {                                                       \
    SCOPED_TRACE(#stmt);                                     \
    ::qgnn_test::expect_error([&] { stmt; }, {__VA_ARGS__}); \
  } while (0)
