// search_bits: the ABS loop measures the configured number of points, never repeats a
// policy, picks the largest saving within the budget, and writes a consistent CSV.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <set>
#include <sstream>

#include "qgnn/autobit/search.h"
#include "qgnn/quant/quant_hooks.h"
#include "testing/graphs.h"

namespace qgnn {
namespace {

TrainData small_problem() {
  CsrGraph g = testing::random_graph(80, 4.0, 17, /*isolated=*/2);
  torch::manual_seed(18);
  auto y = torch::randint(0, 3, {80}, torch::kLong);
  auto x = torch::rand({80, 10}) + torch::nn::functional::one_hot(y, 10).to(torch::kFloat);
  auto idx = torch::arange(80);
  return TrainData(GraphOperators(g), NodeFeatures(x), y, idx.lt(30), idx.ge(30) & idx.lt(50),
                   idx.ge(50));
}

TEST(SearchBits, MeasuresEachPolicyOnceAndKeepsTheBudget) {
  TrainData data = small_problem();
  for (bool random : {false, true}) {
    torch::manual_seed(0);
    Preset p = make_preset("kipf", "gat", 10, 3);
    p.optim.epochs = 30;
    GnnModel model(p.model);
    TrainResult fp32 = train_full_batch(model, data, p.optim);
    ModelState state = capture_state(model);
    SearchOptions o;
    o.n_measure = 4;
    o.n_iter = 2;
    o.n_sample = 64;
    o.finetune_epochs = 3;
    o.max_drop = 5.0;
    o.random_search = random;
    SearchResult r = search_bits(model, state, data, fp32.best_val_acc, p.optim, o);
    ASSERT_EQ(r.points.size(), 12u);
    // The first measurement is the widest configuration (the inputs here are not binary):
    // embeddings at 8 bits, attention at 16.
    const BitPolicy& widest = r.points[0].result.policy;
    EXPECT_FALSE(search_space(model, data.ops, &data.x).input_max_bits < 8);
    for (const QuantPointInfo& q : model.quant_points(data.ops)) {
      EXPECT_EQ(widest.bits(q.point), q.point.role == QuantRole::kAttention ? 16 : 8)
          << "layer " << q.point.layer;
    }
    std::set<std::string> policies;
    bool nonzero = false, cols = false;
    for (const auto& pt : r.points) {
      EXPECT_TRUE(policies.insert(pt.result.policy.to_string()).second) << "repeated policy";
      EXPECT_EQ(pt.from_model, !random && pt.round > 0);
      nonzero = nonzero ||
                pt.result.policy.spec({0, QuantRole::kEmbedding}).rounding == Rounding::kNonzero;
      cols = cols || pt.result.policy.spec({0, QuantRole::kEmbedding}).column_scales;
    }
    // ... nor one quantization under two names: under TAQ a row's bits are min(layer bits,
    // bucket cap), so the effective bits of every point (with granularity, rounding and
    // column scales) differ between any two measurements.
    std::set<std::string> effective;
    const at::Tensor degree = embedding_row_degree(data.ops);
    for (const auto& pt : r.points) {
      const BitPolicy& pol = pt.result.policy;
      std::ostringstream key;
      for (const QuantPointInfo& q : model.quant_points(data.ops)) {
        if (q.point.role == QuantRole::kAttention) {
          key << "att" << pol.bits(q.point) << ';';
          continue;
        }
        std::set<int> widths;
        for (int b : pol.row_bits(q.point, degree).group_bits) widths.insert(b);
        key << "emb";
        for (int b : widths) key << b << ',';
        key << ';';
      }
      key << static_cast<int>(pol.spec({0, QuantRole::kEmbedding}).granularity)
          << static_cast<int>(pol.spec({0, QuantRole::kEmbedding}).rounding)
          << pol.spec({0, QuantRole::kEmbedding}).column_scales;
      EXPECT_TRUE(effective.insert(key.str()).second) << "same quantization: " << pol.to_string();
      // The one form: no layer above the highest cap, and TAQ only where a layer exceeds
      // the lowest one.
      if (const auto taq = pol.spec({0, QuantRole::kEmbedding}).buckets) {
        bool capped = false;
        for (const QuantPointInfo& q : model.quant_points(data.ops)) {
          if (q.point.role == QuantRole::kAttention) continue;
          const int b = pol.bits(q.point);
          EXPECT_LE(b, taq->bits.front()) << pol.to_string();
          capped = capped || b > taq->bits.back();
        }
        EXPECT_TRUE(capped) << pol.to_string();
      }
    }
    // The full level also searches the input's rounding and column scales (continuous
    // inputs); hidden embeddings keep nearest rounding.
    EXPECT_TRUE(nonzero);
    EXPECT_TRUE(cols);
    for (const auto& pt : r.points) {
      EXPECT_EQ(pt.result.policy.spec({1, QuantRole::kEmbedding}).rounding, Rounding::kNearest);
      EXPECT_FALSE(pt.result.policy.spec({1, QuantRole::kEmbedding}).column_scales);
    }
    EXPECT_EQ(widest.spec({0, QuantRole::kEmbedding}).rounding, Rounding::kNearest);
    EXPECT_FALSE(widest.spec({0, QuantRole::kEmbedding}).column_scales);
    EXPECT_EQ(r.cost_model_ms.size(), random ? 0u : 2u);
    ASSERT_GE(r.best, 0);
    // Within budget means clearing the floor by the paired noise margin (the search ranks
    // by the headline saving, dense codes plus parameters),
    // margin_sigmas * 100 sqrt(d) / n_val, d = validation nodes where the quantized model's
    // class differs from the fp32 model's.
    const int64_t n_val = data.val_mask.sum().item<int64_t>();
    const double floor = fp32.best_val_acc - o.max_drop;
    const double best_saving = r.points[r.best].result.memory.saving();
    ASSERT_TRUE(r.within_budget);
    EXPECT_GE(r.points[r.best].result.val_acc - r.points[r.best].val_margin, floor);
    for (const auto& pt : r.points) {
      EXPECT_NEAR(pt.val_margin, o.margin_sigmas * 100.0 * std::sqrt(pt.val_disagreements) / n_val,
                  1e-9);
      if (pt.result.val_acc - pt.val_margin >= floor) {
        EXPECT_LE(pt.result.memory.saving(), best_saving);
      }
    }
    // CSV: header + one line per point; the policy is the quoted last column.
    std::istringstream csv(search_points_csv(r));
    std::string line;
    int lines = 0;
    while (std::getline(csv, line)) {
      if (lines++ > 0) {
        EXPECT_EQ(line.back(), '"') << line;
      }
    }
    EXPECT_EQ(lines, 13);

    // The winning point can be rebuilt exactly: same policy, epochs and seed.
    const PolicyResult again = evaluate_policy(model, state, data, r.points[r.best].result.policy,
                                               o.finetune_epochs, p.optim, o.seed);
    EXPECT_DOUBLE_EQ(again.val_acc, r.points[r.best].result.val_acc);
    EXPECT_DOUBLE_EQ(again.test_acc, r.points[r.best].result.test_acc);
    EXPECT_EQ(again.best_epoch, r.points[r.best].result.best_epoch);
    // Its disagreement count, recounted from the rebuilt model and the fp32 model.
    const at::Tensor val_idx = data.val_mask.nonzero().view({-1});
    torch::NoGradGuard no_grad;
    model.eval();
    const at::Tensor quant_pred =
        model.forward(data.ops, data.x).index_select(0, val_idx).argmax(1);
    restore_state(model, state);
    model.set_quant_hook(nullptr);
    const at::Tensor fp32_pred = model.forward(data.ops, data.x).index_select(0, val_idx).argmax(1);
    EXPECT_EQ(quant_pred.ne(fp32_pred).sum().item<int64_t>(), r.points[r.best].val_disagreements);
  }
}

TEST(SearchBits, WithoutAFeasibleConfigurationReturnsTheMostAccurateAndSaysSo) {
  TrainData data = small_problem();
  torch::manual_seed(0);
  Preset p = make_preset("kipf", "gcn", 10, 3);
  p.optim.epochs = 20;
  GnnModel model(p.model);
  TrainResult fp32 = train_full_batch(model, data, p.optim);
  ModelState state = capture_state(model);
  SearchOptions o;
  o.n_measure = 3;
  o.n_iter = 1;
  o.n_sample = 32;
  o.finetune_epochs = 2;
  o.max_drop = -101;  // floor above 100%: nothing can be feasible
  SearchResult r = search_bits(model, state, data, fp32.best_val_acc, p.optim, o);
  EXPECT_FALSE(r.within_budget);
  ASSERT_GE(r.best, 0);
  for (const auto& pt : r.points) EXPECT_LE(pt.result.val_acc, r.points[r.best].result.val_acc);
}

TEST(SearchSpace, BinaryInputsAreSearchedOnlyAtTheirLosslessWidth) {
  auto x = (torch::rand({40, 12}) < 0.3).to(torch::kFloat) * 0.25f;
  EXPECT_TRUE(is_binary(NodeFeatures(x)));
  EXPECT_TRUE(is_binary(NodeFeatures::from_dense(x, 1.0)));  // sparse storage
  EXPECT_FALSE(is_binary(NodeFeatures(x + torch::rand({40, 12}) * 0.1)));
  TrainData data = small_problem();  // continuous features
  Preset p = make_preset("kipf", "gcn", 10, 3);
  GnnModel model(p.model);
  EXPECT_EQ(search_space(model, data.ops, &data.x).input_max_bits, 8);
  EXPECT_TRUE(search_space(model, data.ops, &data.x).value_options);
  const NodeFeatures binary(torch::ones({80, 10}));
  EXPECT_EQ(search_space(model, data.ops, &binary).input_max_bits, 1);
  // Rounding and column scales cannot change binary codes: not searched.
  EXPECT_FALSE(search_space(model, data.ops, &binary).value_options);
}

TEST(EvaluatePolicy, SeededFineTuningIsAPrefixOfLongerFineTuning) {
  TrainData data = small_problem();
  torch::manual_seed(2);
  Preset p = make_preset("kipf", "gcn", 10, 3);
  p.optim.epochs = 20;
  GnnModel model(p.model);
  train_full_batch(model, data, p.optim);
  ModelState state = capture_state(model);
  const BitPolicy policy = BitPolicy::parse("emb=2");
  const PolicyResult short_run = evaluate_policy(model, state, data, policy, 5, p.optim, 7);
  const PolicyResult long_run = evaluate_policy(model, state, data, policy, 25, p.optim, 7);
  const PolicyResult repeat = evaluate_policy(model, state, data, policy, 5, p.optim, 7);
  EXPECT_GE(long_run.val_acc, short_run.val_acc);
  EXPECT_DOUBLE_EQ(repeat.val_acc, short_run.val_acc);
  EXPECT_DOUBLE_EQ(repeat.test_acc, short_run.test_acc);
}

TEST(EvaluatePolicy, FullPrecisionPolicyReproducesTheModel) {
  TrainData data = small_problem();
  torch::manual_seed(1);
  Preset p = make_preset("kipf", "gcn", 10, 3);
  p.optim.epochs = 20;
  GnnModel model(p.model);
  train_full_batch(model, data, p.optim);
  const EvalResult before = evaluate(model, data);
  ModelState state = capture_state(model);
  PolicyResult r = evaluate_policy(model, state, data, BitPolicy::parse("fp32"), 10, p.optim);
  EXPECT_DOUBLE_EQ(r.val_acc, before.val_acc);
  EXPECT_DOUBLE_EQ(r.test_acc, before.test_acc);
  EXPECT_DOUBLE_EQ(r.memory.saving(), 1.0);
}

}  // namespace
}  // namespace qgnn
