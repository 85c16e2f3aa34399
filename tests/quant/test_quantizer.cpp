// The one quantizer: specs resolved from policy text, and every consumer's arithmetic
// checked against independent references (integer arithmetic by hand, PackedTensor).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

#include "qgnn/quant/bit_policy.h"
#include "qgnn/quant/qat.h"
#include "qgnn/quant/quantizer.h"

namespace qgnn {
namespace {

constexpr QuantPoint kEmb0{0, QuantRole::kEmbedding};
constexpr QuantPoint kEmb1{1, QuantRole::kEmbedding};
constexpr QuantPoint kAtt0{0, QuantRole::kAttention};

TEST(QuantSpec, DefaultsDependOnRoleAndTarget) {
  const BitPolicy p = BitPolicy::parse("bits=4");
  const QuantSpec in = p.spec(kEmb0);
  EXPECT_EQ(in.scheme, QuantScheme::kAffine);
  EXPECT_EQ(in.range, RangeRule::kMinMax);
  EXPECT_EQ(in.granularity, Granularity::kRow);
  EXPECT_EQ(in.layout, LayoutRule::kAuto);  // the input may become an index list
  EXPECT_EQ(p.spec(kEmb1).layout, LayoutRule::kBitmap);
  EXPECT_EQ(p.spec(kAtt0).granularity, Granularity::kTensor);
  const QuantSpec lin = p.spec({0, QuantRole::kLinear}, QuantTarget::kInteger);
  EXPECT_EQ(lin.layout, LayoutRule::kNibble);  // int4 activations, two codes per byte
  EXPECT_EQ(lin.scheme, QuantScheme::kSymmetric);
  EXPECT_EQ(lin.range, RangeRule::kMomentum);
  EXPECT_EQ(lin.granularity, Granularity::kTensor);
  const QuantSpec w = p.spec({0, QuantRole::kWeight}, QuantTarget::kInteger);
  EXPECT_EQ(w.granularity, Granularity::kRow);  // per output channel
  EXPECT_EQ(w.range, RangeRule::kMinMax);
  for (QuantRole r : {QuantRole::kBoundary, QuantRole::kHistory}) {
    const QuantSpec s = p.spec({1, r});
    EXPECT_EQ(s.scheme, QuantScheme::kAffine);
    EXPECT_EQ(s.granularity, Granularity::kRow);
    EXPECT_EQ(s.bits, 4);
  }
}

TEST(QuantSpec, HalfAndFullPrecisionAreSchemes) {
  const BitPolicy p = BitPolicy::parse("emb=half;att=16;layer1.emb=3");
  EXPECT_EQ(p.spec(kEmb0).scheme, QuantScheme::kHalf);
  EXPECT_EQ(p.spec(kEmb0).bits, 16);
  EXPECT_EQ(p.spec(kAtt0).scheme, QuantScheme::kHalf);  // "16" reads as half
  EXPECT_EQ(p.spec(kEmb1).scheme, QuantScheme::kAffine);
  EXPECT_EQ(p.spec({0, QuantRole::kWeight}).scheme, QuantScheme::kFull);
  EXPECT_FALSE(p.spec({0, QuantRole::kWeight}).quantized());
  EXPECT_EQ(p.to_string(), "emb=half;att=half;layer1.emb=3");
  // Half ignores TAQ (no codes to cap).
  EXPECT_FALSE(BitPolicy::parse("emb=half;taq=4,2").spec(kEmb0).buckets.has_value());
  try {
    BitPolicy::parse("emb.scheme=half");
    ADD_FAILURE() << "scheme=half parsed";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("half and full precision are widths"), std::string::npos);
  }
}

TEST(QuantSpec, EveryAxisTakesEveryScopeAndRoundTrips) {
  const BitPolicy p = BitPolicy::parse(
      "bits=4;range=percentile;agg.range=momentum;layer2.agg.range=minmax;emb.layout=bitmap;"
      "layer0.emb.layout=index;layer1.emb.gran=tensor;layer1.emb.taq=4,2;boundary=1;"
      "history.gran=tensor;lin.scheme=affine;layer3.lin.scheme=symmetric");
  EXPECT_EQ(p.spec({0, QuantRole::kAggregate}).range, RangeRule::kMomentum);
  EXPECT_EQ(p.spec({2, QuantRole::kAggregate}).range, RangeRule::kMinMax);
  EXPECT_EQ(p.spec({0, QuantRole::kLinear}).range, RangeRule::kPercentile);
  // The policy-wide range does not reach weights and attention (not observed ranges).
  EXPECT_EQ(p.spec({0, QuantRole::kWeight}, QuantTarget::kInteger).range, RangeRule::kMinMax);
  EXPECT_FALSE(p.range(kAtt0).has_value());
  EXPECT_EQ(p.spec(kEmb0).layout, LayoutRule::kIndexList);
  EXPECT_EQ(p.spec(kEmb1).layout, LayoutRule::kBitmap);
  EXPECT_EQ(p.spec(kEmb1).granularity, Granularity::kTensor);
  EXPECT_EQ(p.spec({2, QuantRole::kEmbedding}).granularity, Granularity::kRow);
  EXPECT_TRUE(p.spec(kEmb1).buckets.has_value());
  EXPECT_FALSE(p.spec(kEmb0).buckets.has_value());
  EXPECT_EQ(p.spec({0, QuantRole::kBoundary}).bits, 1);
  EXPECT_EQ(p.spec({0, QuantRole::kHistory}).granularity, Granularity::kTensor);
  EXPECT_EQ(p.spec({0, QuantRole::kLinear}, QuantTarget::kInteger).scheme, QuantScheme::kAffine);
  EXPECT_EQ(p.spec({3, QuantRole::kLinear}, QuantTarget::kInteger).scheme, QuantScheme::kSymmetric);
  const std::string text = p.to_string();
  EXPECT_EQ(BitPolicy::parse(text).to_string(), text);
  EXPECT_TRUE(BitPolicy::parse(text) == p);
  for (const auto& [spec, needle] : std::vector<std::pair<std::string, std::string>>{
           {"range=sometimes", "unknown range rule 'sometimes'"},
           {"emb.layout=zigzag", "unknown layout 'zigzag'"},
           {"w.round=nonzero", "unknown key 'w.round'"},
           {"emb.scheme=log", "unknown scheme 'log'"},
           {"ghost=4", "unknown key 'ghost'"}}) {
    try {
      BitPolicy::parse(spec);
      ADD_FAILURE() << spec << " parsed";
    } catch (const c10::Error& e) {
      const std::string msg = e.what_without_backtrace();
      EXPECT_NE(msg.find(needle), std::string::npos) << msg;
      EXPECT_NE(msg.find("in '" + spec + "'"), std::string::npos) << msg;  // names the clause
    }
  }
}

TEST(Quantizer, RefusesInconsistentSpecs) {
  QuantSpec s;
  s.scheme = QuantScheme::kSymmetric;
  s.bits = 1;
  EXPECT_THROW(Quantizer{s}, c10::Error);  // symmetric needs 2..8
  s.bits = 4;
  s.buckets = DegreeBuckets{{}, {4, 2}};
  EXPECT_THROW(Quantizer{s}, c10::Error);  // TAQ is affine only
  s.buckets.reset();
  s.layout = LayoutRule::kIndexList;
  EXPECT_THROW(Quantizer{s}, c10::Error);  // an index list holds 1-bit affine codes
  s.layout = LayoutRule::kBitmap;
  const Quantizer q(s);
  // Packed storage stores affine codes: a symmetric quantizer is refused, not reinterpreted.
  EXPECT_THROW(q.pack(torch::randn({3, 4}), RowBits::uniform(4)), c10::Error);
  QuantSpec a;
  a.scheme = QuantScheme::kAffine;
  a.bits = 4;
  a.range = RangeRule::kMomentum;
  EXPECT_THROW(Quantizer(a).fake_quantize(torch::randn({3, 4}), RowBits::uniform(4)), c10::Error);
  EXPECT_THROW(Quantizer(a).scale(-1, 1), c10::Error);  // affine has no symmetric scale
}

// Symmetric codes against integer arithmetic done by hand.
TEST(Quantizer, SymmetricCodesMatchHandComputedIntegers) {
  QuantSpec s;
  s.scheme = QuantScheme::kSymmetric;
  s.bits = 4;  // qmax = 7
  const Quantizer q(s);
  EXPECT_FLOAT_EQ(q.scale(-3.5f, 1.0f), 0.5f);  // max(|lo|, |hi|) / 7
  const auto x = torch::tensor({-10.0f, -3.5f, -0.25f, 0.25f, 0.75f, 1.26f, 3.2f, 9.0f});
  // x / 0.5 = -20, -7, -0.5, 0.5, 1.5, 2.52, 6.4, 18 -> half-even, clamped to [-7, 7].
  const auto expect = torch::tensor({-7.0f, -7.0f, -0.0f, 0.0f, 2.0f, 3.0f, 6.0f, 7.0f});
  EXPECT_TRUE(torch::equal(q.codes(x, torch::scalar_tensor(0.5f)), expect));
  EXPECT_TRUE(torch::allclose(q.fake_quantize(x, torch::scalar_tensor(0.5f)), expect * 0.5f));
  // Per output channel: row scales max |w_c| / 7.
  const auto w = torch::tensor({{0.5f, -1.4f}, {0.0f, 0.0f}, {-0.07f, 0.035f}});
  const auto ws = q.weight_scale(w);
  EXPECT_TRUE(torch::allclose(ws, torch::tensor({0.2f, 1.0f, 0.01f})));
  EXPECT_TRUE(torch::equal(
      q.codes(w, ws),
      torch::tensor({{2.0f, -7.0f}, {0.0f, 0.0f}, {-7.0f, 4.0f}})));  // 2.5 -> 2, 3.5 -> 4
}

// Affine fake quantization, packing and the size the memory accounting asks for are one
// computation: decode(pack) == fake_quantize, and packed_size == nbytes in both layouts.
TEST(Quantizer, AffineFakeQuantPackAndSizeAgree) {
  torch::manual_seed(4);
  const auto deg = torch::randint(0, 9, {60}, torch::kLong);
  for (const char* spec : {"emb=3", "emb=1", "emb=8;emb.gran=tensor", "emb=5;taq=4@<=2,2",
                           "emb=2;emb.round=nonzero;emb.cols=on", "emb=half"}) {
    const Quantizer q = BitPolicy::parse(spec).quantizer(kEmb0);
    const auto x = torch::relu(torch::randn({60, 17}));
    const RowBits rb = q.row_bits(deg);
    const PackedTensor t = q.pack(x, rb);
    EXPECT_TRUE(torch::equal(t.decode(), q.fake_quantize(x, rb))) << spec;
    const PackedSize size = q.packed_size(60, 17, rb);
    EXPECT_EQ(size.bytes, t.nbytes()) << spec;
    EXPECT_EQ(size.code_bytes, t.code_bytes()) << spec;
  }
  // A sparse binary input: the 1-bit input point becomes an index list, and packed_size
  // given its number of 1-codes says so, byte for byte.
  const auto x = (torch::rand({200, 300}) < 0.02).to(torch::kFloat);
  const Quantizer q = BitPolicy::parse("emb=1").quantizer(kEmb0);
  const PackedTensor t = q.pack(x, RowBits::uniform(1));
  ASSERT_EQ(t.layout(), PackedLayout::kIndexList);
  const PackedSize size = q.packed_size(200, 300, RowBits::uniform(1), t.num_index_entries());
  EXPECT_EQ(size.layout, PackedLayout::kIndexList);
  EXPECT_EQ(size.bytes, t.nbytes());
  EXPECT_EQ(size.code_bytes, t.code_bytes());
  // layout=bitmap keeps the bitmap; layout=index refuses a dense tensor.
  const Quantizer bitmap = BitPolicy::parse("emb=1;emb.layout=bitmap").quantizer(kEmb0);
  EXPECT_EQ(bitmap.pack(x, RowBits::uniform(1)).layout(), PackedLayout::kBitmap);
  const Quantizer index = BitPolicy::parse("emb=1;emb.layout=index").quantizer(kEmb0);
  EXPECT_EQ(index.pack(x, RowBits::uniform(1)).layout(), PackedLayout::kIndexList);
  EXPECT_THROW(index.pack(torch::ones({20, 30}), RowBits::uniform(1)), c10::Error);
}

// QAT fake quantization and the integer model's codes come from the same quantizer:
// the QAT output divided by its scale is exactly the integer codes.
TEST(Quantizer, QatFakeQuantIsIntegerCodesTimesScale) {
  torch::manual_seed(5);
  QatConfig c = QatConfig::preset("int8");
  QatHook hook(c);
  const auto w = torch::randn({6, 10});
  const Quantizer q = hook.quantizer({0, QuantRole::kWeight});
  const auto scale = q.weight_scale(w);
  const auto fq = hook.weight(0, 0, w);
  EXPECT_TRUE(torch::equal(fq, q.codes(w, scale) * scale.unsqueeze(1)));
  // Integer reference: round half to even of w / s, clamped to +-127, by hand.
  const auto ref = torch::clamp(torch::round(w / scale.unsqueeze(1)), -127, 127);
  EXPECT_TRUE(torch::equal(q.codes(w, scale), ref));
}

// The nibble layout is the int4 kernels' storage: two's complement nibbles, two per byte.
TEST(Quantizer, NibbleLayoutStoresInt4CodesTwoPerByte) {
  const Quantizer q4 =
      BitPolicy::parse("bits=4").quantizer({0, QuantRole::kLinear}, QuantTarget::kInteger);
  ASSERT_EQ(q4.spec().layout, LayoutRule::kNibble);
  const auto codes = torch::tensor({{-7, 3, 0}, {7, -1, 5}}, torch::kChar);
  const auto stored = q4.store_codes(codes);
  ASSERT_EQ(stored.sizes(), (std::vector<int64_t>{2, 2}));
  // Row 0: low nibble -7 = 0x9, high nibble 3 -> 0x39; then 0 (odd F: high nibble 0).
  EXPECT_EQ(stored[0][0].item<uint8_t>(), 0x39);
  EXPECT_EQ(stored[0][1].item<uint8_t>(), 0x00);
  // Row 1: 7 = 0x7, -1 = 0xF -> 0xF7; 5 -> 0x05.
  EXPECT_EQ(stored[1][0].item<uint8_t>(), 0xF7);
  EXPECT_EQ(stored[1][1].item<uint8_t>(), 0x05);
  const Quantizer q8 =
      BitPolicy::parse("bits=8").quantizer({0, QuantRole::kLinear}, QuantTarget::kInteger);
  EXPECT_TRUE(torch::equal(q8.store_codes(codes), codes));  // one code per byte
  // Storage of affine codes has no nibble form.
  EXPECT_THROW(BitPolicy::parse("emb=4;emb.layout=nibble").quantizer(kEmb0), c10::Error);
}

TEST(RangeObserver, MomentumFoldsBatchesAndTakesTheFirstAsIs) {
  RangeObserver o;
  o.rule = RangeRule::kMomentum;
  o.momentum = 0.25;
  ObservedRange r;
  o.update(r, torch::tensor({-2.0f, 4.0f}));
  EXPECT_FLOAT_EQ(r.lo, -2.0f);
  EXPECT_FLOAT_EQ(r.hi, 4.0f);
  o.update(r, torch::tensor({-6.0f, 0.0f}));
  EXPECT_FLOAT_EQ(r.lo, 0.75f * -2.0f + 0.25f * -6.0f);
  EXPECT_FLOAT_EQ(r.hi, 0.75f * 4.0f);
  EXPECT_EQ(r.updates, 2);
}

}  // namespace
}  // namespace qgnn
