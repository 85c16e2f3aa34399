#pragma once
// Full-graph inference of a saved model: evaluation of any checkpoint (fp32, QAT, or
// SGQuant-quantized and held packed), and latency at fp32 or on the integer kernels
// (a QAT checkpoint lowered by IntegerModel::convert; Degree-Quant, Tailor et al.
// ICLR 2021, Sec. 5). What `qgnn eval` and `qgnn infer` run.
#include <cstdint>
#include <string>
#include <vector>

#include "qgnn/pipeline/quantize.h"
#include "qgnn/train/checkpoint.h"
#include "qgnn/train/trainer.h"
#include "qgnn/util/export.h"

namespace qgnn {

struct CheckpointEvaluation {
  BitPolicy policy;              // the checkpoint's SGQuant policy (full precision when none)
  bool quantized = false;        // an SGQuant checkpoint: evaluated packed (evaluate_packed)
  EvalResult eval;               // the first (untimed) evaluation
  std::vector<double> infer_ms;  // one full-graph forward per timed repeat, ms
  MemoryReport memory;           // of the policy's quantization points
  InputStorage input;            // the input point's storage format
};

// Evaluates a checkpoint on `data` (checkpoint_data): a QAT model with its restored hook,
// an SGQuant model packed; then `repeats` timed evaluations. Throws c10::Error for a
// stored policy that does not parse.
QGNN_API CheckpointEvaluation evaluate_checkpoint(LoadedCheckpoint& ck, const TrainData& data,
                                                  int64_t repeats = 10);

struct InferenceReport {
  std::string precision;             // fp32, int8 or int4
  bool integer = false;              // run by the integer kernels
  double val_acc = 0, test_acc = 0;  // percent
  std::vector<double> latency_ms;    // full-graph forward per timed repeat
  // Integer only: per-repeat stage times (IntegerTiming) and the one-off input
  // quantization.
  std::vector<double> linear_ms, aggregate_ms, other_ms;
  double quantize_input_ms = 0;
  int64_t input_bytes = 0;   // x as the run holds it (int8 / int4 codes, or fp32)
  int64_t weight_bytes = 0;  // parameters as the run holds them
  // With a QAT checkpoint: the fake-quantized model's test accuracy and the percentage of
  // nodes on which both predict the same class (what the integer model must reproduce);
  // -1 without one.
  double fake_quant_test_acc = -1, agreement_pct = -1;
};

// Full-graph inference of `ck` on `data` at `precision` ("fp32", "int8" or "int4"):
// one warm-up, then `repeat` timed forwards. int8 / int4 need a checkpoint trained with
// QAT at that width. Throws c10::Error (naming the checkpoint) otherwise or for a bad
// precision or repeat < 1.
QGNN_API InferenceReport infer_checkpoint(LoadedCheckpoint& ck, const TrainData& data,
                                          const std::string& precision, int64_t repeat = 20);

}  // namespace qgnn
