#pragma once
// One `qgnn` subcommand: its options, the checks parsing alone cannot make, and its run
// (argument parsing and printing only; the work is the library's, qgnn/pipeline/).
#include <memory>
#include <vector>

namespace CLI {
class App;
}

namespace qgnn::cli {

class Command {
 public:
  virtual ~Command() = default;
  // Adds the subcommand and its options to `app`; returns it.
  virtual CLI::App* add_to(CLI::App& app) = 0;
  // Combinations of flags that parsing alone cannot check; throws UsageError.
  virtual void check() const {}
  // Runs the parsed command; returns the exit code (errors are thrown).
  virtual int run() = 0;
  // True for a command that measures memory with the allocator's default settings.
  virtual bool keeps_allocator_defaults() const { return false; }
};

std::unique_ptr<Command> make_info_command();
std::unique_ptr<Command> make_train_command();
std::unique_ptr<Command> make_eval_command();
std::unique_ptr<Command> make_quantize_command();
std::unique_ptr<Command> make_run_command();
std::unique_ptr<Command> make_memory_command();
std::unique_ptr<Command> make_infer_command();
std::unique_ptr<Command> make_generate_command();
std::unique_ptr<Command> make_convert_command();

}  // namespace qgnn::cli
