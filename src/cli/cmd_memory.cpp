// `qgnn memory`: peak resident memory of full-graph inference under several bit
// policies, each measured in its own child process (qgnn/pipeline/memory.h).
#include <c10/util/Exception.h>

#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/report.h"
#include "cli/usage.h"
#include "qgnn/io/dataset.h"
#include "qgnn/nn/models.h"
#include "qgnn/pipeline/memory.h"

namespace qgnn::cli {
namespace {

class MemoryCommand : public Command {
 public:
  CLI::App* add_to(CLI::App& app) override {
    auto* cmd = app.add_subcommand(
        "memory", "peak RSS of full-graph inference per bit policy, each in a child process");
    cmd->add_option("--dataset", dataset_, "bundled name (cora) or .npz path")->required();
    auto* ckpt = cmd->add_option(
        "--checkpoint", c_.checkpoint,
        "trained fp32 checkpoint (train / quantize --save): its model, weights, features, split");
    cmd->add_option("--model", c_.model, "untrained " + model_choices() + " (sgquant preset)")
        ->check(one_of(kModels))
        ->capture_default_str()
        ->excludes(ckpt);
    cmd->add_option("--feature-norm", c_.feature_norm, kFeatureNormHelp)
        ->check(one_of(kFeatureNorms))
        ->capture_default_str()
        ->excludes(ckpt);
    cmd->add_flag("--check-fake", c_.check_fake,
                  "also run the fake-quantized model and report the agreement of predictions "
                  "(after the peak RSS is read)");
    cmd->add_option("--policies", policies_,
                    "comma-separated: fp32 (dense x), csr (fp32, sparse x), B "
                    "(bits=B;emb.gran=row) or a policy spec")
        ->delimiter(',')
        ->capture_default_str();
    cmd->add_option("--chunk-rows", c_.chunk_rows, "rows of x read and packed at a time")
        ->check(integer_at_least(1))
        ->capture_default_str();
    cmd->add_option("--seed", c_.seed, "split and weight seed")->capture_default_str();
    cmd->add_option("--repeats", c_.repeats, "timed forwards after one warm-up")
        ->check(integer_at_least(0))
        ->capture_default_str();
    add_common(cmd, common_);
    return cmd;
  }

  bool keeps_allocator_defaults() const override { return true; }

  int run() override {
    layer_type(c_.model);  // fail fast, before any child
    std::vector<MemoryPolicy> policies;
    for (const std::string& s : policies_) {
      try {
        policies.push_back(parse_memory_policy(s));
      } catch (const c10::Error& e) {
        const std::string msg = e.what_without_backtrace();
        throw UsageError("--policies: " + msg.substr(0, msg.find('\n')));
      }
    }
    c_.dataset_path = resolve_dataset_path(dataset_);
    c_.threads = common_.threads;
    Outputs outputs;
    outputs.reserve("--json", common_.json);
    // The parent runs no libtorch kernels: a child forked after OpenMP started its thread
    // pool could deadlock, and the parent's own memory would count in every child's peak.
    std::cout << "full-graph inference of "
              << (c_.checkpoint.empty() ? "an untrained " + c_.model + " (sgquant preset)"
                                        : "the model in " + c_.checkpoint)
              << " on " << c_.dataset_path << "; one child process per policy\n"
              << "| policy | x storage | peak RSS MB | baseline RSS MB | x held MB | feature MB "
                 "from shapes (fp32 MB) | avg bits | load ms | infer ms | test acc % |\n"
              << "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n";
    nlohmann::json rows = nlohmann::json::array();
    int failures = 0;
    std::string first_failure;
    for (const MemoryPolicy& p : policies) {
      const InferenceMemory m = measure_inference_memory(c_, p);
      if (!m.error.empty()) {
        if (failures++ == 0) first_failure = p.label + ": " + m.error;
        std::cout << "| " << p.label << " | " << m.x_storage << " | error: " << m.error << " |\n";
      } else {
        const std::string storage =
            m.x_layout.empty() ? m.x_storage : m.x_storage + " (" + m.x_layout + ")";
        std::cout << "| " << p.label << " | " << storage << " | " << fmt(m.peak_rss_mb, 1) << " | "
                  << fmt(m.baseline_rss_mb, 1) << " | " << fmt(m.x_mb, 1) << " | "
                  << fmt(m.feature_mb, 1) << " (" << fmt(m.fp32_feature_mb, 1) << ") | "
                  << fmt(m.avg_bits, 2) << " | " << fmt(m.load_ms, 0) << " | " << fmt(m.infer_ms, 1)
                  << " | " << fmt(m.test_acc, 2) << " |\n";
      }
      std::cout.flush();
      rows.push_back(nlohmann::json::parse(to_json(m)));
    }
    TORCH_CHECK(failures == 0, "memory: ", failures, " of ", policies.size(),
                " policies failed (first: ", first_failure, ")");
    const nlohmann::json report = {
        {"dataset", c_.dataset_path},
        {"checkpoint", c_.checkpoint},
        {"model", c_.checkpoint.empty() ? c_.model : std::string("from checkpoint")},
        {"preset", c_.checkpoint.empty() ? std::string("sgquant") : std::string("from checkpoint")},
        {"seed", c_.seed},
        {"chunk_rows", c_.chunk_rows},
        {"threads", common_.threads},
        {"rows", rows}};
    outputs.write_text(common_.json, report.dump(2) + "\n");
    outputs.commit();
    return 0;
  }

 private:
  CommonOptions common_;
  MemoryConfig c_;
  std::string dataset_;
  std::vector<std::string> policies_ = {"fp32", "csr", "4", "2"};
};

}  // namespace

std::unique_ptr<Command> make_memory_command() { return std::make_unique<MemoryCommand>(); }

}  // namespace qgnn::cli
