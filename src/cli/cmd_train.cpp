// `qgnn train`: the multi-seed training protocol (qgnn/pipeline/train.h), optionally
// quantization-aware; prints one row per run and the summary.
#include <torch/torch.h>

#include <cstdio>
#include <iostream>

#include "cli/command.h"
#include "cli/report.h"
#include "cli/usage.h"
#include "qgnn/pipeline/train.h"
#include "qgnn/util/stats.h"
#include "qgnn/util/threads.h"

namespace qgnn::cli {
namespace {

class TrainCommand : public Command {
 public:
  CLI::App* add_to(CLI::App& app) override {
    auto* cmd = app.add_subcommand("train", "train a model, full batch, report accuracy");
    cmd->add_option("--dataset", c_.dataset, "bundled name (cora) or .npz path")->required();
    cmd->add_option("--model", c_.model, model_choices())->required()->check(one_of(kModels));
    cmd->add_option("--preset", c_.preset, "kipf or sgquant")
        ->check(one_of(kPresets))
        ->capture_default_str();
    cmd->add_option("--runs", runs_, "repeat with seeds seed..seed+runs-1")
        ->check(integer_at_least(1))
        ->capture_default_str();
    cmd->add_option("--seed", seed_, "first seed")->capture_default_str();
    cmd->add_option("--epochs", c_.epochs, "maximum epochs (default: preset)")
        ->check(integer_at_least(1));
    cmd->add_option("--patience", c_.patience, "early-stopping patience (default: preset)")
        ->check(integer_at_least(1));
    cmd->add_option("--hidden", c_.hidden, "hidden channels (default: preset)")
        ->check(integer_at_least(1));
    cmd->add_option("--lr", c_.lr, "learning rate (default: preset)")->check(positive());
    cmd->add_option("--feature-norm", c_.feature_norm, kFeatureNormHelp)
        ->check(one_of(kFeatureNorms))
        ->capture_default_str();
    cmd->add_option("--save", save_, "write the first run's best model here");
    cmd->add_option("--qat", c_.qat, "quantization-aware training: int8 or int4")
        ->check(one_of({"int8", "int4"}));
    cmd->add_option("--qat-policy", c_.qat_policy,
                    "with --qat: per-point widths, schemes and range rules replacing the "
                    "preset's (e.g. 'bits=4;w=8;agg.range=percentile')")
        ->check(policy_spec(false));
    cmd->add_flag("--degree-quant", c_.degree_quant,
                  "with --qat: Degree-Quant's protective masking by in-degree");
    cmd->add_option("--observer", c_.observer,
                    "with --qat: momentum or percentile range tracking (default: percentile "
                    "with --degree-quant, as in the paper; momentum without)")
        ->check(one_of({"momentum", "percentile"}));
    cmd->add_option("--dq-pmin", c_.p_min,
                    "Degree-Quant: protection probability at the lowest in-degree")
        ->check(number_in(0.0, 1.0, false))
        ->capture_default_str();
    cmd->add_option("--dq-pmax", c_.p_max,
                    "Degree-Quant: protection probability at the highest in-degree")
        ->check(number_in(0.0, 1.0, false))
        ->capture_default_str();
    add_common(cmd, common_);
    return cmd;
  }

  void check() const override {
    if (c_.degree_quant && c_.qat.empty()) {
      throw UsageError("--degree-quant needs --qat int8|int4");
    }
    if (!c_.qat_policy.empty() && c_.qat.empty()) {
      throw UsageError("--qat-policy needs --qat int8|int4");
    }
    if (!c_.observer.empty() && c_.qat.empty()) {
      throw UsageError("--observer needs --qat int8|int4");
    }
    if (c_.p_min > c_.p_max) {
      throw UsageError("--dq-pmin must not exceed --dq-pmax, got " + number_text(c_.p_min) + " > " +
                       number_text(c_.p_max));
    }
  }

  int run() override {
    apply_threads(common_);
    Outputs out;
    out.reserve("--json", common_.json);
    out.reserve("--save", save_);
    TrainSetup setup = prepare_training(c_, seed_);
    std::cout << "dataset " << setup.dataset.name << ", model " << c_.model << ", preset "
              << setup.preset.name << ", features " << to_string(setup.norm) << ", threads "
              << get_num_threads();
    if (setup.qat) {
      std::cout << ", QAT " << c_.qat << (c_.degree_quant ? " Degree-Quant" : " plain") << " ("
                << setup.observer << " observer)";
    }
    std::cout << "\nrun  seed  best_epoch  epochs  val_acc  test_acc  epoch_ms  infer_ms\n";
    std::function<void(int64_t, const EpochReport&)> progress;
    if (show_progress(common_)) {
      progress = [&](int64_t r, const EpochReport& e) {
        std::fprintf(stderr, "\r  run %lld/%lld  epoch %lld/%lld  loss %.4f  val %.2f  best %.2f ",
                     static_cast<long long>(r + 1), static_cast<long long>(runs_),
                     static_cast<long long>(e.epoch), static_cast<long long>(e.max_epochs),
                     e.train_loss, e.val_acc, e.best_val_acc);
        std::fflush(stderr);
      };
    }
    auto on_run = [&](int64_t r, const TrainRun& run) {
      if (progress) std::fprintf(stderr, "\r\033[K");
      const TrainResult& res = run.result;
      std::printf("%3lld  %4lld  %10lld  %6lld  %7s  %8s  %8s  %8s\n", static_cast<long long>(r),
                  static_cast<long long>(run.seed), static_cast<long long>(res.best_epoch),
                  static_cast<long long>(res.epochs_run), fmt(res.best_val_acc).c_str(),
                  fmt(res.test_acc).c_str(), fmt(median(res.epoch_ms), 3).c_str(),
                  fmt(median(res.infer_ms), 3).c_str());
      std::fflush(stdout);
      if (r == 0 && !save_.empty()) {
        save_checkpoint(out.temp(save_), *run.model, run_checkpoint_meta(setup, run));
      }
    };
    const TrainSummary s = train_runs(setup, runs_, seed_, on_run, progress);
    std::cout << "test accuracy " << fmt(s.test_acc_mean) << " +- " << fmt(s.test_acc_std)
              << " % over " << runs_ << " run(s); val " << fmt(s.val_acc_mean) << " %; epoch "
              << fmt(s.epoch_ms_median, 3) << " ms, inference " << fmt(s.infer_ms_median, 3)
              << " ms (medians)\n";
    const Preset& preset = setup.preset;
    write_json(out, common_,
               {{"dataset", setup.dataset.name},
                {"model", c_.model},
                {"preset", preset.name},
                {"feature_norm", to_string(setup.norm)},
                {"split", setup.dataset.has_public_split ? "public" : "random"},
                {"runs", runs_},
                {"seeds", s.seeds},
                {"test_acc", s.test_acc},
                {"val_acc", s.val_acc},
                {"best_epoch", s.best_epochs},
                {"test_acc_mean", s.test_acc_mean},
                {"test_acc_std", s.test_acc_std},
                {"val_acc_mean", s.val_acc_mean},
                {"epoch_ms_median", s.epoch_ms_median},
                {"infer_ms_median", s.infer_ms_median},
                {"threads", get_num_threads()},
                {"model_config", nlohmann::json::parse(preset.model.to_json())},
                {"lr", preset.optim.lr},
                {"weight_decay", preset.optim.weight_decay},
                {"epochs", preset.optim.epochs},
                {"patience", preset.optim.patience},
                {"qat", c_.qat.empty() ? "none" : c_.qat},
                {"qat_policy", setup.qat ? setup.qat->policy.to_string() : "fp32"},
                {"degree_quant", c_.degree_quant},
                {"observer", setup.observer}});
    out.commit();
    if (!save_.empty()) std::cout << "saved " << save_ << "\n";
    return 0;
  }

 private:
  CommonOptions common_;
  TrainConfig c_;
  int64_t runs_ = 1;
  int64_t seed_ = 0;
  std::string save_;
};

}  // namespace

std::unique_ptr<Command> make_train_command() { return std::make_unique<TrainCommand>(); }

}  // namespace qgnn::cli
