#pragma once
// SGQuant's quantization pipeline (Feng et al. ICTAI 2020): evaluate a BitPolicy on a
// trained model (optionally fine-tuning with straight-through gradients, Sec. III-D),
// and select bits automatically with a learned cost model (Sec. IV, "ABS").
#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "qgnn/autobit/cost_model.h"
#include "qgnn/quant/bit_policy.h"
#include "qgnn/quant/quant_hooks.h"
#include "qgnn/train/trainer.h"
#include "qgnn/util/export.h"

namespace qgnn {

// Weights of a model (parameters in named order), to restart from for each policy.
using ModelState = std::vector<std::pair<std::string, torch::Tensor>>;
QGNN_API ModelState capture_state(GnnModel& model);
QGNN_API void restore_state(GnnModel& model, const ModelState& state);

struct PolicyResult {
  BitPolicy policy;
  double val_acc = 0, test_acc = 0;  // percent, at the best-validation fine-tuning epoch
  int64_t best_epoch = 0;            // 0: the unfine-tuned model was best
  MemoryReport memory;
  torch::Tensor val_pred;  // [n_val] int64: the chosen model's class for each validation node
};

// Evaluates `policy` on a model holding `fp32` weights: fake-quantizes every point,
// fine-tunes `finetune_epochs` epochs (Adam at `optim.lr`, same weight decay) with STE,
// and reads validation and test accuracy at the best validation epoch (the unfine-tuned
// model is epoch 0). Leaves `model` with the chosen weights and a FakeQuantHook.
// Fine-tuning draws its dropout masks from libtorch's generator re-seeded with `seed`,
// so the same (policy, seed) gives the same model: the first k of N epochs are the run
// with k epochs, and a policy picked by the search can be rebuilt exactly.
// `input`: statistics of data.x for the memory report (InputCodeStats(data.x)); built
// here, one pass over x, when null.
QGNN_API PolicyResult evaluate_policy(GnnModel& model, const ModelState& fp32,
                                      const TrainData& data, const BitPolicy& policy,
                                      int64_t finetune_epochs, const OptimConfig& optim,
                                      uint64_t seed = 0, const InputCodeStats* input = nullptr);

// The search space of a model: bits per layer embedding and attention, optional TAQ on
// embeddings (3 in-degree quantile buckets with non-increasing caps), and the
// granularity of the input features.
struct SearchSpace {
  int64_t embedding_layers = 0;
  std::vector<int64_t> attention_layers;
  std::vector<int> bits = {1, 2, 3, 4, 5, 6, 8};
  // Widths of attention values (CWQ and finer levels): `bits` plus 16 (IEEE half).
  // Attention on a hub is ~1 / in-degree, below one step of a per-tensor 8-bit grid
  // (step = max / 255): Amazon Computers AGNN (in-degrees up to ~2000) loses 5 test points
  // with every attention at 8 bits and none at 16 (embeddings at 8 bits cost nothing).
  std::vector<int> attention_bits = {1, 2, 3, 4, 5, 6, 8, 16};
  // Widest useful width of the input features (quantization point 0): 1 when they are
  // binary ({0, c}: one bit per value holds them exactly, so any wider width only
  // costs memory), else the widest of `bits`. Levels that tie every point to one
  // width (uniform, CWQ) ignore it.
  int input_max_bits = 8;
  // Whether the full (TAQ) level also chooses how the input (layer 0's embedding) becomes
  // codes: nonzero vs. nearest rounding and per-column scales (quant/packed_tensor.h:
  // Rounding, QuantOptions). Off for a binary input, whose 1-bit codes both leave
  // unchanged.
  bool value_options = true;
};
// The search space of `model`; `x` (the model's input, optional) caps the input width
// when it is binary.
QGNN_API SearchSpace search_space(const GnnModel& model, const GraphOperators& ops,
                                  const NodeFeatures* x = nullptr);

// True when every value of x is 0 or one common non-zero value c (then 1-bit codes with
// any range granularity reproduce x exactly).
QGNN_API bool is_binary(const NodeFeatures& x);

// Which of SGQuant's granularities a search may combine (Fig. 7): one width for every
// point (uniform); one width per component, embeddings vs. attention (CWQ); per layer and
// component (CWQ+LWQ); and in-degree buckets on top (CWQ+LWQ+TAQ, the full space, which
// also chooses the range granularity, the rounding and column scales). Restricted levels
// keep per-row ranges, nearest rounding and no column scales.
enum class SearchGranularity { kUniform, kComponent, kLayer, kTopology };
// "uniform", "cwq", "lwq", "taq"; throws c10::Error naming the bad value.
QGNN_API SearchGranularity parse_search_granularity(const std::string& s);

struct SearchOptions {
  int64_t n_measure = 10;        // N_mea: configurations measured per round
  int64_t n_sample = 2000;       // N_sample: candidates scored by the cost model per round
  int64_t n_iter = 5;            // N_iter: model-guided rounds after the random first one
  double max_drop = 0.5;         // allowed validation-accuracy drop vs fp32, points
  int64_t finetune_epochs = 20;  // fine-tuning of each measured configuration
  bool random_search = false;    // baseline: every round random, no cost model
  uint64_t seed = 0;
  SearchGranularity granularity = SearchGranularity::kTopology;
  // Selection margin against validation noise, in standard errors: a configuration is
  // within the drop budget when val_acc - margin_sigmas * se >= fp32_val_acc - max_drop,
  // where se = 100 sqrt(d) / n_val points is the standard error of the paired accuracy
  // difference (McNemar: d = validation nodes on which the quantized and the fp32 model
  // disagree). With few validation nodes (Amazon: 300) the largest saving that passes a
  // bare floor is mostly one that was lucky on validation; 0 restores the bare floor.
  double margin_sigmas = 1.0;
  // > 0: a memory budget instead of an accuracy budget. Only configurations of at most
  // this many average bits are sampled, and the objective is the highest validation
  // accuracy (ties: the larger saving); max_drop is then unused.
  double max_avg_bits = 0;
};

// One measured configuration.
struct SearchPoint {
  int64_t round = 0;
  bool from_model = false;  // chosen by the cost model (else random)
  double predicted_val_acc = 0;
  PolicyResult result;
  int64_t val_disagreements = 0;  // validation nodes where it and the fp32 model differ
  double val_margin = 0;          // margin_sigmas * 100 sqrt(val_disagreements) / n_val, points
};

struct SearchResult {
  std::vector<SearchPoint> points;
  double fp32_val_acc = 0;
  int64_t best = -1;  // index in points of the largest saving within the drop budget
  // False when no measured configuration met the drop budget; best is then the most
  // accurate one (the caller decides whether to accept it).
  bool within_budget = true;
  std::vector<double> cost_model_ms;  // fit + predict time per model-guided round
};

using SearchProgress = std::function<void(const SearchPoint&, int64_t done, int64_t total)>;

// SGQuant's ABS loop: measure n_measure random configurations (with an accuracy budget,
// the first is the widest configuration: every point at the widest width of its kind
// (embeddings 8, attention 16), the input at
// its widest useful one, per-row ranges), then n_iter times fit the
// XGBoost cost model on all measured (features -> validation accuracy), score n_sample
// random candidates, and measure the n_measure most promising: the largest expected gain
// P(feasible) * max(0, exact saving - best feasible saving so far), P(feasible) a
// logistic of the predicted accuracy's margin over the floor (scale 1 point); while
// nothing measured is feasible, the largest P(feasible).
// Objective: the largest saving whose measured validation accuracy, less its noise
// margin (SearchOptions::margin_sigmas), is at least fp32_val_acc - max_drop (the
// cost model's floor adds the mean margin measured so far) (or, with max_avg_bits, the
// best validation accuracy within
// that memory; the cost model then proposes the candidates it predicts most accurate).
// Savings and the max_avg_bits budget are the headline's (MemoryReport::saving,
// average_bits: dense codes plus parameters, comparable with SGQuant's Table III); a
// lossless storage format (the index list of a sparse 1-bit input) is reported apart and
// never steers the search.
// Deterministic for a seed and thread count.
QGNN_API SearchResult search_bits(GnnModel& model, const ModelState& fp32, const TrainData& data,
                                  double fp32_val_acc, const OptimConfig& optim,
                                  const SearchOptions& options,
                                  const SearchProgress& progress = {});

// CSV of the measured points: round, source, val_acc, test_acc, avg_bits, fp32_mb,
// quant_mb, saving (dense codes + parameters, MemoryReport::saving), predicted_val_acc,
// pareto (1 on the validation-accuracy-vs-saving Pareto front), val_disagreements,
// val_margin, stored_mb, stored_saving (as stored), policy (quoted, last: it contains
// commas).
QGNN_API std::string search_points_csv(const SearchResult& r);

}  // namespace qgnn
