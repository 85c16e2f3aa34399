// `qgnn info`: describe a dataset.
#include <torch/torch.h>

#include <algorithm>
#include <iostream>

#include "cli/command.h"
#include "cli/report.h"
#include "qgnn/io/dataset.h"

namespace qgnn::cli {
namespace {

int64_t count(const torch::Tensor& mask) { return mask.sum().item<int64_t>(); }

class InfoCommand : public Command {
 public:
  CLI::App* add_to(CLI::App& app) override {
    auto* cmd = app.add_subcommand("info", "describe a dataset");
    cmd->add_option("--dataset", dataset_, "bundled name (cora) or .npz path")->required();
    add_common(cmd, common_);
    return cmd;
  }

  int run() override {
    apply_threads(common_);
    Outputs out;
    out.reserve("--json", common_.json);
    const std::string path = resolve_dataset_path(dataset_);
    Dataset d = read_dataset(path);
    const auto deg = d.graph.in_degree().to(torch::kFloat64);
    const int64_t nnz = d.x.ne(0).sum().item<int64_t>();
    const double density = static_cast<double>(nnz) / std::max<int64_t>(1, d.x.numel());
    const int64_t isolated =
        (d.graph.in_degree().eq(0) & d.graph.out_degree().eq(0)).sum().item<int64_t>();
    const int64_t self_loops = d.graph.row_ids().eq(d.graph.indices()).sum().item<int64_t>();
    std::cout << "dataset      " << d.name << "  (" << path << ")\n"
              << "nodes        " << d.num_nodes() << "\n"
              << "edges        " << d.graph.num_edges() << " (directed entries"
              << (d.graph.has_weights() ? ", weighted" : "") << ")\n"
              << "features     " << d.num_features() << "  (" << fmt(100 * density) << "% non-zero"
              << (d.x_source_dtype != "float32"
                      ? "; x stored as " + d.x_source_dtype + ", converted to float32"
                      : std::string())
              << ")\n"
              << "classes      " << d.num_classes << "\n"
              << "in-degree    mean " << fmt(deg.mean().item<double>()) << ", max "
              << deg.max().item<double>() << ", isolated nodes " << isolated << ", self loops "
              << self_loops << "\n"
              << "split        " << (d.has_public_split ? "public" : "random (seed 0)") << ": "
              << count(d.train_mask) << " train / " << count(d.val_mask) << " val / "
              << count(d.test_mask) << " test\n";
    write_json(out, common_,
               {{"dataset", d.name},
                {"path", path},
                {"num_nodes", d.num_nodes()},
                {"num_edges", d.graph.num_edges()},
                {"weighted", d.graph.has_weights()},
                {"num_features", d.num_features()},
                {"x_source_dtype", d.x_source_dtype},
                {"feature_density", density},
                {"num_classes", d.num_classes},
                {"max_in_degree", deg.max().item<double>()},
                {"isolated_nodes", isolated},
                {"public_split", d.has_public_split},
                {"train", count(d.train_mask)},
                {"val", count(d.val_mask)},
                {"test", count(d.test_mask)}});
    out.commit();
    return 0;
  }

 private:
  CommonOptions common_;
  std::string dataset_;
};

}  // namespace

std::unique_ptr<Command> make_info_command() { return std::make_unique<InfoCommand>(); }

}  // namespace qgnn::cli
