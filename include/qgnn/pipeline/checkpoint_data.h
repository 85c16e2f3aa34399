#pragma once
// What a saved checkpoint needs to run again: its dataset with the same split and feature
// preprocessing, and its quantization state (a QAT hook's ranges, or an SGQuant policy).
#include <memory>
#include <optional>
#include <string>

#include "qgnn/io/dataset.h"
#include "qgnn/quant/bit_policy.h"
#include "qgnn/quant/qat.h"
#include "qgnn/train/checkpoint.h"
#include "qgnn/train/trainer.h"
#include "qgnn/util/export.h"

namespace qgnn {

// The dataset of a checkpoint's model: `dataset` (bundled name or .npz path) read with
// the checkpoint's split seed (its public split when it has none), checked against the
// model's shapes (check_checkpoint_fits) and preprocessed with its feature
// normalization. `out_dataset`, when given, receives the dataset itself.
// Throws c10::Error naming the file for an unreadable dataset or one that does not fit.
QGNN_API TrainData checkpoint_data(const LoadedCheckpoint& ck, const std::string& dataset,
                                   Dataset* out_dataset = nullptr);

// A checkpoint read together with its dataset (checkpoint_data).
struct OpenedCheckpoint {
  LoadedCheckpoint checkpoint;
  Dataset dataset;
  std::shared_ptr<TrainData> data;
};
// load_checkpoint(checkpoint) + checkpoint_data(.., dataset); throws as they do.
QGNN_API OpenedCheckpoint open_checkpoint(const std::string& checkpoint,
                                          const std::string& dataset);

// The QAT hook a checkpoint was trained with (`qgnn train --qat`), its observers' ranges
// restored; null for an fp32 or SGQuant checkpoint.
QGNN_API std::shared_ptr<QatHook> checkpoint_qat_hook(const LoadedCheckpoint& ck);

// The SGQuant bit policy a checkpoint was saved with (`qgnn quantize --save`); nullopt for
// an fp32 or QAT checkpoint. Throws c10::Error for an unparsable stored policy.
QGNN_API std::optional<BitPolicy> checkpoint_policy(const LoadedCheckpoint& ck);

}  // namespace qgnn
