#include "qgnn/nn/layer.h"

#include <algorithm>
#include <map>
#include <mutex>

#include "qgnn/nn/int_model.h"

namespace qgnn {

LayerOutput GnnLayer::infer(const GraphOperators& ops, const NodeFeatures& x,
                            const OutputPacker& /*pack*/) {
  return {forward(ops, x), nullptr};
}

void GnnLayer::add_quant_points(const GraphOperators& /*ops*/, int64_t /*layer*/,
                                std::vector<QuantPointInfo>& /*points*/) const {}

std::shared_ptr<const IntegerLayer> GnnLayer::lower(const IntegerLowering& lowering) const {
  TORCH_CHECK(false, "IntegerModel: layer ", lowering.layer, " (", layer_name(),
              ") has no integer kernel; the model runs fake-quantized only");
}

namespace {

struct Registry {
  std::mutex mu;
  std::map<std::string, LayerSpec> specs;  // sorted by name
};

// Constructed on first use, so registrations from any translation unit's static
// initialisers find it.
Registry& registry() {
  static Registry* r = new Registry();
  return *r;
}

}  // namespace

bool register_layer_type(LayerSpec spec) {
  TORCH_CHECK(!spec.name.empty() && spec.build && spec.preset && spec.weight_elements,
              "register_layer_type: '", spec.name,
              "' needs a name, build, preset and weight_elements");
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  const std::string name = spec.name;
  TORCH_CHECK(r.specs.emplace(name, std::move(spec)).second, "register_layer_type: '", name,
              "' is registered twice");
  return true;
}

const LayerSpec& layer_type(const std::string& name) {
  Registry& r = registry();
  {
    std::lock_guard<std::mutex> lock(r.mu);
    const auto it = r.specs.find(name);
    if (it != r.specs.end()) return it->second;  // entries are never removed
  }
  std::string choices;
  for (const std::string& n : layer_type_names()) choices += (choices.empty() ? "" : ", ") + n;
  TORCH_CHECK(false, "unknown model '", name, "' (choices: ", choices, ")");
}

std::vector<std::string> layer_type_names() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  std::vector<std::string> names;
  for (const auto& entry : r.specs) names.push_back(entry.first);
  return names;
}

}  // namespace qgnn
