#pragma once
// SGQuant end to end (Feng et al. ICTAI 2020): choose bits, either by the automatic
// search with a learned cost model (Sec. IV) or from a given policy, fine-tune with
// straight-through gradients (Sec. III-D), and evaluate the real quantized model, whose
// input and hidden embeddings are held packed (PackedInferenceHook). What `qgnn quantize`
// and `qgnn run` do.
#include <cstdint>
#include <memory>
#include <string>

#include "qgnn/autobit/search.h"
#include "qgnn/io/dataset.h"
#include "qgnn/nn/models.h"
#include "qgnn/quant/bit_policy.h"
#include "qgnn/quant/quant_hooks.h"
#include "qgnn/train/checkpoint.h"
#include "qgnn/train/trainer.h"
#include "qgnn/util/export.h"

namespace qgnn {

struct QGNN_API QuantizeConfig {
  std::string policy = "auto";  // a BitPolicy spec, or "auto" for the search
  // The search (auto only); see SearchOptions.
  double max_drop = 0.5;       // allowed validation-accuracy drop vs fp32, points
  double margin_sigmas = 1.0;  // validation-noise margin, standard errors
  int64_t search_finetune_epochs = 20;
  int64_t measure = 10;   // N_mea
  int64_t sample = 2000;  // N_sample
  int64_t rounds = 5;     // N_iter
  bool random_search = false;
  std::string granularity = "taq";  // uniform, cwq, lwq or taq (parse_search_granularity)
  double max_avg_bits = 0;          // > 0: the most accurate policy within this memory
  // Fine-tuning epochs of the chosen policy; -1: the search's (auto, which rebuilds the
  // measured model exactly) or 100 (a given policy).
  int64_t finetune_epochs = -1;
  int64_t seed = 0;  // of the search and the fine-tuning

  // The search's options (throws c10::Error for a bad granularity).
  SearchOptions search_options() const;
  // finetune_epochs with -1 resolved.
  int64_t final_finetune_epochs() const;
};

// Accuracy of the real quantized model: input and hidden embeddings held packed,
// attention packed and read back (PackedInferenceHook).
struct PackedEval {
  EvalResult eval;
  int64_t stored_bytes = 0;  // bytes the hook held across the forward, every point
};
// Evaluates `model` (its weights as they are) with `policy` packed. Leaves no hook set.
QGNN_API PackedEval evaluate_packed(GnnModel& model, const TrainData& data,
                                    const BitPolicy& policy);

struct QuantizeOutcome {
  EvalResult fp32;      // the model as given
  PolicyResult chosen;  // after the final fine-tuning (fake-quantized)
  PackedEval packed;    // the fine-tuned model, packed
  SearchResult search;  // empty unless the policy was "auto"
  bool searched = false;
};

// Chooses (searches or parses) the policy, fine-tunes and evaluates, after seeding
// libtorch with config.seed. `model` holds fp32 weights on entry and the fine-tuned
// weights on return (no hook set). With auto, when nothing met the drop budget the most
// accurate measured configuration is used (outcome.search.within_budget is false).
// Throws c10::Error for a bad policy spec or granularity, and when no configuration fits
// max_avg_bits.
QGNN_API QuantizeOutcome quantize_model(GnnModel& model, const TrainData& data,
                                        const OptimConfig& optim, const QuantizeConfig& config,
                                        const SearchProgress& progress = {});

// The input point's lossless storage, apart from the headline: what pack() holds for it
// vs. qgnn's fp32 CSR (int64 indptr [N + 1], int64 column indices and float32 values).
struct InputStorage {
  bool quantized = false;  // false when the input point is not quantized
  PackedLayout layout = PackedLayout::kBitmap;
  int64_t stored_bytes = 0;
  int64_t csr_fp32_bytes = 0;
  double saving_vs_csr() const {
    return stored_bytes ? double(csr_fp32_bytes) / stored_bytes : 0.0;
  }
};
// Bytes of x held as fp32 CSR.
QGNN_API int64_t input_csr_fp32_bytes(const NodeFeatures& x);
QGNN_API InputStorage input_storage(const MemoryReport& m, const NodeFeatures& x);

// A model ready for SGQuant, with its data.
struct QuantizeJob {
  std::shared_ptr<GnnModel> model;
  Dataset dataset;
  std::shared_ptr<TrainData> data;
  Preset preset;        // its optimizer settings drive fine-tuning
  CheckpointMeta meta;  // of the fp32 model: what a saved quantized model records
};

// From an fp32 checkpoint (`qgnn train --save`) and its dataset.
// Throws c10::Error when the checkpoint was trained with QAT or is already quantized.
QGNN_API QuantizeJob quantize_job_from_checkpoint(const std::string& checkpoint,
                                                  const std::string& dataset);

// An untrained model of `preset` on `dataset` (split with `seed`; libtorch seeded with
// `seed` before the model is built); train it with train_full_batch(*job.model,
// *job.data, job.preset.optim) before quantize_model. Throws c10::Error on a bad name.
QGNN_API QuantizeJob quantize_job_untrained(const std::string& dataset, const std::string& model,
                                            const std::string& preset,
                                            const std::string& feature_norm, int64_t seed);

// Saves the fine-tuned model with its policy and packed accuracies (atomically).
QGNN_API void save_quantized(const std::string& path, GnnModel& model, CheckpointMeta meta,
                             const QuantizeOutcome& outcome);

}  // namespace qgnn
