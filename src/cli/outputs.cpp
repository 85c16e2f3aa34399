#include "cli/outputs.h"

#include <c10/util/Exception.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "cli/usage.h"
#include "qgnn/io/text_file.h"

namespace qgnn::cli {
namespace {

// Temporaries an interrupting signal must remove. Plain char arrays: the handler may only
// call async-signal-safe functions (unlink, signal, raise).
constexpr int kMaxTemps = 16;
constexpr size_t kMaxPath = 4096;
char g_temps[kMaxTemps][kMaxPath];
std::atomic<int> g_num_temps{0};
pid_t g_owner = 0;  // a forked child (qgnn memory) must not remove its parent's files

extern "C" void remove_temps_and_reraise(int sig) {
  const int n = g_num_temps.load();
  for (int i = 0; i < n && ::getpid() == g_owner; ++i) {
    if (g_temps[i][0] != '\0') ::unlink(g_temps[i]);
  }
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

void install_handlers() {
  static const bool installed = [] {
    g_owner = ::getpid();
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) std::signal(sig, remove_temps_and_reraise);
    return true;
  }();
  (void)installed;
}

void track(const std::string& tmp) {
  const int i = g_num_temps.load();
  if (i >= kMaxTemps || tmp.size() >= kMaxPath) return;  // removed by the destructor only
  std::memcpy(g_temps[i], tmp.c_str(), tmp.size() + 1);
  g_num_temps.store(i + 1);
}

void untrack(const std::string& tmp) {
  const int n = g_num_temps.load();
  for (int i = 0; i < n; ++i) {
    if (tmp == g_temps[i]) g_temps[i][0] = '\0';
  }
}

}  // namespace

Outputs::Outputs() { install_handlers(); }

Outputs::~Outputs() {
  for (const auto& [path, tmp] : temp_) {
    std::remove(tmp.c_str());
    untrack(tmp);
  }
}

void Outputs::reserve(const std::string& flag, const std::string& path) {
  if (path.empty()) return;
  namespace fs = std::filesystem;
  for (const auto& [other, other_flag] : flag_) {
    std::error_code ec;
    if (other == path || fs::equivalent(other, path, ec)) {
      throw UsageError(flag + " and " + other_flag + " name the same file (got '" + path + "')");
    }
  }
  std::error_code ec;
  TORCH_CHECK(!fs::is_directory(path, ec), flag, ": cannot write ", path, " (it is a directory)");
  std::string tmpl = path + ".tmp.XXXXXX";
  const int fd = ::mkstemp(tmpl.data());
  TORCH_CHECK(fd >= 0, flag, ": cannot write ", path, " (", std::strerror(errno), ")");
  // mkstemp creates 0600; give the file the mode a plain open would (0666 & ~umask).
  const mode_t mask = ::umask(0);
  ::umask(mask);
  ::fchmod(fd, 0666 & ~mask);
  ::close(fd);
  track(tmpl);
  order_.emplace(order_.size(), path);
  flag_.emplace(path, flag);
  temp_.emplace(path, std::move(tmpl));
}

const std::string& Outputs::temp(const std::string& path) const {
  const auto it = temp_.find(path);
  TORCH_INTERNAL_ASSERT(it != temp_.end(), "output ", path, " was not reserved");
  return it->second;
}

void Outputs::write_text(const std::string& path, const std::string& contents) const {
  if (path.empty()) return;
  write_file_atomic(temp(path), contents);
}

void Outputs::commit() {
  for (const auto& [index, path] : order_) {
    const std::string& tmp = temp_.at(path);
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
      const int e = errno;
      TORCH_CHECK(false, flag_.at(path), ": cannot write ", path, " (", std::strerror(e), ")");
    }
    untrack(tmp);
    temp_.erase(path);
  }
  order_.clear();
  flag_.clear();
}

}  // namespace qgnn::cli
