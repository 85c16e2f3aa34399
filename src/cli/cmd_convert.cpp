// `qgnn convert`: an edge list (with features and labels) or an OGB raw folder to qgnn's
// .npz layout, written atomically and read back through read_dataset before it is kept.
#include <CLI/CLI.hpp>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/options.h"
#include "cli/outputs.h"
#include "cli/usage.h"
#include "qgnn/io/convert.h"
#include "qgnn/io/generate.h"

namespace qgnn::cli {
namespace {

class ConvertCommand : public Command {
 public:
  CLI::App* add_to(CLI::App& app) override {
    auto* cmd = app.add_subcommand(
        "convert", "convert an edge list or an OGB raw folder to qgnn's .npz dataset layout");
    cmd->add_option("--edges", src_.edges,
                    "edge list: 'source target [weight]' per line (CSV, TSV or spaces; .gz "
                    "allowed)");
    cmd->add_option("--features", src_.features,
                    "with --edges: node features, .npy [N, F] or a text table (row i = node i)");
    cmd->add_option("--labels", src_.labels,
                    "with --edges: labels, .npy [N] or text: one per line or 'node label'");
    cmd->add_option("--train", src_.train, "with --edges: train node ids, one per line");
    cmd->add_option("--val", src_.val, "with --edges: validation node ids");
    cmd->add_option("--test", src_.test, "with --edges: test node ids");
    delimiter_option_ = cmd->add_option("--delimiter", delimiter_, "auto, comma, tab or space")
                            ->check(one_of({"auto", "comma", "tab", "space"}))
                            ->capture_default_str();
    cmd->add_flag("--one-based", src_.one_based, "node ids start at 1");
    cmd->add_flag("--undirected", undirected_,
                  "each edge also stands for its reverse (PyG's to_undirected)");
    cmd->add_option("--ogb", ogb_,
                    "OGB node-property folder (raw/*.csv.gz, split/<name>/*.csv.gz)");
    cmd->add_option("--split", split_, "with --ogb: split folder name (default: the only one)");
    cmd->add_flag("--compress", compress_, "deflate the .npz members (slower)");
    cmd->add_option("--out", out_, "output .npz path (written atomically)")->required();
    add_common(cmd, common_);
    return cmd;
  }

  void check() const override {
    if (ogb_.empty() == src_.edges.empty()) {
      throw UsageError("give either --edges (with --features and --labels) or --ogb");
    }
    if (!ogb_.empty() && (!src_.features.empty() || !src_.labels.empty() || !src_.train.empty() ||
                          !src_.val.empty() || !src_.test.empty() || src_.one_based)) {
      throw UsageError(
          "--ogb reads its own features, labels and split; drop the edge-list "
          "options");
    }
    if (!src_.edges.empty() && (src_.features.empty() || src_.labels.empty())) {
      throw UsageError("--edges needs --features and --labels");
    }
    if (!split_.empty() && ogb_.empty()) throw UsageError("--split goes with --ogb");
    if (!ogb_.empty() && delimiter_option_->count() > 0) {
      throw UsageError("--delimiter goes with --edges (OGB's files are comma-separated)");
    }
  }

  int run() override {
    Outputs out;
    out.reserve("--out", out_);
    out.reserve("--json", common_.json);
    ConvertReport report;
    EdgeListSources src = src_;
    src.delimiter = parse_delimiter(delimiter_);
    src.undirected = undirected_;
    Dataset d = ogb_.empty() ? convert_edge_list(src, &report)
                             : convert_ogb(ogb_, split_, undirected_, &report);
    const std::string temp = out.temp(out_);
    write_dataset(temp, d, compress_);
    // What qgnn will read: the file must pass every check of read_dataset.
    const Dataset back = read_dataset(temp, 0, /*load_features=*/false);
    const int64_t n = back.num_nodes(), e = back.graph.num_edges();
    if (!common_.json.empty()) {
      const nlohmann::json j = {{"path", out_},
                                {"num_nodes", n},
                                {"num_edges", e},
                                {"num_features", back.feature_dim},
                                {"num_classes", back.num_classes},
                                {"weighted", back.graph.has_weights()},
                                {"public_split", back.has_public_split},
                                {"edge_lines", report.lines},
                                {"duplicates_dropped", report.duplicates_dropped},
                                {"reverse_pairs", report.reverse_pairs},
                                {"self_loops", report.self_loops},
                                {"undirected", undirected_}};
      out.write_text(common_.json, j.dump(2) + "\n");
    }
    out.commit();
    std::cout << "converted " << out_ << ": N " << n << ", E " << e
              << (undirected_ ? " (both directions)" : "") << ", F " << back.feature_dim << ", C "
              << back.num_classes << (back.graph.has_weights() ? ", weighted" : "")
              << (back.has_public_split ? ", with its split" : ", random split at read time")
              << "; " << report.duplicates_dropped << " duplicate edges dropped, "
              << (undirected_ ? std::to_string(report.reverse_pairs) + " pairs given both ways, "
                              : "")
              << report.self_loops << " self loops kept" << std::endl;
    return 0;
  }

 private:
  EdgeListSources src_;
  std::string delimiter_ = "auto";
  CLI::Option* delimiter_option_ = nullptr;
  bool undirected_ = false;
  std::string ogb_, split_;
  bool compress_ = false;
  std::string out_;
  CommonOptions common_;
};

}  // namespace

std::unique_ptr<Command> make_convert_command() { return std::make_unique<ConvertCommand>(); }

}  // namespace qgnn::cli
