#include "qgnn/train/checkpoint.h"

#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "qgnn/io/text_file.h"

namespace qgnn {

namespace {

constexpr int64_t kFormatVersion = 1;

std::string meta_to_json(const CheckpointMeta& m) {
  nlohmann::json j = {
      {"dataset", m.dataset},       {"preset", m.preset}, {"feature_norm", m.feature_norm},
      {"split_seed", m.split_seed}, {"seed", m.seed},     {"val_acc", m.val_acc},
      {"test_acc", m.test_acc},     {"extra", m.extra}};
  return j.dump();
}

CheckpointMeta meta_from_json(const std::string& path, const std::string& text) {
  CheckpointMeta m;
  try {
    auto j = nlohmann::json::parse(text);
    m.dataset = j.at("dataset").get<std::string>();
    m.preset = j.at("preset").get<std::string>();
    m.feature_norm = j.at("feature_norm").get<std::string>();
    m.split_seed = j.at("split_seed").get<int64_t>();
    m.seed = j.at("seed").get<int64_t>();
    m.val_acc = j.at("val_acc").get<double>();
    m.test_acc = j.at("test_acc").get<double>();
    m.extra = j.value("extra", std::map<std::string, std::string>{});
  } catch (const nlohmann::json::exception& e) {
    TORCH_CHECK(false, "load_checkpoint(", path, "): meta: ", e.what());
  }
  return m;
}

std::string read_string(torch::serialize::InputArchive& ar, const std::string& path,
                        const std::string& key) {
  c10::IValue v;
  TORCH_CHECK(ar.try_read(key, v) && v.isString(), "load_checkpoint(", path, "): missing entry '",
              key, "'");
  return v.toStringRef();
}

}  // namespace

void save_checkpoint(const std::string& path, GnnModel& model, const CheckpointMeta& meta) {
  torch::serialize::OutputArchive ar;
  ar.write("qgnn_format", c10::IValue(kFormatVersion));
  ar.write("config", c10::IValue(model.config().to_json()));
  ar.write("meta", c10::IValue(meta_to_json(meta)));
  for (const auto& p : model.named_parameters()) ar.write("param." + p.key(), p.value().detach());
  for (const auto& b : model.named_buffers()) ar.write("buffer." + b.key(), b.value());
  // Serialized in memory, then written through write_file_atomic, which checks every
  // write, the fsync and the close: a full disk or a file size limit fails the save and
  // never renames a truncated file over the existing one.
  std::ostringstream blob;
  ar.save_to(blob);
  write_file_atomic(path, blob.str());
}

namespace {

// First line of an error message from libtorch (which may add context lines).
std::string first_line(const std::string& msg) { return msg.substr(0, msg.find('\n')); }

LoadedCheckpoint load_checkpoint_from(const std::string& path) {
  torch::serialize::InputArchive ar;
  try {
    ar.load_from(path);
  } catch (const std::exception& e) {  // the unpickler also throws std::out_of_range etc.
    TORCH_CHECK(false, "load_checkpoint(", path,
                "): unreadable archive: not a qgnn checkpoint, or a corrupt or truncated "
                "checkpoint (",
                first_line(e.what()), ")");
  }
  c10::IValue version;
  TORCH_CHECK(ar.try_read("qgnn_format", version) && version.isInt(), "load_checkpoint(", path,
              "): not a qgnn checkpoint (no format version)");
  TORCH_CHECK(version.toInt() <= kFormatVersion, "load_checkpoint(", path, "): format version ",
              version.toInt(), " is newer than this qgnn reads (", kFormatVersion, ")");
  LoadedCheckpoint out;
  ModelConfig config;
  try {
    config = ModelConfig::from_json(read_string(ar, path, "config"));
  } catch (const c10::Error& e) {
    TORCH_CHECK(false, "load_checkpoint(", path, "): ", e.what_without_backtrace());
  }
  out.meta = meta_from_json(path, read_string(ar, path, "meta"));
  // Every parameter is stored, in at least one byte per element: a config asking for more
  // weights than the file has bytes is corrupt, and building its model could exhaust memory.
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  const double file_bytes = ec ? 0.0 : static_cast<double>(size);
  const double weights = layer_type(config.model).weight_elements(config, file_bytes);
  TORCH_CHECK(weights <= file_bytes, "load_checkpoint(", path, "): config needs at least ",
              static_cast<int64_t>(std::min(weights, 9e18)), " weights, but the file has only ",
              static_cast<int64_t>(file_bytes), " bytes");
  out.model = std::make_shared<GnnModel>(config);
  torch::NoGradGuard no_grad;
  auto load = [&](const std::string& key, torch::Tensor target) {
    torch::Tensor t;
    TORCH_CHECK(ar.try_read(key, t), "load_checkpoint(", path, "): missing tensor '", key, "'");
    TORCH_CHECK(t.sizes() == target.sizes(), "load_checkpoint(", path, "): tensor '", key,
                "' has shape ", t.sizes(), ", the config needs ", target.sizes());
    target.copy_(t);
  };
  for (const auto& p : out.model->named_parameters()) load("param." + p.key(), p.value());
  for (const auto& b : out.model->named_buffers()) load("buffer." + b.key(), b.value());
  out.model->eval();
  out.path = path;
  return out;
}

}  // namespace

LoadedCheckpoint load_checkpoint(const std::string& path) {
  TORCH_CHECK(std::ifstream(path).good(), "load_checkpoint(", path, "): cannot open file");
  const std::string prefix = "load_checkpoint(" + path + "): ";
  try {
    return load_checkpoint_from(path);
  } catch (const c10::Error& e) {
    const std::string msg = e.what_without_backtrace();
    if (msg.rfind(prefix, 0) == 0 && msg.find('\n') == std::string::npos) throw;
    TORCH_CHECK(false, prefix, "corrupt or truncated checkpoint (", first_line(msg), ")");
  } catch (const std::exception& e) {  // e.g. std::bad_alloc from a corrupt size
    TORCH_CHECK(false, prefix, "corrupt or truncated checkpoint (", first_line(e.what()), ")");
  }
  return {};
}

void check_checkpoint_fits(const LoadedCheckpoint& ck, const Dataset& d) {
  TORCH_CHECK(ck.model != nullptr, "check_checkpoint_fits(", ck.path, "): no model");
  const ModelConfig& cfg = ck.model->config();
  TORCH_CHECK(d.num_features() == cfg.in_channels, "check_checkpoint_fits(", ck.path, "): ", d.path,
              ": x: has ", d.num_features(), " features; the checkpoint expects ", cfg.in_channels,
              " (got F = ", d.num_features(), ")");
  TORCH_CHECK(d.num_classes == cfg.out_channels, "check_checkpoint_fits(", ck.path, "): ", d.path,
              ": num_classes: has ", d.num_classes, " classes; the checkpoint expects ",
              cfg.out_channels, " (got C = ", d.num_classes, ")");
}

}  // namespace qgnn
