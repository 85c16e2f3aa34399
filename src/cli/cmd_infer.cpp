// `qgnn infer`: full-graph inference latency and accuracy at fp32, int8 or int4
// (qgnn/pipeline/inference.h: infer_checkpoint).
#include <iostream>

#include "cli/command.h"
#include "cli/report.h"
#include "qgnn/pipeline/checkpoint_data.h"
#include "qgnn/pipeline/inference.h"
#include "qgnn/quant/int8_ops.h"
#include "qgnn/util/stats.h"
#include "qgnn/util/threads.h"

namespace qgnn::cli {
namespace {

class InferCommand : public Command {
 public:
  CLI::App* add_to(CLI::App& app) override {
    auto* cmd = app.add_subcommand(
        "infer",
        "full-graph inference latency and accuracy at fp32, int8 or int4 (integer kernels)");
    cmd->add_option("--checkpoint", checkpoint_, "checkpoint (from train; --qat for int8/int4)")
        ->required();
    cmd->add_option("--dataset", dataset_, "bundled name (cora) or .npz path")->required();
    cmd->add_option("--precision", precision_, "fp32, int8 or int4")
        ->check(one_of({"fp32", "int8", "int4"}))
        ->capture_default_str();
    cmd->add_option("--repeat", repeat_, "timed forwards (after one warm-up)")
        ->check(integer_at_least(1))
        ->capture_default_str();
    add_common(cmd, common_);
    return cmd;
  }

  int run() override {
    apply_threads(common_);
    Outputs out;
    out.reserve("--json", common_.json);
    OpenedCheckpoint opened = open_checkpoint(checkpoint_, dataset_);
    LoadedCheckpoint& ck = opened.checkpoint;
    const Dataset& d = opened.dataset;
    const TrainData& data = *opened.data;
    const InferenceReport r = infer_checkpoint(ck, data, precision_, repeat_);
    const std::string kind = ck.model->config().model;
    std::cout << "checkpoint " << checkpoint_ << ": " << kind << " on " << d.name << ", precision "
              << precision_
              << (r.integer ? std::string(" (integer kernels: ") + int8_kernel_isa() + ")" : "")
              << ", threads " << get_num_threads() << "\n"
              << "val_acc " << fmt(r.val_acc) << "  test_acc " << fmt(r.test_acc);
    if (r.agreement_pct >= 0) {
      std::cout << "  (fake-quant model: test " << fmt(r.fake_quant_test_acc)
                << ", same prediction on " << fmt(r.agreement_pct, 3) << "% of nodes)";
    }
    std::cout << "\nlatency " << fmt(median(r.latency_ms), 3) << " ms (median of " << repeat_
              << ")";
    if (r.integer) {
      std::cout << ": linear " << fmt(median(r.linear_ms), 3) << ", aggregation "
                << fmt(median(r.aggregate_ms), 3) << ", other " << fmt(median(r.other_ms), 3)
                << " ms; input quantized once in " << fmt(r.quantize_input_ms, 1) << " ms";
    }
    std::cout << "\n";
    nlohmann::json j = {{"dataset", d.name},
                        {"model", kind},
                        {"checkpoint", checkpoint_},
                        {"precision", precision_},
                        {"threads", get_num_threads()},
                        {"repeat", repeat_},
                        {"val_acc", r.val_acc},
                        {"test_acc", r.test_acc},
                        {"latency_ms_median", median(r.latency_ms)},
                        {"latency_ms", r.latency_ms},
                        {"input_bytes", r.input_bytes},
                        {"weight_bytes", r.weight_bytes}};
    if (r.integer) {
      j["isa"] = int8_kernel_isa();
      j["linear_ms_median"] = median(r.linear_ms);
      j["aggregate_ms_median"] = median(r.aggregate_ms);
      j["other_ms_median"] = median(r.other_ms);
      j["quantize_input_ms"] = r.quantize_input_ms;
    }
    if (r.agreement_pct >= 0) {
      j["fake_quant_test_acc"] = r.fake_quant_test_acc;
      j["agreement_pct"] = r.agreement_pct;
    }
    write_json(out, common_, j);
    out.commit();
    return 0;
  }

 private:
  CommonOptions common_;
  std::string checkpoint_, dataset_, precision_ = "fp32";
  int64_t repeat_ = 20;
};

}  // namespace

std::unique_ptr<Command> make_infer_command() { return std::make_unique<InferCommand>(); }

}  // namespace qgnn::cli
