// `qgnn run`, the main job: train fp32, select bits automatically (SGQuant), fine-tune,
// report.
#include <iostream>

#include "cli/command.h"
#include "cli/quantize_report.h"
#include "cli/report.h"

namespace qgnn::cli {
namespace {

class RunCommand : public Command {
 public:
  CLI::App* add_to(CLI::App& app) override {
    auto* cmd = app.add_subcommand(
        "run", "main job: train GCN on Cora, select bits automatically, fine-tune, report");
    cmd->add_option("--dataset", dataset_, "bundled name (cora) or .npz path")
        ->capture_default_str();
    cmd->add_option("--model", model_, model_choices())
        ->check(one_of(kModels))
        ->capture_default_str();
    cmd->add_option("--preset", preset_, "kipf or sgquant")
        ->check(one_of(kPresets))
        ->capture_default_str();
    cmd->add_option("--feature-norm", feature_norm_, kFeatureNormHelp)
        ->check(one_of(kFeatureNorms))
        ->capture_default_str();
    cmd->add_option("--seed", seed_, "seed")->capture_default_str();
    add_quantize_options(cmd, q_);
    add_common(cmd, common_);
    return cmd;
  }

  int run() override {
    apply_threads(common_);
    q_.config.seed = seed_;  // the search and fine-tuning follow the run's seed
    Outputs out;
    reserve_quantize_outputs(out, q_, common_);
    QuantizeJob job = quantize_job_untrained(dataset_, model_, preset_, feature_norm_, seed_);
    std::cout << "qgnn run: " << model_ << " (" << job.preset.name << " preset) on "
              << job.dataset.name << ", then automatic bit selection (SGQuant) and fine-tuning\n";
    const TrainResult fp32 = train_full_batch(*job.model, *job.data, job.preset.optim);
    std::cout << "fp32: val " << fmt(fp32.best_val_acc) << " %, test " << fmt(fp32.test_acc)
              << " % (epoch " << fp32.best_epoch << ")\n";
    return quantize_and_report(out, job, q_, common_);
  }

 private:
  CommonOptions common_;
  std::string dataset_ = "cora", model_ = "gcn", preset_ = "sgquant", feature_norm_ = "auto";
  int64_t seed_ = 0;
  QuantizeCliOptions q_;
};

}  // namespace

std::unique_ptr<Command> make_run_command() { return std::make_unique<RunCommand>(); }

}  // namespace qgnn::cli
