// The layer seam (qgnn/nn/layer.h): models are stacks of registered layer types. A type
// registered here, in a test, as a new model would be in its own source file, must
// build, train, quantize, save and load with no other change; the built-in types keep
// their checkpoint parameter names and quantization points.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "qgnn/nn/int_model.h"
#include "qgnn/nn/layers.h"
#include "qgnn/nn/models.h"
#include "qgnn/quant/qat.h"
#include "qgnn/train/checkpoint.h"
#include "qgnn/util/threads.h"
#include "testing/graphs.h"

namespace qgnn {
namespace {

using testing::random_graph;

// "test_mlp": Linear(F, H), ReLU, Linear(H, C), row by row (no graph).
LayerSpec test_mlp_spec() {
  LayerSpec s;
  s.name = "test_mlp";
  s.build = [](const ModelConfig& c) {
    return std::vector<StackEntry>{
        {"fc0", LinearLayer(c.in_channels, c.hidden_channels).ptr(), Activation::kReLU},
        {"fc1", LinearLayer(c.hidden_channels, c.out_channels).ptr()}};
  };
  s.preset = [](Preset& p, const std::string& preset, DatasetFamily) {
    p.model.hidden_channels = preset == "sgquant" ? 32 : 8;
    p.model.num_layers = 2;
    p.optim.lr = 0.02;
  };
  s.weight_elements = [](const ModelConfig& c, double) {
    return static_cast<double>(c.in_channels * c.hidden_channels +
                               c.hidden_channels * c.out_channels);
  };
  return s;
}
REGISTER_LAYER_TYPE(test_mlp_spec());

std::vector<std::string> parameter_names(GnnModel& model) {
  std::vector<std::string> names;
  for (const auto& p : model.named_parameters()) names.push_back(p.key());
  return names;
}

TEST(LayerRegistry, NamesAreSortedAndIncludeTheBuiltInTypes) {
  const std::vector<std::string> names = layer_type_names();
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  for (const char* n : {"agnn", "gat", "gcn", "gin", "sage", "test_mlp"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), n), names.end()) << n;
    EXPECT_EQ(layer_type(n).name, n);
  }
}

TEST(LayerRegistry, UnknownDuplicateAndIncompleteTypesAreRefused) {
  try {
    layer_type("transformer");
    ADD_FAILURE() << "unknown type accepted";
  } catch (const c10::Error& e) {
    const std::string msg = e.what_without_backtrace();
    EXPECT_NE(msg.find("unknown model 'transformer' (choices: agnn, gat, gcn, gin, sage"),
              std::string::npos)
        << msg;
  }
  EXPECT_THROW(register_layer_type(test_mlp_spec()), c10::Error);  // name taken
  LayerSpec incomplete = test_mlp_spec();
  incomplete.name = "test_incomplete";
  incomplete.preset = nullptr;
  EXPECT_THROW(register_layer_type(incomplete), c10::Error);
  EXPECT_THROW(layer_type("test_incomplete"), c10::Error);  // not half-registered
  EXPECT_THROW(ModelConfig::from_json(R"({"model": "transformer", "in_channels": 4,
      "hidden_channels": 4, "out_channels": 2, "num_layers": 2, "heads": 1,
      "output_heads": 1, "dropout": 0.5, "attention_dropout": 0})"),
               c10::Error);
}

TEST(LayerRegistry, ANewTypeBuildsTrainsSavesAndLoads) {
  manual_seed(1);
  const Preset p = make_preset("kipf", "test_mlp", 6, 3);
  EXPECT_EQ(p.model.hidden_channels, 8);
  EXPECT_DOUBLE_EQ(p.optim.lr, 0.02);
  EXPECT_EQ(make_preset("sgquant", "test_mlp", 6, 3, DatasetFamily::kRandomSplit).optim.epochs,
            1000);  // the family rule applies to every type
  GnnModel model(p.model);
  EXPECT_EQ(parameter_names(model),
            (std::vector<std::string>{"fc0.weight", "fc0.bias", "fc1.weight", "fc1.bias"}));
  CsrGraph g = random_graph(20, 3.0, 5);
  GraphOperators ops(g);
  const at::Tensor x = torch::randn({20, 6});
  model.eval();
  const at::Tensor logits = model.forward(ops, NodeFeatures(x));
  // Independent reference: dense ATen math on the same parameters.
  const auto params = model.named_parameters();
  const at::Tensor ref = torch::relu(x.matmul(params["fc0.weight"].t()) + params["fc0.bias"])
                             .matmul(params["fc1.weight"].t()) +
                         params["fc1.bias"];
  EXPECT_TRUE(torch::allclose(logits, ref, 1e-5, 1e-6));
  // Its quantization points: one input embedding per stack position.
  const auto points = model.quant_points(ops);
  ASSERT_EQ(points.size(), 2u);
  EXPECT_EQ(points[0].point, (QuantPoint{0, QuantRole::kEmbedding}));
  EXPECT_EQ(points[0].cols, 6);
  EXPECT_EQ(points[1].point, (QuantPoint{1, QuantRole::kEmbedding}));
  EXPECT_EQ(points[1].cols, 8);
  EXPECT_EQ(points[1].rows, 20);
  // Gradients reach every parameter.
  model.train();
  model.forward(ops, NodeFeatures(x)).sum().backward();
  for (const auto& prm : model.parameters()) EXPECT_TRUE(prm.grad().defined());
  // A checkpoint round trip rebuilds the type by name.
  const std::string path = (std::filesystem::temp_directory_path() / "qgnn_test_mlp.ckpt").string();
  CheckpointMeta meta;
  meta.dataset = "random";
  meta.preset = "kipf";
  save_checkpoint(path, model, meta);
  LoadedCheckpoint ck = load_checkpoint(path);
  std::filesystem::remove(path);
  EXPECT_EQ(ck.model->config().model, "test_mlp");
  model.eval();
  EXPECT_TRUE(
      torch::equal(ck.model->forward(ops, NodeFeatures(x)), model.forward(ops, NodeFeatures(x))));
}

TEST(LayerRegistry, LayersWithoutAnIntegerKernelAreNamedWhenLowering) {
  manual_seed(2);
  GnnModel model(make_preset("kipf", "test_mlp", 6, 3).model);
  CsrGraph g = random_graph(20, 3.0, 6);
  GraphOperators ops(g);
  auto hook = std::make_shared<QatHook>(QatConfig::preset("int8"));
  model.set_quant_hook(hook);
  model.train();
  model.forward(ops, NodeFeatures(torch::randn({20, 6})));  // observes the input ranges
  try {
    IntegerModel::convert(model, *hook);
    ADD_FAILURE() << "a Linear stack was lowered to integers";
  } catch (const c10::Error& e) {
    const std::string msg = e.what_without_backtrace();
    EXPECT_NE(msg.find("Linear"), std::string::npos) << msg;
    EXPECT_NE(msg.find("no integer kernel"), std::string::npos) << msg;
  }
}

// The built-in stacks keep the parameter names of every checkpoint written before the
// registry (tests/data fixtures load through them).
TEST(LayerRegistry, BuiltInStacksKeepTheirParameterNames) {
  auto names = [](const std::string& model, int64_t layers) {
    Preset p = make_preset("kipf", model, 5, 3);
    p.model.num_layers = layers;
    GnnModel m(p.model);
    return parameter_names(m);
  };
  EXPECT_EQ(names("gcn", 2),
            (std::vector<std::string>{"conv0.weight", "conv0.bias", "conv1.weight", "conv1.bias"}));
  EXPECT_EQ(names("gat", 1), (std::vector<std::string>{"conv0.weight", "conv0.att_src",
                                                       "conv0.att_dst", "conv0.bias"}));
  EXPECT_EQ(names("sage", 1), (std::vector<std::string>{"conv0.weight_neighbors",
                                                        "conv0.weight_root", "conv0.bias"}));
  EXPECT_EQ(names("gin", 1), (std::vector<std::string>{"conv0.eps", "conv0.weight1", "conv0.bias1",
                                                       "conv0.weight2", "conv0.bias2"}));
  EXPECT_EQ(names("agnn", 2),
            (std::vector<std::string>{"lin_in.weight", "lin_in.bias", "conv0.beta", "conv1.beta",
                                      "lin_out.weight", "lin_out.bias"}));
}

// Quantization points by hand: GAT has an attention point per layer with its heads, AGNN
// an input point per stack position (Linear, L propagations, Linear) and an attention
// point per propagation; E' counts A + I's edges.
TEST(LayerRegistry, QuantPointsFollowTheStack) {
  CsrGraph g = random_graph(30, 3.0, 7, /*isolated=*/3);
  GraphOperators ops(g);
  const int64_t n = 30, e_loops = g.num_edges() + n;  // random_graph has no self loops
  Preset gat = make_preset("kipf", "gat", 5, 3);
  gat.model.heads = 2;
  gat.model.hidden_channels = 4;
  gat.model.output_heads = 3;
  const auto gp = GnnModel(gat.model).quant_points(ops);
  ASSERT_EQ(gp.size(), 4u);
  EXPECT_EQ(gp[0].point, (QuantPoint{0, QuantRole::kEmbedding}));
  EXPECT_EQ(gp[0].cols, 5);
  EXPECT_EQ(gp[1].point, (QuantPoint{0, QuantRole::kAttention}));
  EXPECT_EQ(gp[1].rows, e_loops);
  EXPECT_EQ(gp[1].cols, 2);
  EXPECT_EQ(gp[2].point, (QuantPoint{1, QuantRole::kEmbedding}));
  EXPECT_EQ(gp[2].cols, 8);
  EXPECT_EQ(gp[3].point, (QuantPoint{1, QuantRole::kAttention}));
  EXPECT_EQ(gp[3].cols, 3);
  Preset agnn = make_preset("kipf", "agnn", 5, 3);
  agnn.model.num_layers = 2;
  const auto ap = GnnModel(agnn.model).quant_points(ops);
  const std::vector<std::pair<QuantPoint, int64_t>> want = {
      {{0, QuantRole::kEmbedding}, 5}, {{1, QuantRole::kEmbedding}, 16},
      {{1, QuantRole::kAttention}, 1}, {{2, QuantRole::kEmbedding}, 16},
      {{2, QuantRole::kAttention}, 1}, {{3, QuantRole::kEmbedding}, 16}};
  ASSERT_EQ(ap.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(ap[i].point, want[i].first) << i;
    EXPECT_EQ(ap[i].cols, want[i].second) << i;
    EXPECT_EQ(ap[i].rows, ap[i].point.role == QuantRole::kAttention ? e_loops : n) << i;
  }
}

}  // namespace
}  // namespace qgnn
