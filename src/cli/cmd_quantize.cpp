// `qgnn quantize`: SGQuant on a trained fp32 checkpoint (qgnn/pipeline/quantize.h).
#include "cli/command.h"
#include "cli/quantize_report.h"
#include "cli/report.h"

namespace qgnn::cli {
namespace {

class QuantizeCommand : public Command {
 public:
  CLI::App* add_to(CLI::App& app) override {
    auto* cmd = app.add_subcommand("quantize", "quantize a trained model (SGQuant)");
    cmd->add_option("--checkpoint", checkpoint_, "fp32 checkpoint from train --save")->required();
    cmd->add_option("--dataset", dataset_, "bundled name (cora) or .npz path")->required();
    cmd->add_option("--seed", q_.config.seed, "seed of the search and fine-tuning")
        ->capture_default_str();
    add_quantize_options(cmd, q_);
    add_common(cmd, common_);
    return cmd;
  }

  int run() override {
    apply_threads(common_);
    Outputs out;
    reserve_quantize_outputs(out, q_, common_);
    if (q_.config.policy != "auto") BitPolicy::parse(q_.config.policy);  // fail fast
    QuantizeJob job = quantize_job_from_checkpoint(checkpoint_, dataset_);
    return quantize_and_report(out, job, q_, common_);
  }

 private:
  CommonOptions common_;
  std::string checkpoint_, dataset_;
  QuantizeCliOptions q_;
};

}  // namespace

std::unique_ptr<Command> make_quantize_command() { return std::make_unique<QuantizeCommand>(); }

}  // namespace qgnn::cli
