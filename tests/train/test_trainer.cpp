// Trainer, metrics and checkpoints on small planted-partition graphs.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <tuple>

#include "qgnn/train/checkpoint.h"
#include "qgnn/train/trainer.h"
#include "qgnn/util/threads.h"
#include "qgnn_build_config.h"

namespace qgnn {
namespace {

// Two-block stochastic block model: 200 nodes, p_in = 0.08, p_out = 0.005, features are
// noisy class indicators (class signal 0.6 on one of 8 dims, plus uniform noise), so a
// GNN separates the blocks far better than chance. Split: 20 / 40 / 140.
TrainData planted_partition(uint64_t seed) {
  const int64_t n = 200, f = 8;
  torch::manual_seed(seed);
  auto y = torch::cat({torch::zeros({n / 2}, torch::kLong), torch::ones({n / 2}, torch::kLong)});
  auto same = y.unsqueeze(0).eq(y.unsqueeze(1));
  auto prob = torch::where(same, torch::full({n, n}, 0.08), torch::full({n, n}, 0.005));
  auto adj = torch::rand({n, n}) < prob;
  adj = (adj | adj.t()) & ~torch::eye(n, torch::kBool);
  auto edge = adj.nonzero();  // [E, 2] (i, j) sorted by i
  auto ei = torch::stack({edge.select(1, 1), edge.select(1, 0)});
  CsrGraph g = CsrGraph::from_edge_index(ei, n);
  auto x = torch::rand({n, f}) * 0.8;
  x.select(1, 0).add_(y.to(torch::kFloat) * 0.6);
  auto perm = torch::randperm(n);
  auto mask = [&](int64_t lo, int64_t hi) {
    auto m = torch::zeros({n}, torch::kBool);
    m.index_fill_(0, perm.slice(0, lo, hi), true);
    return m;
  };
  return TrainData(GraphOperators(g), NodeFeatures(x), y, mask(0, 20), mask(20, 60), mask(60, n));
}

TEST(Metrics, MaskedAccuracyByHand) {
  auto logits = torch::tensor({{2.0, 1.0}, {0.0, 3.0}, {5.0, 1.0}, {1.0, 0.0}});
  auto y = torch::tensor({0, 1, 1, 1}, torch::kLong);
  auto all = torch::ones({4}, torch::kBool);
  EXPECT_DOUBLE_EQ(masked_accuracy(logits, y, all), 50.0);
  auto first_two = torch::tensor({true, true, false, false});
  EXPECT_DOUBLE_EQ(masked_accuracy(logits, y, first_two), 100.0);
  EXPECT_DOUBLE_EQ(masked_accuracy(logits, y, torch::zeros({4}, torch::kBool)), 0.0);
}

TEST(Trainer, EveryModelLearnsAPlantedPartition) {
  TrainData data = planted_partition(1);
  for (const char* name : {"gcn", "gat", "agnn", "sage", "gin"}) {
    manual_seed(0);
    Preset p = make_preset("kipf", parse_model_kind(name), 8, 2);
    p.optim.epochs = 100;
    GnnModel model(p.model);
    TrainResult r = train_full_batch(model, data, p.optim);
    EXPECT_GT(r.test_acc, 85.0) << name;
    // The model ends at its best epoch: evaluating it reproduces the reported numbers.
    EvalResult ev = evaluate(model, data);
    EXPECT_DOUBLE_EQ(ev.val_acc, r.best_val_acc) << name;
    EXPECT_DOUBLE_EQ(ev.test_acc, r.test_acc) << name;
    EXPECT_EQ(static_cast<int64_t>(r.epoch_ms.size()), r.epochs_run);
  }
}

TEST(Trainer, SameSeedAndThreadsGiveIdenticalResults) {
  TrainData data = planted_partition(2);
  for (const char* name : {"gcn", "gat"}) {
    std::vector<torch::Tensor> weights[2];
    double acc[2];
    for (int rep = 0; rep < 2; ++rep) {
      manual_seed(42);
      Preset p = make_preset("kipf", parse_model_kind(name), 8, 2);
      p.optim.epochs = 30;
      GnnModel model(p.model);
      acc[rep] = train_full_batch(model, data, p.optim).test_acc;
      for (const auto& t : model.parameters()) weights[rep].push_back(t.detach().clone());
    }
    EXPECT_EQ(acc[0], acc[1]) << name;
    for (size_t i = 0; i < weights[0].size(); ++i) {
      EXPECT_TRUE(torch::equal(weights[0][i], weights[1][i])) << name << " parameter " << i;
    }
  }
}

TEST(Trainer, EarlyStoppingHonoursPatience) {
  TrainData data = planted_partition(3);
  manual_seed(0);
  Preset p = make_preset("kipf", ModelKind::kGCN, 8, 2);
  p.optim.epochs = 1000;
  p.optim.patience = 5;
  GnnModel model(p.model);
  TrainResult r = train_full_batch(model, data, p.optim);
  EXPECT_LT(r.epochs_run, 1000);
  EXPECT_LE(r.best_epoch, r.epochs_run);
}

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/qgnn_test_XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  size_t count() const {
    return std::distance(std::filesystem::directory_iterator(path_),
                         std::filesystem::directory_iterator());
  }

 private:
  std::string path_;
};

TEST(Checkpoint, RoundTripReproducesLogitsForEveryModel) {
  TrainData data = planted_partition(4);
  TempDir dir;
  for (const char* name : {"gcn", "gat", "agnn", "sage", "gin"}) {
    manual_seed(1);
    Preset p = make_preset("kipf", parse_model_kind(name), 8, 2);
    p.optim.epochs = 5;
    GnnModel model(p.model);
    TrainResult r = train_full_batch(model, data, p.optim);
    CheckpointMeta meta;
    meta.dataset = "planted";
    meta.preset = "kipf";
    meta.feature_norm = "none";
    meta.test_acc = r.test_acc;
    const std::string path = dir.file(std::string(name) + ".ckpt");
    save_checkpoint(path, model, meta);
    LoadedCheckpoint ck = load_checkpoint(path);
    EXPECT_EQ(ck.meta.dataset, "planted");
    EXPECT_DOUBLE_EQ(ck.meta.test_acc, r.test_acc);
    EXPECT_EQ(ck.model->config().to_json(), model.config().to_json());
    torch::NoGradGuard ng;
    model.eval();
    EXPECT_TRUE(torch::equal(model.forward(data.ops, data.x), ck.model->forward(data.ops, data.x)))
        << name;
  }
  EXPECT_EQ(dir.count(), 5u);  // no temporary files left
}

TEST(Checkpoint, BadFilesGiveOneLineErrorsNamingThePath) {
  TempDir dir;
  auto expect_error = [](const std::string& path, const std::string& needle) {
    try {
      load_checkpoint(path);
      FAIL() << "expected an error for " << path;
    } catch (const c10::Error& e) {
      const std::string msg = e.what_without_backtrace();
      EXPECT_NE(msg.find(path), std::string::npos) << msg;
      EXPECT_NE(msg.find(needle), std::string::npos) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
  };
  expect_error(dir.file("missing.ckpt"), "cannot open");
  std::ofstream(dir.file("garbage.ckpt")) << "not a checkpoint";
  expect_error(dir.file("garbage.ckpt"), "not a qgnn checkpoint");
  // Found by fuzz_checkpoint: a mutated GIN checkpoint whose pickle makes libtorch's
  // unpickler throw std::out_of_range, which once escaped load_checkpoint.
  expect_error(std::string(QGNN_TEST_DATA_DIR) + "/checkpoint/unpickler_out_of_range.ckpt",
               "not a qgnn checkpoint");
}

// A corrupt config once built its model before any check: 10^10 weights (40 GB) or
// 10^15 layers from a file of a few hundred bytes.
TEST(Checkpoint, ConfigNeedingMoreWeightsThanTheFileHoldsIsRejected) {
  TempDir dir;
  auto write = [&](const std::string& name, const std::string& config) {
    torch::serialize::OutputArchive ar;
    ar.write("qgnn_format", c10::IValue(int64_t{1}));
    ar.write("config", c10::IValue(config));
    ar.write("meta", c10::IValue(std::string(
                         R"({"dataset": "d", "preset": "kipf", "feature_norm": "none",)"
                         R"( "split_seed": -1, "seed": 0, "val_acc": 0, "test_acc": 0})")));
    const std::string path = dir.file(name);
    ar.save_to(path);
    return path;
  };
  auto config = [](const char* model, int64_t in, int64_t hidden, int64_t layers) {
    return std::string(R"({"model": ")") + model + R"(", "in_channels": )" + std::to_string(in) +
           R"(, "hidden_channels": )" + std::to_string(hidden) +
           R"(, "out_channels": 7, "num_layers": )" + std::to_string(layers) +
           R"(, "heads": 1, "output_heads": 1, "dropout": 0.5, "attention_dropout": 0})";
  };
  for (const auto& [name, cfg, needs] :
       {std::tuple<std::string, std::string, std::string>{
            "wide.ckpt", config("gcn", 100000, 100000, 2), "at least 10000000000 weights"},
        {"deep_gin.ckpt", config("gin", 1, 1, 1000000000000000), "weights, but the file"},
        {"deep_agnn.ckpt", config("agnn", 1, 1, 1000000000000000),
         "at least 1000000000000008 weights"}}) {
    const std::string path = write(name, cfg);
    try {
      load_checkpoint(path);
      ADD_FAILURE() << "no error for " << name;
    } catch (const c10::Error& e) {
      const std::string msg = e.what_without_backtrace();
      EXPECT_NE(msg.find("load_checkpoint(" + path + "): config needs"), std::string::npos) << msg;
      EXPECT_NE(msg.find(needs), std::string::npos) << msg;
    }
  }
}

TEST(Checkpoint, FailedSaveLeavesExistingFileIntact) {
  TempDir dir;
  manual_seed(0);
  GnnModel model(make_preset("kipf", ModelKind::kGCN, 8, 2).model);
  EXPECT_THROW(save_checkpoint("/nonexistent_dir_qgnn/x.ckpt", model, {}), c10::Error);
  const std::string path = dir.file("keep.ckpt");
  std::ofstream(path) << "previous";
  // A directory in place of the temporary file's target cannot be replaced by rename.
  std::filesystem::create_directory(dir.file("dir.ckpt"));
  EXPECT_THROW(save_checkpoint(dir.file("dir.ckpt"), model, {}), c10::Error);
  std::ifstream in(path);
  std::string content;
  in >> content;
  EXPECT_EQ(content, "previous");
}

}  // namespace
}  // namespace qgnn
