#include "qgnn/pipeline/checkpoint_data.h"

namespace qgnn {

TrainData checkpoint_data(const LoadedCheckpoint& ck, const std::string& dataset,
                          Dataset* out_dataset) {
  const std::string path = resolve_dataset_path(dataset);
  Dataset d = read_dataset(path, ck.meta.split_seed >= 0 ? ck.meta.split_seed : 0);
  check_checkpoint_fits(ck, d);
  TrainData data = make_train_data(d, parse_feature_norm(ck.meta.feature_norm));
  if (out_dataset != nullptr) *out_dataset = std::move(d);
  return data;
}

OpenedCheckpoint open_checkpoint(const std::string& checkpoint, const std::string& dataset) {
  OpenedCheckpoint o;
  o.checkpoint = load_checkpoint(checkpoint);
  o.data = std::make_shared<TrainData>(checkpoint_data(o.checkpoint, dataset, &o.dataset));
  return o;
}

std::shared_ptr<QatHook> checkpoint_qat_hook(const LoadedCheckpoint& ck) {
  const auto it = ck.meta.extra.find("qat");
  if (it == ck.meta.extra.end()) return nullptr;
  auto hook = std::make_shared<QatHook>(QatConfig{});
  hook->load_state(it->second);
  return hook;
}

std::optional<BitPolicy> checkpoint_policy(const LoadedCheckpoint& ck) {
  const auto it = ck.meta.extra.find("policy");
  if (it == ck.meta.extra.end()) return std::nullopt;
  return BitPolicy::parse(it->second);
}

}  // namespace qgnn
