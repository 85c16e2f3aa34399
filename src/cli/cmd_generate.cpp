// `qgnn generate`: parse, generate, write atomically, print a one-line summary.
#include <c10/util/Exception.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/options.h"
#include "cli/outputs.h"
#include "cli/usage.h"
#include "qgnn/io/generate.h"
#include "qgnn/io/text_file.h"
#include "qgnn/util/threads.h"

namespace qgnn::cli {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

struct GenerateOptions {
  CommonOptions common;
  int64_t nodes = 0;
  int64_t edges = 0;  // stored entries; both directions count when undirected
  int64_t features = 0;
  int64_t classes = 0;
  uint64_t seed = 0;
  double homophily = 0.7;
  bool undirected = true;
  double separation = 2.0;                        // class-centre distance / feature noise std
  std::vector<double> rmat = {0.57, 0.19, 0.19};  // a, b, c (d = 1 - a - b - c)
  bool compress = false;
  std::string out;
};

CLI::App* add_generate_command(CLI::App& app, GenerateOptions& o) {
  auto* cmd = app.add_subcommand(
      "generate", "write a seeded synthetic R-MAT graph with planted classes as .npz");
  cmd->add_option("--nodes", o.nodes, "number of nodes N (>= 2)")->required();
  cmd->add_option("--edges", o.edges, "stored edge entries E (undirected: both directions)")
      ->required();
  cmd->add_option("--features", o.features, "feature dimension F")->required();
  cmd->add_option("--classes", o.classes, "number of classes C (2 <= C <= N)")->required();
  cmd->add_option("--seed", o.seed, "seed")->capture_default_str();
  cmd->add_option("--homophily", o.homophily, "fraction of edges within a class, in [0, 1]")
      ->capture_default_str();
  cmd->add_flag("--undirected,!--directed", o.undirected,
                "store each edge in both directions (default) or once");
  cmd->add_option("--separation", o.separation,
                  "class-centre distance in feature-noise units (MLP difficulty)")
      ->capture_default_str();
  cmd->add_option("--rmat", o.rmat, "R-MAT a,b,c (d = 1 - a - b - c)")
      ->delimiter(',')
      ->expected(3)
      ->capture_default_str();
  cmd->add_flag("--compress", o.compress, "deflate the .npz members (slower)");
  cmd->add_option("--out", o.out, "output .npz path (written atomically)")->required();
  add_common(cmd, o.common);
  return cmd;
}

int run_generate(const GenerateOptions& o) {
  GenerateConfig cfg;
  cfg.num_nodes = o.nodes;
  cfg.num_edges = o.edges;
  cfg.num_features = o.features;
  cfg.num_classes = o.classes;
  cfg.seed = o.seed;
  cfg.homophily = o.homophily;
  cfg.undirected = o.undirected;
  cfg.class_separation = o.separation;
  if (o.rmat.size() != 3) {
    throw UsageError("--rmat needs three values a,b,c, got " + std::to_string(o.rmat.size()));
  }
  cfg.rmat_a = o.rmat[0];
  cfg.rmat_b = o.rmat[1];
  cfg.rmat_c = o.rmat[2];
  try {
    check_generate_config(cfg);
  } catch (const c10::Error& e) {
    const std::string msg = e.what_without_backtrace();
    throw UsageError(msg.substr(0, msg.find('\n')));
  }
  Outputs out;
  out.reserve("--out", o.out);
  out.reserve("--json", o.common.json);
  set_num_threads(o.common.threads);

  const bool progress = !o.common.quiet && ::isatty(STDERR_FILENO);
  GenerateProgress cb;
  if (progress) {
    cb = [](const std::string& stage) {
      std::fprintf(stderr, "\r\033[K  generate: %s ", stage.c_str());
      std::fflush(stderr);
    };
  }
  const auto start = std::chrono::steady_clock::now();
  GenerateResult res = generate_rmat(cfg, cb);
  const double gen_s = seconds_since(start);
  if (progress) cb("writing " + o.out);
  const auto write_start = std::chrono::steady_clock::now();
  write_dataset(out.temp(o.out), res.dataset, o.compress);
  const double write_s = seconds_since(write_start);
  if (progress) std::fprintf(stderr, "\r\033[K");

  const Dataset& d = res.dataset;
  const int64_t n = d.num_nodes(), e = d.graph.num_edges();
  char line[512];
  std::snprintf(line, sizeof line,
                "generated %s: N %lld, E %lld (%s), F %lld, C %lld, in-degree max %lld mean "
                "%.2f, isolated %lld, edge homophily %.3f, %.2f s (%.2f generate + %.2f write), "
                "%lld threads",
                o.out.c_str(), static_cast<long long>(n), static_cast<long long>(e),
                cfg.undirected ? "undirected entries" : "directed",
                static_cast<long long>(cfg.num_features), static_cast<long long>(cfg.num_classes),
                static_cast<long long>(res.max_in_degree), static_cast<double>(e) / n,
                static_cast<long long>(res.isolated_nodes), res.edge_homophily, gen_s + write_s,
                gen_s, write_s, static_cast<long long>(get_num_threads()));
  if (!o.common.json.empty()) {
    const nlohmann::json j = {{"path", o.out},
                              {"num_nodes", n},
                              {"num_edges", e},
                              {"requested_edges", cfg.num_edges},
                              {"undirected", cfg.undirected},
                              {"num_features", cfg.num_features},
                              {"num_classes", cfg.num_classes},
                              {"seed", cfg.seed},
                              {"homophily", cfg.homophily},
                              {"edge_homophily", res.edge_homophily},
                              {"separation", cfg.class_separation},
                              {"rmat", {cfg.rmat_a, cfg.rmat_b, cfg.rmat_c}},
                              {"max_in_degree", res.max_in_degree},
                              {"mean_in_degree", static_cast<double>(e) / n},
                              {"isolated_nodes", res.isolated_nodes},
                              {"candidates", res.candidates},
                              {"generate_s", gen_s},
                              {"write_s", write_s},
                              {"threads", get_num_threads()},
                              {"compressed", o.compress}};
    out.write_text(o.common.json, j.dump(2) + "\n");
  }
  out.commit();
  std::cout << line << std::endl;
  return 0;
}

class GenerateCommand : public Command {
 public:
  CLI::App* add_to(CLI::App& app) override { return add_generate_command(app, o_); }
  int run() override { return run_generate(o_); }

 private:
  GenerateOptions o_;
};

}  // namespace

std::unique_ptr<Command> make_generate_command() { return std::make_unique<GenerateCommand>(); }

}  // namespace qgnn::cli
