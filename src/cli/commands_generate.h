#pragma once
// `qgnn generate`: writes a seeded synthetic R-MAT dataset (qgnn/io/generate.h) as .npz.
#include <cstdint>
#include <string>
#include <vector>

#include "cli/commands.h"

namespace CLI {
class App;
}

namespace qgnn::cli {

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

// Adds the `generate` subcommand and its own options to `app` (main.cpp adds --threads,
// --quiet and --json); returns it.
CLI::App* add_generate_command(CLI::App& app, GenerateOptions& o);

int run_generate(const GenerateOptions& o);

}  // namespace qgnn::cli
