// Trainer, metrics and checkpoints on small planted-partition graphs.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "qgnn/train/checkpoint.h"
#include "qgnn/train/trainer.h"
#include "qgnn/util/threads.h"
#include "qgnn_build_config.h"

namespace qgnn {
namespace {

// Two-block stochastic block model: 200 nodes, p_in = 0.15, p_out = 0.015 (about 15
// neighbours of the same class and 1.5 of the other), features standard normal noise on 8
// dims with a weak class signal of +-0.4 on dim 0: features alone allow at best
// Phi(0.4) = 66% accuracy, while the mean over a node's neighbourhood shrinks the noise
// about 4-fold, so a model that uses the graph does far better. Split: 20 / 40 / 140.
TrainData planted_partition(uint64_t seed, bool edgeless = false) {
  const int64_t n = 200, f = 8;
  torch::manual_seed(seed);
  auto y = torch::cat({torch::zeros({n / 2}, torch::kLong), torch::ones({n / 2}, torch::kLong)});
  auto same = y.unsqueeze(0).eq(y.unsqueeze(1));
  auto prob = torch::where(same, torch::full({n, n}, 0.15), torch::full({n, n}, 0.015));
  auto adj = torch::rand({n, n}) < prob;
  adj = (adj | adj.t()) & ~torch::eye(n, torch::kBool);
  auto edge = adj.nonzero();  // [E, 2] (i, j) sorted by i
  auto ei = torch::stack({edge.select(1, 1), edge.select(1, 0)});
  // The edgeless copy: same nodes, features, labels and split, no edge at all.
  CsrGraph g = edgeless
                   ? CsrGraph(torch::zeros({n + 1}, torch::kLong), torch::zeros({0}, torch::kLong))
                   : CsrGraph::from_edge_index(ei, n);
  auto x = torch::randn({n, f});
  x.select(1, 0).add_(y.to(torch::kFloat) * 0.8 - 0.4);
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

TEST(Trainer, EveryModelLearnsAPlantedPartitionFromTheGraph) {
  TrainData data = planted_partition(1);
  TrainData no_edges = planted_partition(1, /*edgeless=*/true);
  ASSERT_TRUE(torch::equal(data.x.dense(), no_edges.x.dense()));
  ASSERT_EQ(no_edges.ops.graph().num_edges(), 0);
  for (const char* name : {"gcn", "gat", "agnn", "sage", "gin"}) {
    double acc[2];
    for (int with_edges = 0; with_edges < 2; ++with_edges) {
      const TrainData& d = with_edges ? data : no_edges;
      manual_seed(0);
      Preset p = make_preset("kipf", name, 8, 2);
      p.optim.epochs = 100;
      GnnModel model(p.model);
      TrainResult r = train_full_batch(model, d, p.optim);
      acc[with_edges] = r.test_acc;
      // The model ends at its best epoch: evaluating it reproduces the reported numbers.
      EvalResult ev = evaluate(model, d);
      EXPECT_DOUBLE_EQ(ev.val_acc, r.best_val_acc) << name;
      EXPECT_DOUBLE_EQ(ev.test_acc, r.test_acc) << name;
      EXPECT_EQ(static_cast<int64_t>(r.epoch_ms.size()), r.epochs_run);
    }
    // Features alone are weak (the task is designed so), the graph is what the model uses.
    EXPECT_LT(acc[0], 75.0) << name << ": features alone solve the task; it tests nothing";
    EXPECT_GE(acc[1], 85.0) << name;
    EXPECT_GE(acc[1], acc[0] + 10.0) << name << ": the graph adds too little";
  }
}

TEST(Trainer, SameSeedAndThreadsGiveIdenticalResults) {
  TrainData data = planted_partition(2);
  for (const char* name : {"gcn", "gat"}) {
    std::vector<torch::Tensor> weights[2];
    double acc[2];
    for (int rep = 0; rep < 2; ++rep) {
      manual_seed(42);
      Preset p = make_preset("kipf", name, 8, 2);
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

TEST(Trainer, EarlyStoppingStopsAtTheDocumentedEpoch) {
  // Rule (train_full_batch): an epoch improves when its validation accuracy beats every
  // earlier one or its validation loss is below every earlier one; training stops after
  // `patience` consecutive epochs without improvement. The best epoch has the highest
  // validation accuracy, ties going to the lower validation loss, then the earlier epoch.
  TrainData data = planted_partition(3);
  for (int64_t patience : {3, 5, 20}) {
    manual_seed(0);
    Preset p = make_preset("kipf", "gcn", 8, 2);
    p.optim.epochs = 1000;
    p.optim.patience = patience;
    GnnModel model(p.model);
    std::vector<EpochReport> reports;
    TrainResult r =
        train_full_batch(model, data, p.optim, [&](const EpochReport& e) { reports.push_back(e); });
    ASSERT_EQ(static_cast<int64_t>(reports.size()), r.epochs_run) << "patience " << patience;

    int64_t expected_stop = p.optim.epochs, run = 0, best = 0;
    double max_acc = -1, min_loss = std::numeric_limits<double>::infinity();
    for (size_t k = 0; k < reports.size(); ++k) {
      const EpochReport& e = reports[k];
      EXPECT_EQ(e.epoch, static_cast<int64_t>(k) + 1);
      if (best == 0 || e.val_acc > reports[best - 1].val_acc ||
          (e.val_acc == reports[best - 1].val_acc && e.val_loss < reports[best - 1].val_loss)) {
        best = e.epoch;
      }
      run = e.val_acc > max_acc || e.val_loss < min_loss ? 0 : run + 1;
      max_acc = std::max(max_acc, e.val_acc);
      min_loss = std::min(min_loss, e.val_loss);
      if (run == patience) {
        expected_stop = e.epoch;
        break;
      }
    }
    EXPECT_LT(expected_stop, p.optim.epochs) << "patience " << patience << " never triggered";
    EXPECT_EQ(r.epochs_run, expected_stop) << "patience " << patience;
    EXPECT_EQ(r.best_epoch, best) << "patience " << patience;
    EXPECT_DOUBLE_EQ(r.best_val_acc, reports[best - 1].val_acc);
    EXPECT_DOUBLE_EQ(r.best_val_loss, reports[best - 1].val_loss);
    EXPECT_DOUBLE_EQ(r.test_acc, reports.back().test_acc_at_best);
  }
}

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/qgnn_test_XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }
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
    Preset p = make_preset("kipf", name, 8, 2);
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

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::vector<std::string> dir_entries(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    names.push_back(e.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

// Saving over an existing checkpoint fails part-way through writing (file size limit:
// the disk-full case) or cannot create its temporary file; either way the existing file
// keeps its bytes and no temporary file is left.
TEST(Checkpoint, FailedSaveLeavesExistingFileIntact) {
  TempDir dir;
  manual_seed(0);
  GnnModel model(make_preset("kipf", "gcn", 256, 2).model);
  const std::string path = dir.file("keep.ckpt");
  save_checkpoint(path, model, {});
  const std::string before = file_bytes(path);
  ASSERT_GT(before.size(), 8192u);
  {
    // In a child process, writes beyond 4 KiB fail with EFBIG (SIGXFSZ ignored); the
    // child reports 0 when save_checkpoint threw c10::Error naming the path.
    GnnModel other(make_preset("kipf", "gcn", 256, 2).model);
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::signal(SIGXFSZ, SIG_IGN);
      struct rlimit lim = {4096, 4096};
      ::setrlimit(RLIMIT_FSIZE, &lim);
      int code = 3;
      try {
        save_checkpoint(path, other, {});
        code = 1;
      } catch (const c10::Error& e) {
        code = std::string(e.what_without_backtrace()).find(path) != std::string::npos ? 0 : 2;
      } catch (...) {
        code = 4;
      }
      ::_exit(code);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status)) << "child killed by signal " << WTERMSIG(status);
    EXPECT_EQ(WEXITSTATUS(status), 0) << "1: save succeeded; 2: error lacks the path; 4: other";
    EXPECT_EQ(file_bytes(path), before);
    EXPECT_EQ(dir_entries(dir.path()), std::vector<std::string>{"keep.ckpt"});
  }
  {
    // The temporary file's name is taken by a non-empty directory: it cannot be created.
    const std::string tmp = path + ".tmp." + std::to_string(::getpid());
    std::filesystem::create_directory(tmp);
    std::ofstream(tmp + "/occupied") << "x";
    EXPECT_THROW(save_checkpoint(path, model, {}), c10::Error);
    EXPECT_EQ(file_bytes(path), before);
    std::filesystem::remove_all(tmp);
    EXPECT_EQ(dir_entries(dir.path()), std::vector<std::string>{"keep.ckpt"});
  }
}

TEST(Checkpoint, TruncatedFileGivesOneLineError) {
  TempDir dir;
  manual_seed(0);
  GnnModel model(make_preset("kipf", "gcn", 8, 2).model);
  const std::string good = dir.file("good.ckpt");
  save_checkpoint(good, model, {});
  const std::string bytes = file_bytes(good);
  const size_t n = bytes.size();
  for (size_t cut : {size_t{0}, size_t{1}, size_t{30}, size_t{100}, n / 4, n / 2, 3 * n / 4,
                     n - 100, n - 22, n - 1}) {
    const std::string path = dir.file("cut_" + std::to_string(cut) + ".ckpt");
    std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(cut));
    try {
      load_checkpoint(path);
      ADD_FAILURE() << "a checkpoint cut to " << cut << " of " << n << " bytes loaded";
    } catch (const c10::Error& e) {
      const std::string msg = e.what_without_backtrace();
      EXPECT_EQ(msg.rfind("load_checkpoint(" + path + "): ", 0), 0u) << msg;
      EXPECT_NE(msg.find("corrupt or truncated checkpoint"), std::string::npos) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
  }
}

TEST(Checkpoint, DatasetThatDoesNotFitTheModelIsOneLine) {
  manual_seed(0);
  LoadedCheckpoint ck;
  ck.model = std::make_shared<GnnModel>(make_preset("kipf", "gcn", 8, 3).model);
  ck.path = "m.ckpt";
  Dataset d;
  d.path = "d.npz";
  d.feature_dim = 8;
  d.num_classes = 3;
  check_checkpoint_fits(ck, d);
  d.feature_dim = 5;
  try {
    check_checkpoint_fits(ck, d);
    ADD_FAILURE() << "5 features accepted by a model for 8";
  } catch (const c10::Error& e) {
    EXPECT_STREQ(e.what_without_backtrace(),
                 "check_checkpoint_fits(m.ckpt): d.npz: x: has 5 features; the checkpoint "
                 "expects 8 (got F = 5)");
  }
  d.feature_dim = 8;
  d.num_classes = 2;
  try {
    check_checkpoint_fits(ck, d);
    ADD_FAILURE() << "2 classes accepted by a model for 3";
  } catch (const c10::Error& e) {
    EXPECT_STREQ(e.what_without_backtrace(),
                 "check_checkpoint_fits(m.ckpt): d.npz: num_classes: has 2 classes; the "
                 "checkpoint expects 3 (got C = 2)");
  }
}

}  // namespace
}  // namespace qgnn
