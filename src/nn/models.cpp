#include "qgnn/nn/models.h"

#include <torch/nn/functional.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "qgnn/ops/dropout.h"
#include "qgnn/quant/packed_tensor.h"

namespace qgnn {

std::string ModelConfig::to_json() const {
  nlohmann::json j = {{"model", model},
                      {"in_channels", in_channels},
                      {"hidden_channels", hidden_channels},
                      {"out_channels", out_channels},
                      {"num_layers", num_layers},
                      {"heads", heads},
                      {"output_heads", output_heads},
                      {"dropout", dropout},
                      {"attention_dropout", attention_dropout},
                      {"row_normalize_input", row_normalize_input}};
  return j.dump();
}

ModelConfig ModelConfig::from_json(const std::string& text) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    TORCH_CHECK(false, "model config: not valid JSON (", e.what(), ")");
  }
  TORCH_CHECK(j.is_object(), "model config: expected a JSON object");
  auto field = [&](const char* key) -> const nlohmann::json& {
    TORCH_CHECK(j.contains(key), "model config: missing field '", key, "'");
    return j.at(key);
  };
  auto integer = [&](const char* key, int64_t min_value) {
    const auto& v = field(key);
    TORCH_CHECK(v.is_number_integer() && v.get<int64_t>() >= min_value, "model config: field '",
                key, "' must be an integer >= ", min_value, ", got ", v.dump());
    return v.get<int64_t>();
  };
  auto probability = [&](const char* key) {
    const auto& v = field(key);
    TORCH_CHECK(v.is_number() && v.get<double>() >= 0 && v.get<double>() < 1,
                "model config: field '", key, "' must be in [0, 1), got ", v.dump());
    return v.get<double>();
  };
  ModelConfig c;
  const auto& model = field("model");
  TORCH_CHECK(model.is_string(), "model config: field 'model' must be a string, got ",
              model.dump());
  c.model = model.get<std::string>();
  layer_type(c.model);  // throws for a name no layer type is registered under
  c.in_channels = integer("in_channels", 1);
  c.hidden_channels = integer("hidden_channels", 1);
  c.out_channels = integer("out_channels", 1);
  c.num_layers = integer("num_layers", 1);
  c.heads = integer("heads", 1);
  c.output_heads = integer("output_heads", 1);
  c.dropout = probability("dropout");
  c.attention_dropout = probability("attention_dropout");
  if (j.contains("row_normalize_input")) {
    const auto& v = j.at("row_normalize_input");
    TORCH_CHECK(v.is_boolean(), "model config: field 'row_normalize_input' must be a boolean, got ",
                v.dump());
    c.row_normalize_input = v.get<bool>();
  }
  return c;
}

Preset make_preset(const std::string& preset, const std::string& model, int64_t in_channels,
                   int64_t num_classes, DatasetFamily family) {
  TORCH_CHECK(preset == "kipf" || preset == "sgquant", "unknown preset '", preset,
              "' (choices: kipf, sgquant)");
  const LayerSpec& spec = layer_type(model);
  Preset p;
  p.name = preset;
  p.model.model = model;
  p.model.in_channels = in_channels;
  p.model.out_channels = num_classes;
  spec.preset(p, preset, family);
  if (family == DatasetFamily::kRandomSplit) {
    p.optim.epochs = std::max<int64_t>(p.optim.epochs, 1000);
    p.optim.patience = 100;
  }
  return p;
}

GnnModel::GnnModel(const ModelConfig& c) : config_(c) {
  TORCH_CHECK(c.in_channels > 0 && c.out_channels > 0 && c.num_layers >= 1,
              "GnnModel: in_channels, out_channels and num_layers must be positive");
  stack_ = layer_type(c.model).build(c);
  TORCH_CHECK(!stack_.empty(), "GnnModel: layer type '", c.model, "' built no layers");
  for (const StackEntry& e : stack_) {
    TORCH_CHECK(e.layer, "GnnModel: layer type '", c.model, "' built an empty layer ", e.name);
    register_module(e.name, e.layer);
  }
}

namespace {

// D^-1 X with D the row sums (rows summing to 0 stay 0).
NodeFeatures normalize_rows(const NodeFeatures& x) {
  at::Tensor sums;
  if (x.is_packed()) {
    // Row sums of the dequantized rows, decoded a tile at a time.
    const PackedTensor& p = *x.packed();
    const int64_t n = p.num_rows(), f = p.num_cols(), tile = 256;
    sums = torch::empty({n});
    float* out = sums.data_ptr<float>();
    at::parallel_for(0, (n + tile - 1) / tile, 1, [&](int64_t tb, int64_t te) {
      std::vector<float> buf(tile * f);
      for (int64_t t = tb; t < te; ++t) {
        const int64_t r0 = t * tile, r1 = std::min(n, r0 + tile);
        p.decode_rows(r0, r1, buf.data());
        for (int64_t r = r0; r < r1; ++r) {
          double acc = 0;
          for (int64_t j = 0; j < f; ++j) acc += buf[(r - r0) * f + j];
          out[r] = static_cast<float>(acc);
        }
      }
    });
  } else if (x.is_sparse()) {
    const CsrGraph& s = x.sparse();
    at::Tensor w = s.has_weights() ? s.weights() : torch::ones({s.num_edges()});
    sums = torch::zeros({s.num_rows()}).index_add_(0, s.row_ids(), w);
  } else {
    sums = x.dense().sum(1);
  }
  return x.scale_rows(torch::where(sums == 0, torch::zeros_like(sums), sums.reciprocal()));
}

// The input of propagating layer `layer` (>= 1) with its halo rows from the exchange
// (a block, GraphOperators::exchange); unchanged without one.
NodeFeatures with_halo(const GraphOperators& ops, int64_t layer, NodeFeatures h) {
  if (!ops.has_exchange()) return h;
  TORCH_CHECK(!h.is_packed(),
              "GnnModel: a halo exchange needs float hidden embeddings (packed inference of a "
              "graph block is not supported)");
  return NodeFeatures(ops.exchange(layer, h.to_dense()));
}

}  // namespace

NodeFeatures GnnModel::point(int64_t layer, const NodeFeatures& h, const GraphOperators& ops) {
  NodeFeatures out = hook_ ? hook_->embedding(layer, h, ops) : h;
  if (layer == 0 && config_.row_normalize_input) out = normalize_rows(out);
  return out;
}

void GnnModel::set_quant_hook(std::shared_ptr<QuantHook> hook) {
  hook_ = std::move(hook);
  for (size_t l = 0; l < stack_.size(); ++l) {
    stack_[l].layer->set_quant_site(QuantSite{hook_.get(), static_cast<int64_t>(l)});
  }
}

std::vector<QuantPointInfo> GnnModel::quant_points(const GraphOperators& ops) const {
  std::vector<QuantPointInfo> points;
  for (size_t l = 0; l < stack_.size(); ++l) {
    const GnnLayer& layer = *stack_[l].layer;
    points.push_back(
        {{static_cast<int64_t>(l), QuantRole::kEmbedding}, ops.num_nodes(), layer.in_channels()});
    layer.add_quant_points(ops, static_cast<int64_t>(l), points);
  }
  return points;
}

torch::Tensor GnnModel::forward(const GraphOperators& ops, const NodeFeatures& x) {
  const bool train = is_training();
  if (hook_) hook_->begin_forward(ops, train);
  // Packed inference: a layer may read its input's codes and hand its output, activation
  // applied, a block of rows at a time to the next point's packer (no float [N, F]
  // between layers; GnnLayer::infer).
  const bool packed_inference =
      hook_ && !train && !at::GradMode::is_enabled() && !hook_->quantizes_layers();
  const size_t n = stack_.size();
  NodeFeatures h = x;
  torch::Tensor out;
  for (size_t l = 0; l < n; ++l) {
    const StackEntry& entry = stack_[l];
    const int64_t layer = static_cast<int64_t>(l);
    const bool last = l + 1 == n;
    if (l > 0 && entry.layer->aggregates()) h = with_halo(ops, layer, std::move(h));
    NodeFeatures in = point(layer, h, ops);
    if (entry.dropout) in = in.dropout(config_.dropout, train);
    // The layer reads `in` only: under packed inference the float embedding (h, out) is
    // released here, before the layer runs, and only its codes stay alive.
    h = NodeFeatures();
    out = torch::Tensor();
    const Activation act = last ? Activation::kNone : entry.activation;
    if (packed_inference) {
      OutputPacker pack;
      if (!last) {
        pack = [&](int64_t cols, const std::vector<int64_t>& bounds,
                   const std::function<void(int64_t, float*)>& produce) {
          return hook_->pack_embedding(layer + 1, ops, cols, bounds, [&](int64_t k, float* o) {
            produce(k, o);
            if (act == Activation::kNone) return;
            at::Tensor t = at::from_blob(o, {(bounds[k + 1] - bounds[k]) * cols});
            if (act == Activation::kELU) {
              at::elu_(t);
            } else {
              t.relu_();
            }
          });
        };
      }
      LayerOutput r = entry.layer->infer(ops, in, pack);
      if (r.packed) {
        h = NodeFeatures(std::move(r.packed));
        continue;
      }
      out = std::move(r.dense);
    } else {
      out = entry.layer->forward(ops, in);
    }
    if (!last) {
      // In place when no gradient is recorded (inference): one [N, F] buffer, not two.
      const bool inplace = !out.requires_grad();
      if (act == Activation::kELU) {
        out = inplace ? torch::elu_(out) : torch::elu(out);
      } else if (act == Activation::kReLU) {
        out = inplace ? out.relu_() : torch::relu(out);
      }
      h = NodeFeatures(std::move(out));
      out = torch::Tensor();
    }
  }
  return out;
}

std::vector<torch::Tensor> GnnModel::first_layer_parameters() {
  return stack_.front().layer->parameters();
}

std::vector<torch::Tensor> GnnModel::other_parameters() {
  std::vector<torch::Tensor> first = first_layer_parameters();
  std::vector<torch::Tensor> rest;
  for (const auto& t : parameters()) {
    bool in_first = false;
    for (const auto& f : first) in_first = in_first || f.is_same(t);
    if (!in_first) rest.push_back(t);
  }
  return rest;
}

MemoryReport memory_report(const GnnModel& model, const GraphOperators& ops,
                           const BitPolicy& policy, const InputCodeStats* input) {
  return memory_report(model.quant_points(ops), ops, policy, input);
}

}  // namespace qgnn
