// qgnn: command-line front end. Each subcommand (cli/cmd_*.cpp) parses its options, calls
// the library (qgnn/pipeline/) and prints. The contract (tests/cli/test_cli.sh): exit 0
// on success, 1 on bad input or a runtime failure, 2 on a usage error; every error is
// exactly one line on stderr; --help and --version print to stdout and exit 0.
#include <c10/util/Exception.h>
#include <malloc.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <memory>
#include <vector>

#include "cli/command.h"
#include "cli/usage.h"
#include "qgnn_build_config.h"

namespace {

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

// First line of an exception message (c10::Error may carry a backtrace after it).
std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

// One line for a CLI11 parse error: "--threads: must be >= 0, got -1" reads
// "--threads must be >= 0, got -1".
std::string usage_line(const CLI::ParseError& e) {
  std::string msg = first_line(e.what());
  const size_t colon = msg.find(": must ");
  if (colon != std::string::npos && msg.rfind("-", 0) == 0) msg.erase(colon, 1);
  const size_t is = msg.find(": is not a valid policy");
  if (is != std::string::npos && msg.rfind("-", 0) == 0) msg.erase(is, 1);
  return msg;
}

}  // namespace

int main(int argc, char** argv) {
  namespace cli = qgnn::cli;
  CLI::App app{"qgnn: quantized graph neural networks on CPU"};
  app.set_version_flag("--version", std::string("qgnn ") + QGNN_VERSION_STRING);
  app.require_subcommand(1);

  std::vector<std::unique_ptr<cli::Command>> commands;
  commands.push_back(cli::make_info_command());
  commands.push_back(cli::make_train_command());
  commands.push_back(cli::make_eval_command());
  commands.push_back(cli::make_quantize_command());
  commands.push_back(cli::make_run_command());
  commands.push_back(cli::make_memory_command());
  commands.push_back(cli::make_infer_command());
  commands.push_back(cli::make_generate_command());
  commands.push_back(cli::make_convert_command());
  std::vector<CLI::App*> subcommands;
  for (auto& c : commands) subcommands.push_back(c->add_to(app));

  cli::Command* chosen = nullptr;
  try {
    app.parse(argc, argv);
    for (size_t i = 0; i < commands.size(); ++i) {
      if (*subcommands[i]) chosen = commands[i].get();
    }
    if (chosen != nullptr) chosen->check();
  } catch (const CLI::ParseError& e) {
    // --help and --version are "errors" with exit code 0: print them to stdout.
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);
    std::string line = usage_line(e);
    if (line == "A subcommand is required") {
      std::string names;
      for (const CLI::App* sub : app.get_subcommands({})) {
        names += (names.empty() ? "" : ", ") + sub->get_name();
      }
      line = argc > 1 && argv[1][0] != '-'
                 ? "unknown command '" + std::string(argv[1]) + "' (commands: " + names + ")"
                 : "a command is required (commands: " + names + ")";
    }
    std::cerr << "qgnn: error: " << line << "\n";
    return kExitUsage;
  } catch (const cli::UsageError& e) {
    std::cerr << "qgnn: error: " << first_line(e.what()) << "\n";
    return kExitUsage;
  }
  if (chosen == nullptr) return 0;
  if (!chosen->keeps_allocator_defaults()) {
    // Keep freed memory in the heap instead of returning every block >= 32 MiB to the
    // kernel: otherwise each large tensor allocation pays its page faults again on every
    // epoch (measured: 17 ms to allocate and fill a 42 MB tensor vs. 2.3 ms to fill it).
    // Not for `qgnn memory`, which measures peak RSS with the allocator's defaults.
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
  }
  try {
    return chosen->run();
  } catch (const cli::UsageError& e) {
    std::cerr << "qgnn: error: " << first_line(e.what()) << "\n";
    return kExitUsage;
  } catch (const c10::Error& e) {
    std::cerr << "qgnn: error: " << first_line(e.what_without_backtrace()) << "\n";
    return kExitFailure;
  } catch (const std::exception& e) {
    std::cerr << "qgnn: error: " << first_line(e.what()) << "\n";
    return kExitFailure;
  }
}
