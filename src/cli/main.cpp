// qgnn: command-line front end. Parses options, calls the library, prints results.
// Errors from bad input become one line on stderr and exit code 1 (2 for usage errors).
#include <c10/util/Exception.h>
#include <malloc.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "cli/commands.h"
#include "cli/commands_generate.h"
#include "qgnn_build_config.h"

namespace {

void add_common(CLI::App* app, qgnn::cli::CommonOptions& c, bool with_json = true) {
  app->add_option("--threads", c.threads, "intra-op threads (default: all cores)")
      ->check(CLI::NonNegativeNumber);
  app->add_flag("-q,--quiet", c.quiet, "no progress output");
  if (with_json) app->add_option("--json", c.json, "write a JSON report to this file");
}

// First line of an exception message (c10::Error may carry a backtrace after it).
std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

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
  train_cmd->add_option("--model", train.model, "gcn, gat, agnn, sage or gin")->required();
  train_cmd->add_option("--preset", train.preset, "kipf or sgquant")->capture_default_str();
  train_cmd->add_option("--runs", train.runs, "repeat with seeds seed..seed+runs-1")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  train_cmd->add_option("--seed", train.seed, "first seed")->capture_default_str();
  train_cmd->add_option("--epochs", train.epochs, "maximum epochs (default: preset)")
      ->check(CLI::PositiveNumber);
  train_cmd->add_option("--patience", train.patience, "early-stopping patience (default: preset)")
      ->check(CLI::PositiveNumber);
  train_cmd->add_option("--hidden", train.hidden, "hidden channels (default: preset)")
      ->check(CLI::PositiveNumber);
  train_cmd->add_option("--lr", train.lr, "learning rate (default: preset)")
      ->check(CLI::PositiveNumber);
  train_cmd->add_option("--feature-norm", train.feature_norm, "auto, none, row or binarize")
      ->capture_default_str();
  train_cmd->add_option("--save", train.save, "write the first run's best model here");
  train_cmd->add_option("--qat", train.qat, "quantization-aware training: int8 or int4")
      ->check(CLI::IsMember({"int8", "int4"}));
  train_cmd->add_flag("--degree-quant", train.degree_quant,
                      "with --qat: Degree-Quant's protective masking by in-degree");
  train_cmd->add_option("--observer", train.observer, "with --qat: momentum or percentile")
      ->check(CLI::IsMember({"momentum", "percentile"}))
      ->capture_default_str();
  train_cmd
      ->add_option("--dq-pmin", train.p_min,
                   "Degree-Quant: protection probability at the lowest in-degree")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  train_cmd
      ->add_option("--dq-pmax", train.p_max,
                   "Degree-Quant: protection probability at the highest in-degree")
      ->check(CLI::Range(0.0, 1.0))
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
          ->capture_default_str();
    }
    cmd->add_option("--max-drop", q.max_drop, "auto: allowed validation-accuracy drop, points")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    cmd->add_option("--margin-sigmas", q.margin_sigmas,
                    "auto: a configuration must clear the drop budget by this many standard "
                    "errors of its validation accuracy difference, 100 sqrt(disagreements) / "
                    "n_val points (0: a bare floor)")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    cmd->add_option("--finetune-epochs", q.finetune_epochs,
                    "fine-tuning epochs of the final policy (default: 100; auto: the search's, "
                    "which rebuilds the measured model exactly)")
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--search-finetune-epochs", q.search_finetune_epochs,
                    "auto: fine-tuning epochs of each measured configuration")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    cmd->add_option("--measure", q.measure, "auto: configurations measured per round (N_mea)")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    cmd->add_option("--sample", q.sample, "auto: candidates scored per round (N_sample)")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    cmd->add_option("--rounds", q.rounds, "auto: cost-model rounds (N_iter)")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    cmd->add_flag("--random-search", q.random_search, "auto: random search baseline");
    cmd->add_option("--granularity", q.granularity,
                    "auto: granularities the search may combine: uniform, cwq, lwq or taq (all)")
        ->check(CLI::IsMember({"uniform", "cwq", "lwq", "taq"}))
        ->capture_default_str();
    cmd->add_option("--max-avg-bits", q.max_avg_bits,
                    "auto: memory budget in average bits; picks the most accurate policy within it")
        ->check(CLI::NonNegativeNumber);
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
  run_cmd->add_option("--model", run.model, "gcn, gat, agnn, sage or gin")->capture_default_str();
  run_cmd->add_option("--preset", run.preset, "kipf or sgquant")->capture_default_str();
  run_cmd->add_option("--seed", run.seed, "seed")->capture_default_str();
  add_quantize(run_cmd, run.quantize, true);
  add_common(run_cmd, run.common);

  qgnn::cli::MemoryOptions mem;
  auto* mem_cmd = app.add_subcommand(
      "memory", "peak RSS of full-graph inference per bit policy, each in a child process");
  mem_cmd->add_option("--dataset", mem.dataset, "bundled name (cora) or .npz path")->required();
  mem_cmd->add_option("--model", mem.model, "gcn, gat, agnn, sage or gin (sgquant preset)")
      ->capture_default_str();
  mem_cmd
      ->add_option("--policies", mem.policies,
                   "comma-separated: fp32 (dense x), csr (fp32, sparse x), B (emb=B;emb.gran=row) "
                   "or a policy spec")
      ->delimiter(',')
      ->capture_default_str();
  mem_cmd->add_option("--chunk-rows", mem.chunk_rows, "rows of x read and packed at a time")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  mem_cmd->add_option("--seed", mem.seed, "split and weight seed")->capture_default_str();
  mem_cmd->add_option("--repeats", mem.repeats, "timed forwards after one warm-up")
      ->check(CLI::NonNegativeNumber)
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
      ->check(CLI::IsMember({"fp32", "int8", "int4"}))
      ->capture_default_str();
  infer_cmd->add_option("--repeat", infer.repeat, "timed forwards (after one warm-up)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  add_common(infer_cmd, infer.common);

  qgnn::cli::GenerateOptions gen;
  auto* gen_cmd = qgnn::cli::add_generate_command(app, gen);
  add_common(gen_cmd, gen.common);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
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
  } catch (const c10::Error& e) {
    std::cerr << "qgnn: error: " << first_line(e.what_without_backtrace()) << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "qgnn: error: " << first_line(e.what()) << "\n";
    return 1;
  }
  return 0;
}
