// qgnn: command-line front end. Parses options, calls the library, prints results.
// The contract (tests/cli/test_cli.sh): exit 0 on success, 1 on bad input or a runtime
// failure, 2 on a usage error; every error is exactly one line on stderr; --help and
// --version print to stdout and exit 0.
#include <c10/util/Exception.h>
#include <malloc.h>

#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>
#include <iostream>

#include "cli/commands.h"
#include "cli/commands_generate.h"
#include "cli/usage.h"
#include "qgnn/quant/bit_policy.h"
#include "qgnn_build_config.h"

namespace {

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

std::string number_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// Validators whose messages read "<flag> must be >= 0, got -1" once main() joins them
// with the flag name (CLI11 reports "<flag>: <message>").
CLI::Validator number_in(double lo, double hi, bool integer) {
  return CLI::Validator(
      [lo, hi, integer](std::string& s) -> std::string {
        double v = 0;
        size_t used = 0;
        try {
          v = std::stod(s, &used);
        } catch (const std::exception&) {
          used = 0;
        }
        if (used == 0 || used != s.size() || !std::isfinite(v) || (integer && v != std::floor(v))) {
          return std::string("must be ") + (integer ? "an integer" : "a number") + ", got '" + s +
                 "'";
        }
        if (v < lo || v > hi) {
          if (hi == HUGE_VAL) return "must be >= " + number_text(lo) + ", got " + s;
          return "must be in [" + number_text(lo) + ", " + number_text(hi) + "], got " + s;
        }
        return "";
      },
      "", "number_in");
}
CLI::Validator at_least(double lo) { return number_in(lo, HUGE_VAL, false); }
CLI::Validator positive() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        std::string copy = s;
        const std::string err = number_in(0, HUGE_VAL, false)(copy);
        if (!err.empty()) return err.rfind("must be >=", 0) == 0 ? "must be > 0, got " + s : err;
        return std::stod(s) > 0 ? "" : "must be > 0, got " + s;
      },
      "", "positive");
}
CLI::Validator integer_at_least(double lo) { return number_in(lo, HUGE_VAL, true); }

CLI::Validator one_of(std::vector<std::string> choices) {
  std::string list;
  for (const auto& c : choices) list += (list.empty() ? "" : ", ") + c;
  return CLI::Validator(
      [choices, list](std::string& s) -> std::string {
        for (const auto& c : choices) {
          if (s == c) return "";
        }
        return "must be one of " + list + ", got '" + s + "'";
      },
      "", "one_of");
}

const std::vector<std::string> kModels = {"gcn", "gat", "agnn", "sage", "gin"};
const std::vector<std::string> kPresets = {"kipf", "sgquant"};
const std::vector<std::string> kFeatureNorms = {"auto", "none", "row", "binarize", "tfidf"};
const char* const kFeatureNormHelp =
    "auto (row with a public split, binarize for counts, none for continuous features), "
    "none, row, binarize or tfidf (tf x log(N / df), then row-normalized)";

// A bit-policy spec (include/qgnn/quant/bit_policy.h), or "auto" where allowed.
CLI::Validator policy_spec(bool allow_auto) {
  return CLI::Validator(
      [allow_auto](std::string& s) -> std::string {
        if (allow_auto && s == "auto") return "";
        try {
          qgnn::BitPolicy::parse(s);
        } catch (const c10::Error& e) {
          const std::string msg = e.what_without_backtrace();
          return "is not a valid policy: " + msg.substr(0, msg.find('\n'));
        }
        return "";
      },
      "", "policy_spec");
}

void add_common(CLI::App* app, qgnn::cli::CommonOptions& c, bool with_json = true) {
  app->add_option("--threads", c.threads, "intra-op threads (default: all cores)")
      ->check(integer_at_least(0));
  app->add_flag("-q,--quiet", c.quiet, "no progress output");
  if (with_json) app->add_option("--json", c.json, "write a JSON report to this file");
}

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
  CLI::App app{"qgnn: quantized graph neural networks on CPU"};
  app.set_version_flag("--version", std::string("qgnn ") + QGNN_VERSION_STRING);
  app.require_subcommand(1);

  qgnn::cli::InfoOptions info;
  auto* info_cmd = app.add_subcommand("info", "describe a dataset");
  info_cmd->add_option("--dataset", info.dataset, "bundled name (cora) or .npz path")->required();
  add_common(info_cmd, info.common);

  qgnn::cli::TrainOptions train;
  auto* train_cmd = app.add_subcommand("train", "train a model, full batch, report accuracy");
  train_cmd->add_option("--dataset", train.dataset, "bundled name (cora) or .npz path")->required();
  train_cmd->add_option("--model", train.model, "gcn, gat, agnn, sage or gin")
      ->required()
      ->check(one_of(kModels));
  train_cmd->add_option("--preset", train.preset, "kipf or sgquant")
      ->check(one_of(kPresets))
      ->capture_default_str();
  train_cmd->add_option("--runs", train.runs, "repeat with seeds seed..seed+runs-1")
      ->check(integer_at_least(1))
      ->capture_default_str();
  train_cmd->add_option("--seed", train.seed, "first seed")->capture_default_str();
  train_cmd->add_option("--epochs", train.epochs, "maximum epochs (default: preset)")
      ->check(integer_at_least(1));
  train_cmd->add_option("--patience", train.patience, "early-stopping patience (default: preset)")
      ->check(integer_at_least(1));
  train_cmd->add_option("--hidden", train.hidden, "hidden channels (default: preset)")
      ->check(integer_at_least(1));
  train_cmd->add_option("--lr", train.lr, "learning rate (default: preset)")->check(positive());
  train_cmd->add_option("--feature-norm", train.feature_norm, kFeatureNormHelp)
      ->check(one_of(kFeatureNorms))
      ->capture_default_str();
  train_cmd->add_option("--save", train.save, "write the first run's best model here");
  train_cmd->add_option("--qat", train.qat, "quantization-aware training: int8 or int4")
      ->check(one_of({"int8", "int4"}));
  train_cmd->add_flag("--degree-quant", train.degree_quant,
                      "with --qat: Degree-Quant's protective masking by in-degree");
  train_cmd
      ->add_option("--observer", train.observer,
                   "with --qat: momentum or percentile range tracking (default: percentile "
                   "with --degree-quant, as in the paper; momentum without)")
      ->check(one_of({"momentum", "percentile"}));
  train_cmd
      ->add_option("--dq-pmin", train.p_min,
                   "Degree-Quant: protection probability at the lowest in-degree")
      ->check(number_in(0.0, 1.0, false))
      ->capture_default_str();
  train_cmd
      ->add_option("--dq-pmax", train.p_max,
                   "Degree-Quant: protection probability at the highest in-degree")
      ->check(number_in(0.0, 1.0, false))
      ->capture_default_str();
  add_common(train_cmd, train.common);

  qgnn::cli::EvalOptions eval;
  auto* eval_cmd = app.add_subcommand("eval", "evaluate a saved checkpoint");
  eval_cmd->add_option("--checkpoint", eval.checkpoint, "file written by train --save")->required();
  eval_cmd->add_option("--dataset", eval.dataset, "bundled name (cora) or .npz path")->required();
  add_common(eval_cmd, eval.common);

  auto add_quantize = [](CLI::App* cmd, qgnn::cli::QuantizeOptions& q, bool with_policy) {
    if (with_policy) {
      cmd->add_option("--policy", q.policy, "bit policy spec (e.g. 'emb=4;att=2') or auto")
          ->check(policy_spec(/*allow_auto=*/true))
          ->capture_default_str();
    }
    cmd->add_option("--max-drop", q.max_drop, "auto: allowed validation-accuracy drop, points")
        ->check(at_least(0))
        ->capture_default_str();
    cmd->add_option("--margin-sigmas", q.margin_sigmas,
                    "auto: a configuration must clear the drop budget by this many standard "
                    "errors of its validation accuracy difference, 100 sqrt(disagreements) / "
                    "n_val points (0: a bare floor)")
        ->check(at_least(0))
        ->capture_default_str();
    cmd->add_option("--finetune-epochs", q.finetune_epochs,
                    "fine-tuning epochs of the final policy (default: 100; auto: the search's, "
                    "which rebuilds the measured model exactly)")
        ->check(integer_at_least(0));
    cmd->add_option("--search-finetune-epochs", q.search_finetune_epochs,
                    "auto: fine-tuning epochs of each measured configuration")
        ->check(integer_at_least(0))
        ->capture_default_str();
    cmd->add_option("--measure", q.measure, "auto: configurations measured per round (N_mea)")
        ->check(integer_at_least(1))
        ->capture_default_str();
    cmd->add_option("--sample", q.sample, "auto: candidates scored per round (N_sample)")
        ->check(integer_at_least(1))
        ->capture_default_str();
    cmd->add_option("--rounds", q.rounds, "auto: cost-model rounds (N_iter)")
        ->check(integer_at_least(0))
        ->capture_default_str();
    cmd->add_flag("--random-search", q.random_search, "auto: random search baseline");
    cmd->add_option("--granularity", q.granularity,
                    "auto: granularities the search may combine: uniform, cwq, lwq or taq (all)")
        ->check(one_of({"uniform", "cwq", "lwq", "taq"}))
        ->capture_default_str();
    cmd->add_option("--max-avg-bits", q.max_avg_bits,
                    "auto: memory budget in average bits; picks the most accurate policy within it")
        ->check(at_least(0));
    cmd->add_option("--csv", q.csv, "auto: write the measured configurations here");
    cmd->add_option("--save", q.save, "write the quantized model (weights + policy) here");
  };

  qgnn::cli::QuantizeOptions quant;
  auto* quant_cmd = app.add_subcommand("quantize", "quantize a trained model (SGQuant)");
  quant_cmd->add_option("--checkpoint", quant.checkpoint, "fp32 checkpoint from train --save")
      ->required();
  quant_cmd->add_option("--dataset", quant.dataset, "bundled name (cora) or .npz path")->required();
  quant_cmd->add_option("--seed", quant.seed, "seed of the search and fine-tuning")
      ->capture_default_str();
  add_quantize(quant_cmd, quant, true);
  add_common(quant_cmd, quant.common);

  qgnn::cli::RunOptions run;
  auto* run_cmd = app.add_subcommand(
      "run", "main job: train GCN on Cora, select bits automatically, fine-tune, report");
  run_cmd->add_option("--dataset", run.dataset, "bundled name (cora) or .npz path")
      ->capture_default_str();
  run_cmd->add_option("--model", run.model, "gcn, gat, agnn, sage or gin")
      ->check(one_of(kModels))
      ->capture_default_str();
  run_cmd->add_option("--preset", run.preset, "kipf or sgquant")
      ->check(one_of(kPresets))
      ->capture_default_str();
  run_cmd->add_option("--feature-norm", run.feature_norm, kFeatureNormHelp)
      ->check(one_of(kFeatureNorms))
      ->capture_default_str();
  run_cmd->add_option("--seed", run.seed, "seed")->capture_default_str();
  add_quantize(run_cmd, run.quantize, true);
  add_common(run_cmd, run.common);

  qgnn::cli::MemoryOptions mem;
  auto* mem_cmd = app.add_subcommand(
      "memory", "peak RSS of full-graph inference per bit policy, each in a child process");
  mem_cmd->add_option("--dataset", mem.dataset, "bundled name (cora) or .npz path")->required();
  auto* mem_ckpt = mem_cmd->add_option(
      "--checkpoint", mem.checkpoint,
      "trained fp32 checkpoint (train / quantize --save): its model, weights, features, split");
  auto* mem_model = mem_cmd
                        ->add_option("--model", mem.model,
                                     "untrained gcn, gat, agnn, sage or gin (sgquant preset)")
                        ->check(one_of(kModels))
                        ->capture_default_str();
  mem_model->excludes(mem_ckpt);
  auto* mem_norm = mem_cmd->add_option("--feature-norm", mem.feature_norm, kFeatureNormHelp)
                       ->check(one_of(kFeatureNorms))
                       ->capture_default_str();
  mem_norm->excludes(mem_ckpt);
  mem_cmd->add_flag("--check-fake", mem.check_fake,
                    "also run the fake-quantized model and report the agreement of predictions "
                    "(after the peak RSS is read)");
  mem_cmd
      ->add_option("--policies", mem.policies,
                   "comma-separated: fp32 (dense x), csr (fp32, sparse x), B (bits=B;emb.gran=row) "
                   "or a policy spec")
      ->delimiter(',')
      ->capture_default_str();
  mem_cmd->add_option("--chunk-rows", mem.chunk_rows, "rows of x read and packed at a time")
      ->check(integer_at_least(1))
      ->capture_default_str();
  mem_cmd->add_option("--seed", mem.seed, "split and weight seed")->capture_default_str();
  mem_cmd->add_option("--repeats", mem.repeats, "timed forwards after one warm-up")
      ->check(integer_at_least(0))
      ->capture_default_str();
  add_common(mem_cmd, mem.common);

  qgnn::cli::InferOptions infer;
  auto* infer_cmd = app.add_subcommand(
      "infer", "full-graph inference latency and accuracy at fp32, int8 or int4 (integer kernels)");
  infer_cmd
      ->add_option("--checkpoint", infer.checkpoint, "checkpoint (from train; --qat for int8/int4)")
      ->required();
  infer_cmd->add_option("--dataset", infer.dataset, "bundled name (cora) or .npz path")->required();
  infer_cmd->add_option("--precision", infer.precision, "fp32, int8 or int4")
      ->check(one_of({"fp32", "int8", "int4"}))
      ->capture_default_str();
  infer_cmd->add_option("--repeat", infer.repeat, "timed forwards (after one warm-up)")
      ->check(integer_at_least(1))
      ->capture_default_str();
  add_common(infer_cmd, infer.common);

  qgnn::cli::GenerateOptions gen;
  auto* gen_cmd = qgnn::cli::add_generate_command(app, gen);
  add_common(gen_cmd, gen.common);

  try {
    app.parse(argc, argv);
    // Combinations of flags that parsing alone cannot check.
    if (*train_cmd) {
      if (train.degree_quant && train.qat.empty()) {
        throw qgnn::cli::UsageError("--degree-quant needs --qat int8|int4");
      }
      if (!train.observer.empty() && train.qat.empty()) {
        throw qgnn::cli::UsageError("--observer needs --qat int8|int4");
      }
      if (train.p_min > train.p_max) {
        throw qgnn::cli::UsageError("--dq-pmin must not exceed --dq-pmax, got " +
                                    number_text(train.p_min) + " > " + number_text(train.p_max));
      }
    }
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
  } catch (const qgnn::cli::UsageError& e) {
    std::cerr << "qgnn: error: " << first_line(e.what()) << "\n";
    return kExitUsage;
  }
  if (!*mem_cmd) {
    // Keep freed memory in the heap instead of returning every block >= 32 MiB to the
    // kernel: otherwise each large tensor allocation pays its page faults again on every
    // epoch (measured: 17 ms to allocate and fill a 42 MB tensor vs. 2.3 ms to fill it).
    // Not for `qgnn memory`, which measures peak RSS with the allocator's defaults.
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
  }
  try {
    if (*info_cmd) return qgnn::cli::run_info(info);
    if (*train_cmd) return qgnn::cli::run_train(train);
    if (*eval_cmd) return qgnn::cli::run_eval(eval);
    if (*quant_cmd) return qgnn::cli::run_quantize(quant);
    if (*run_cmd) return qgnn::cli::run_main_job(run);
    if (*mem_cmd) return qgnn::cli::run_memory(mem);
    if (*infer_cmd) return qgnn::cli::run_infer(infer);
    if (*gen_cmd) return qgnn::cli::run_generate(gen);
  } catch (const qgnn::cli::UsageError& e) {
    std::cerr << "qgnn: error: " << first_line(e.what()) << "\n";
    return kExitUsage;
  } catch (const c10::Error& e) {
    std::cerr << "qgnn: error: " << first_line(e.what_without_backtrace()) << "\n";
    return kExitFailure;
  } catch (const std::exception& e) {
    std::cerr << "qgnn: error: " << first_line(e.what()) << "\n";
    return kExitFailure;
  }
  return 0;
}
