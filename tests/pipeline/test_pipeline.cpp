// The library's pipeline (qgnn/pipeline/): what the CLI commands run, called directly.
// Each result is checked against the lower-level calls it is made of, run by hand, and
// against values computed here from the per-run results.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <string>

#include "qgnn/autobit/search.h"
#include "qgnn/io/generate.h"
#include "qgnn/pipeline/checkpoint_data.h"
#include "qgnn/pipeline/inference.h"
#include "qgnn/pipeline/quantize.h"
#include "qgnn/pipeline/train.h"
#include "qgnn/util/stats.h"
#include "qgnn/util/threads.h"

namespace qgnn {
namespace {

// A temporary directory holding a small generated dataset (random Shchur split).
class PipelineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/qgnn_pipeline_XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    GenerateConfig g;
    g.num_nodes = 600;
    g.num_edges = 6000;
    g.num_features = 24;
    g.num_classes = 3;
    g.seed = 3;
    g.class_separation = 1.0;
    write_dataset(file("gen.npz"), generate_rmat(g).dataset);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string file(const std::string& name) const { return dir_ + "/" + name; }

  TrainConfig config(const std::string& model = "gcn") const {
    TrainConfig c;
    c.dataset = file("gen.npz");
    c.model = model;
    c.epochs = 25;
    return c;
  }

  // Trains seed 0 and saves it; returns the checkpoint path.
  std::string trained_checkpoint(const TrainConfig& c, const std::string& name) {
    TrainSetup s = prepare_training(c, 0);
    TrainRun run = train_run(s, 0);
    const std::string path = file(name);
    save_checkpoint(path, *run.model, run_checkpoint_meta(s, run));
    return path;
  }

 private:
  std::string dir_;
};

bool same_parameters(GnnModel& a, GnnModel& b) {
  const auto pa = a.named_parameters(), pb = b.named_parameters();
  if (pa.size() != pb.size()) return false;
  for (const auto& kv : pa) {
    if (!torch::equal(kv.value(), pb[kv.key()])) return false;
  }
  return true;
}

TEST_F(PipelineTest, TrainRunsSummarizesItsRunsAndEachRunIsReproducible) {
  TrainSetup setup = prepare_training(config(), 5);
  std::vector<double> test, val;
  std::vector<at::Tensor> train_masks;
  std::shared_ptr<GnnModel> second;
  const TrainSummary s = train_runs(setup, 3, 5, [&](int64_t r, const TrainRun& run) {
    EXPECT_EQ(run.seed, 5 + r);
    test.push_back(run.result.test_acc);
    val.push_back(run.result.best_val_acc);
    train_masks.push_back(setup.dataset.train_mask.clone());
    if (r == 1) second = run.model;
  });
  ASSERT_EQ(test.size(), 3u);
  EXPECT_EQ(s.seeds, (std::vector<int64_t>{5, 6, 7}));
  EXPECT_EQ(s.test_acc, test);
  EXPECT_EQ(s.val_acc, val);
  const double m = (test[0] + test[1] + test[2]) / 3;
  const double var = ((test[0] - m) * (test[0] - m) + (test[1] - m) * (test[1] - m) +
                      (test[2] - m) * (test[2] - m)) /
                     2;
  EXPECT_NEAR(s.test_acc_mean, m, 1e-12);
  EXPECT_NEAR(s.test_acc_std, std::sqrt(var), 1e-12);
  // A random-split dataset gets its own split per seed.
  EXPECT_FALSE(torch::equal(train_masks[0], train_masks[1]));
  // Seed 6 alone, from a fresh setup, rebuilds run 1 exactly.
  TrainSetup again = prepare_training(config(), 6);
  TrainRun r6 = train_run(again, 6);
  EXPECT_EQ(r6.result.test_acc, test[1]);
  EXPECT_TRUE(same_parameters(*r6.model, *second));
}

TEST_F(PipelineTest, PrepareTrainingResolvesQatAndRejectsBadCombinations) {
  TrainConfig c = config();
  c.qat = "int8";
  c.degree_quant = true;
  TrainSetup s = prepare_training(c, 0);
  ASSERT_TRUE(s.qat.has_value());
  EXPECT_EQ(s.observer, "percentile");  // Degree-Quant's robust range by default
  EXPECT_TRUE(s.qat->degree_quant);
  TrainRun run = train_run(s, 0);
  ASSERT_NE(run.model->quant_hook(), nullptr);
  EXPECT_EQ(run_checkpoint_meta(s, run).extra.count("qat"), 1u);

  TrainConfig bad = config();
  bad.degree_quant = true;  // without qat
  EXPECT_THROW(prepare_training(bad, 0), c10::Error);
  bad = config();
  bad.qat = "int3";
  EXPECT_THROW(prepare_training(bad, 0), c10::Error);
  bad = config();
  bad.model = "mlp";
  EXPECT_THROW(prepare_training(bad, 0), c10::Error);
}

TEST_F(PipelineTest, QuantizeWithAPolicyEqualsTheStepsByHand) {
  const std::string ck = trained_checkpoint(config(), "fp32.ckpt");
  QuantizeConfig qc;
  qc.policy = "emb=4;layer0.emb=2";
  qc.finetune_epochs = 4;
  qc.seed = 9;
  QuantizeJob job = quantize_job_from_checkpoint(ck, file("gen.npz"));
  const QuantizeOutcome q = quantize_model(*job.model, *job.data, job.preset.optim, qc);
  EXPECT_FALSE(q.searched);
  EXPECT_EQ(job.model->quant_hook(), nullptr);

  // By hand, from the same checkpoint.
  QuantizeJob ref = quantize_job_from_checkpoint(ck, file("gen.npz"));
  const EvalResult fp32 = evaluate(*ref.model, *ref.data);
  const ModelState state = capture_state(*ref.model);
  const BitPolicy policy = BitPolicy::parse(qc.policy);
  const PolicyResult chosen =
      evaluate_policy(*ref.model, state, *ref.data, policy, 4, ref.preset.optim, 9);
  const PackedEval packed = evaluate_packed(*ref.model, *ref.data, policy);

  EXPECT_EQ(q.fp32.test_acc, fp32.test_acc);
  EXPECT_EQ(q.chosen.policy.to_string(), policy.to_string());
  EXPECT_EQ(q.chosen.val_acc, chosen.val_acc);
  EXPECT_EQ(q.chosen.best_epoch, chosen.best_epoch);
  EXPECT_EQ(q.packed.eval.test_acc, packed.eval.test_acc);
  EXPECT_GT(q.packed.stored_bytes, 0);
  EXPECT_TRUE(same_parameters(*job.model, *ref.model));
  // Average code bits by hand: x [600, 24] at 2 bits, the hidden [600, H] at 4.
  const double h = static_cast<double>(job.model->config().hidden_channels);
  EXPECT_NEAR(q.chosen.memory.average_bits(), (24.0 * 2 + h * 4) / (24 + h), 1e-9);
}

TEST_F(PipelineTest, UntrainedJobTrainsAsTheProtocolsRunWithTheSameSeed) {
  // What `qgnn run` does before quantizing (README, "The library").
  QuantizeJob job = quantize_job_untrained(file("gen.npz"), "gcn", "kipf", "auto", 4);
  EXPECT_EQ(job.meta.split_seed, 4);         // a random split, drawn with the run's seed
  EXPECT_EQ(job.meta.feature_norm, "none");  // continuous features stay continuous
  EXPECT_EQ(job.meta.preset, "kipf");
  job.preset.optim.epochs = 25;
  const TrainResult r = train_full_batch(*job.model, *job.data, job.preset.optim);
  TrainSetup setup = prepare_training(config(), 4);
  const TrainRun run = train_run(setup, 4);
  EXPECT_EQ(r.test_acc, run.result.test_acc);
  EXPECT_TRUE(same_parameters(*job.model, *run.model));
  EXPECT_THROW(quantize_job_untrained(file("gen.npz"), "mlp", "kipf", "auto", 0), c10::Error);
}

TEST_F(PipelineTest, SavedQuantizedModelEvaluatesAsReported) {
  const std::string ck = trained_checkpoint(config("gat"), "gat.ckpt");
  QuantizeConfig qc;
  qc.policy = "emb=4;att=8";
  qc.finetune_epochs = 3;
  QuantizeJob job = quantize_job_from_checkpoint(ck, file("gen.npz"));
  const QuantizeOutcome q = quantize_model(*job.model, *job.data, job.preset.optim, qc);
  const std::string saved = file("gat_q.ckpt");
  save_quantized(saved, *job.model, job.meta, q);

  LoadedCheckpoint loaded = load_checkpoint(saved);
  const std::optional<BitPolicy> p = checkpoint_policy(loaded);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->to_string(), q.chosen.policy.to_string());
  EXPECT_EQ(checkpoint_qat_hook(loaded), nullptr);
  EXPECT_EQ(loaded.meta.test_acc, q.packed.eval.test_acc);
  const TrainData data = checkpoint_data(loaded, file("gen.npz"));
  const CheckpointEvaluation e = evaluate_checkpoint(loaded, data, 2);
  EXPECT_TRUE(e.quantized);
  EXPECT_EQ(e.eval.test_acc, q.packed.eval.test_acc);
  EXPECT_EQ(e.eval.val_acc, q.packed.eval.val_acc);
  EXPECT_EQ(e.infer_ms.size(), 2u);
  EXPECT_DOUBLE_EQ(e.memory.saving(), q.chosen.memory.saving());

  // SGQuant starts from fp32: a quantized or QAT checkpoint is refused, naming the file.
  try {
    quantize_job_from_checkpoint(saved, file("gen.npz"));
    ADD_FAILURE() << "a quantized checkpoint was accepted";
  } catch (const c10::Error& err) {
    EXPECT_NE(std::string(err.what()).find("already quantized"), std::string::npos);
    EXPECT_NE(std::string(err.what()).find(saved), std::string::npos);
  }
}

TEST_F(PipelineTest, InferenceMatchesEvaluationAndIntegerNeedsQat) {
  const std::string fp32_ck = trained_checkpoint(config(), "fp32.ckpt");
  LoadedCheckpoint ck = load_checkpoint(fp32_ck);
  const TrainData data = checkpoint_data(ck, file("gen.npz"));
  const InferenceReport r = infer_checkpoint(ck, data, "fp32", 2);
  EXPECT_FALSE(r.integer);
  EXPECT_EQ(r.latency_ms.size(), 2u);
  EXPECT_EQ(r.test_acc, evaluate(*ck.model, data).test_acc);
  EXPECT_EQ(r.agreement_pct, -1);
  EXPECT_THROW(infer_checkpoint(ck, data, "int8", 1), c10::Error);
  EXPECT_THROW(infer_checkpoint(ck, data, "fp16", 1), c10::Error);

  TrainConfig c = config();
  c.qat = "int8";
  const std::string qat_ck = trained_checkpoint(c, "qat.ckpt");
  LoadedCheckpoint q = load_checkpoint(qat_ck);
  const TrainData qdata = checkpoint_data(q, file("gen.npz"));
  const InferenceReport ri = infer_checkpoint(q, qdata, "int8", 1);
  EXPECT_TRUE(ri.integer);
  EXPECT_EQ(ri.linear_ms.size(), 1u);
  // The fake-quantized model, evaluated here with the restored hook.
  LoadedCheckpoint fake = load_checkpoint(qat_ck);
  fake.model->set_quant_hook(checkpoint_qat_hook(fake));
  EXPECT_DOUBLE_EQ(ri.fake_quant_test_acc, evaluate(*fake.model, qdata).test_acc);
  EXPECT_GE(ri.agreement_pct, 95.0);
  EXPECT_LE(ri.agreement_pct, 100.0);
  EXPECT_THROW(infer_checkpoint(q, qdata, "int4", 1), c10::Error);  // trained at int8
}

TEST(Stats, MeanStddevMedianByHand) {
  EXPECT_EQ(mean({}), 0.0);
  EXPECT_EQ(sample_stddev({4.0}), 0.0);
  EXPECT_DOUBLE_EQ(mean({1, 2, 6}), 3.0);
  EXPECT_DOUBLE_EQ(sample_stddev({1, 2, 6}), std::sqrt((4.0 + 1.0 + 9.0) / 2));
  EXPECT_DOUBLE_EQ(median({5, 1, 3}), 3.0);
  EXPECT_DOUBLE_EQ(median({4, 1, 3, 2}), 2.5);
}

}  // namespace
}  // namespace qgnn
