#include "qgnn/pipeline/inference.h"

#include <torch/torch.h>

#include "qgnn/nn/int_model.h"
#include "qgnn/pipeline/checkpoint_data.h"
#include "qgnn/util/timing.h"

namespace qgnn {

CheckpointEvaluation evaluate_checkpoint(LoadedCheckpoint& ck, const TrainData& data,
                                         int64_t repeats) {
  if (auto hook = checkpoint_qat_hook(ck)) ck.model->set_quant_hook(hook);
  CheckpointEvaluation r;
  const std::optional<BitPolicy> policy = checkpoint_policy(ck);
  r.quantized = policy.has_value();
  if (policy) r.policy = *policy;
  const InputCodeStats input(data.x);
  r.memory = memory_report(*ck.model, data.ops, r.policy, &input);
  r.input = input_storage(r.memory, data.x);
  for (int64_t i = 0; i <= repeats; ++i) {
    EvalResult e =
        r.quantized ? evaluate_packed(*ck.model, data, r.policy).eval : evaluate(*ck.model, data);
    if (i == 0) {
      r.eval = e;
    } else {
      r.infer_ms.push_back(e.infer_ms);
    }
  }
  return r;
}

InferenceReport infer_checkpoint(LoadedCheckpoint& ck, const TrainData& data,
                                 const std::string& precision, int64_t repeat) {
  TORCH_CHECK(precision == "fp32" || precision == "int8" || precision == "int4",
              "infer: precision must be fp32, int8 or int4, got '", precision, "'");
  TORCH_CHECK(repeat >= 1, "infer: repeat must be >= 1, got ", repeat);
  GnnModel& model = *ck.model;
  model.eval();
  const std::shared_ptr<QatHook> hook = checkpoint_qat_hook(ck);
  InferenceReport r;
  r.precision = precision;
  r.integer = precision != "fp32";
  if (r.integer) {
    TORCH_CHECK(hook, "infer: ", ck.path, " was not trained with --qat; --precision ", precision,
                " needs a checkpoint from qgnn train --qat ", precision);
    const int want = precision == "int8" ? 8 : 4;
    const int have = hook->bits(0, QuantRole::kEmbedding);
    TORCH_CHECK(have == want, "infer: ", ck.path, " was trained with --qat int", have,
                "; run it with --precision int", have);
  }
  torch::NoGradGuard no_grad;
  // The fake-quantized model's predictions: what the integer model must reproduce.
  at::Tensor fake_pred;
  if (hook) {
    model.set_quant_hook(hook);
    fake_pred = model.forward(data.ops, data.x).argmax(1);
    model.set_quant_hook(nullptr);
  }
  at::Tensor logits;
  if (r.integer) {
    const IntegerModel im = IntegerModel::convert(model, *hook);
    auto t0 = Clock::now();
    const QuantizedInput qx = im.quantize_input(data.x);
    r.quantize_input_ms = ms_since(t0);
    r.input_bytes = qx.nbytes();
    r.weight_bytes = im.weight_bytes();
    for (int64_t i = 0; i <= repeat; ++i) {
      IntegerTiming t;
      t0 = Clock::now();
      logits = im.forward(data.ops, qx, &t);
      const double ms = ms_since(t0);
      if (i == 0) continue;  // warm-up
      r.latency_ms.push_back(ms);
      r.linear_ms.push_back(t.linear_ms);
      r.aggregate_ms.push_back(t.aggregate_ms);
      r.other_ms.push_back(t.other_ms);
    }
  } else {
    if (data.x.is_sparse()) {
      const CsrGraph& g = data.x.sparse();
      r.input_bytes =
          g.indices().nbytes() + g.indptr().nbytes() + (g.has_weights() ? g.weights().nbytes() : 0);
    } else {
      r.input_bytes = data.x.to_dense().nbytes();
    }
    for (const auto& p : model.parameters()) r.weight_bytes += p.nbytes();
    for (int64_t i = 0; i <= repeat; ++i) {
      const auto t0 = Clock::now();
      logits = model.forward(data.ops, data.x);
      const double ms = ms_since(t0);
      if (i > 0) r.latency_ms.push_back(ms);
    }
  }
  const at::Tensor pred = logits.argmax(1);
  r.test_acc = prediction_accuracy(pred, data.y, data.test_mask);
  r.val_acc = prediction_accuracy(pred, data.y, data.val_mask);
  if (fake_pred.defined()) {
    r.agreement_pct = 100.0 * pred.eq(fake_pred).sum().item<double>() / pred.numel();
    r.fake_quant_test_acc = prediction_accuracy(fake_pred, data.y, data.test_mask);
  }
  return r;
}

}  // namespace qgnn
