#include "cli/quantize_report.h"

#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/report.h"
#include "qgnn/util/threads.h"

namespace qgnn::cli {

void add_quantize_options(CLI::App* cmd, QuantizeCliOptions& o) {
  QuantizeConfig& q = o.config;
  cmd->add_option("--policy", q.policy, "bit policy spec (e.g. 'emb=4;att=2') or auto")
      ->check(policy_spec(/*allow_auto=*/true))
      ->capture_default_str();
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
  cmd->add_option("--csv", o.csv, "auto: write the measured configurations here");
  cmd->add_option("--save", o.save, "write the quantized model (weights + policy) here");
}

void reserve_quantize_outputs(Outputs& out, const QuantizeCliOptions& q, const CommonOptions& c) {
  out.reserve("--json", c.json);
  out.reserve("--save", q.save);
  out.reserve("--csv", q.csv);
}

namespace {

void print_table_row(const std::string& dataset, const std::string& model, const QuantizeOutcome& q,
                     const InputStorage& in) {
  const MemoryReport& m = q.chosen.memory;
  std::cout
      << "| dataset | model | fp32 acc | quant acc | avg bits | fp32 MB | quant MB | saving |\n"
      << "| --- | --- | --- | --- | --- | --- | --- | --- |\n"
      << "| " << dataset << " | " << model << " | " << fmt(q.fp32.test_acc) << " | "
      << fmt(q.packed.eval.test_acc) << " | " << fmt(m.average_bits()) << " | " << fmt(m.fp32_mb())
      << " | " << fmt(m.dense_mb(), 3) << " | " << fmt(m.saving()) << "x |\n"
      << "policy: " << q.chosen.policy.to_string() << "\n"
      << storage_line(m, in);
}

nlohmann::json quantize_json(const std::string& dataset, const std::string& model,
                             const std::string& preset, const QuantizeOutcome& q,
                             const InputStorage& in) {
  const MemoryReport& m = q.chosen.memory;
  nlohmann::json points = nlohmann::json::array();
  for (const PointMemory& p : m.points) {
    points.push_back(
        {{"layer", p.info.point.layer},
         {"component", p.info.point.role == QuantRole::kAttention ? "attention" : "embedding"},
         {"rows", p.info.rows},
         {"cols", p.info.cols},
         {"bits", p.bits},
         {"fp32_bytes", p.fp32_bytes},
         {"dense_bytes", p.dense_bytes},
         {"stored_bytes", p.stored_bytes},
         {"layout", layout_name(p.layout)}});
  }
  nlohmann::json j = {{"dataset", dataset},
                      {"model", model},
                      {"preset", preset},
                      {"policy", q.chosen.policy.to_string()},
                      {"fp32_val_acc", q.fp32.val_acc},
                      {"fp32_test_acc", q.fp32.test_acc},
                      {"quant_val_acc", q.packed.eval.val_acc},
                      {"quant_test_acc", q.packed.eval.test_acc},
                      {"fake_quant_test_acc", q.chosen.test_acc},
                      {"finetune_best_epoch", q.chosen.best_epoch},
                      {"packed_feature_mb", q.packed.stored_bytes / 1e6},
                      {"points", points},
                      {"threads", get_num_threads()}};
  add_memory_json(j, m, in);
  if (q.searched) {
    const SearchPoint& best = q.search.points[q.search.best];
    j["search"] = {{"measured", q.search.points.size()},
                   {"cost_model_ms", q.search.cost_model_ms},
                   {"best_val_acc", best.result.val_acc},
                   {"best_val_margin", best.val_margin},
                   {"best_val_disagreements", best.val_disagreements},
                   {"best_saving", best.result.memory.saving()},
                   {"best_stored_saving", best.result.memory.stored_saving()}};
  }
  return j;
}

}  // namespace

int quantize_and_report(Outputs& out, QuantizeJob& job, const QuantizeCliOptions& o,
                        const CommonOptions& common) {
  const QuantizeConfig& c = o.config;
  GnnModel& model = *job.model;
  const std::string model_name = model.config().model;
  const bool progress = show_progress(common);
  SearchProgress cb;
  if (progress) {
    cb = [](const SearchPoint& p, int64_t done, int64_t total) {
      std::fprintf(stderr, "\r  search %lld/%lld  val %.2f  saving %.1fx ",
                   static_cast<long long>(done), static_cast<long long>(total), p.result.val_acc,
                   p.result.memory.saving());
      std::fflush(stderr);
    };
  }
  const QuantizeOutcome q = quantize_model(model, *job.data, job.preset.optim, c, cb);
  if (progress && q.searched) std::fprintf(stderr, "\r\033[K");
  if (q.searched && !q.search.within_budget) {
    std::cout << "note: no configuration kept validation accuracy within " << c.max_drop
              << " points of fp32 (" << fmt(q.fp32.val_acc) << ") with a margin of "
              << c.margin_sigmas
              << " standard errors; using the most accurate measured one (raise --max-drop, "
                 "--rounds or --measure to search further)\n";
  }
  if (q.searched) {
    double ms = 0;
    for (double t : q.search.cost_model_ms) ms += t;
    std::cout << "searched " << q.search.points.size() << " configurations"
              << (c.random_search ? " (random search)" : "") << "; cost model (XGBoost) "
              << fmt(q.search.cost_model_ms.empty() ? 0.0 : ms / q.search.cost_model_ms.size(), 1)
              << " ms per round\n";
    out.write_text(o.csv, search_points_csv(q.search));
  }
  const InputStorage in = input_storage(q.chosen.memory, job.data->x);
  print_table_row(job.dataset.name, model_name, q, in);
  if (!o.save.empty()) save_quantized(out.temp(o.save), model, job.meta, q);
  nlohmann::json j = quantize_json(job.dataset.name, model_name, job.meta.preset, q, in);
  if (q.searched) {
    j["search"]["granularity"] = c.granularity;
    j["search"]["max_avg_bits"] = c.max_avg_bits;
    j["search"]["random_search"] = c.random_search;
    j["search"]["within_budget"] = q.search.within_budget;
    j["search"]["max_drop"] = c.max_drop;
    j["search"]["margin_sigmas"] = c.margin_sigmas;
  }
  write_json(out, common, j);
  out.commit();
  if (!o.save.empty()) std::cout << "saved " << o.save << "\n";
  return 0;
}

}  // namespace qgnn::cli
