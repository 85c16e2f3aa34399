// `qgnn eval`: accuracy, memory and latency of a saved checkpoint
// (qgnn/pipeline/inference.h: evaluate_checkpoint).
#include <iostream>

#include "cli/command.h"
#include "cli/report.h"
#include "qgnn/pipeline/checkpoint_data.h"
#include "qgnn/pipeline/inference.h"
#include "qgnn/util/stats.h"
#include "qgnn/util/threads.h"

namespace qgnn::cli {
namespace {

class EvalCommand : public Command {
 public:
  CLI::App* add_to(CLI::App& app) override {
    auto* cmd = app.add_subcommand("eval", "evaluate a saved checkpoint");
    cmd->add_option("--checkpoint", checkpoint_, "file written by train --save")->required();
    cmd->add_option("--dataset", dataset_, "bundled name (cora) or .npz path")->required();
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
    const CheckpointEvaluation r = evaluate_checkpoint(ck, data);
    const MemoryReport& mem = r.memory;
    const std::string kind = ck.model->config().model;
    const double infer_ms = median(r.infer_ms);
    std::cout << "checkpoint " << checkpoint_ << ": " << kind << " on " << d.name << " (trained on "
              << ck.meta.dataset << ", preset " << ck.meta.preset << ")\n"
              << "policy " << r.policy.to_string() << ": " << fmt(mem.average_bits())
              << " average bits, feature memory " << fmt(mem.dense_mb(), 3) << " MB (fp32 "
              << fmt(mem.fp32_mb()) << " MB, saving " << fmt(mem.saving()) << "x)\n"
              << storage_line(mem, r.input) << "val_acc " << fmt(r.eval.val_acc) << "  test_acc "
              << fmt(r.eval.test_acc) << "  (at save: val " << fmt(ck.meta.val_acc) << ", test "
              << fmt(ck.meta.test_acc) << ")  infer " << fmt(infer_ms, 3) << " ms\n";
    nlohmann::json j = {{"dataset", d.name},
                        {"model", kind},
                        {"preset", ck.meta.preset},
                        {"checkpoint", checkpoint_},
                        {"policy", r.policy.to_string()},
                        {"val_acc", r.eval.val_acc},
                        {"test_acc", r.eval.test_acc},
                        {"saved_val_acc", ck.meta.val_acc},
                        {"saved_test_acc", ck.meta.test_acc},
                        {"infer_ms_median", infer_ms},
                        {"threads", get_num_threads()}};
    add_memory_json(j, mem, r.input);
    write_json(out, common_, j);
    out.commit();
    return 0;
  }

 private:
  CommonOptions common_;
  std::string checkpoint_, dataset_;
};

}  // namespace

std::unique_ptr<Command> make_eval_command() { return std::make_unique<EvalCommand>(); }

}  // namespace qgnn::cli
