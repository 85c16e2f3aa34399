// BitPolicy: parsing, canonical printing, round trip, resolution of points and TAQ rows.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

#include "qgnn/quant/bit_policy.h"

namespace qgnn {
namespace {

constexpr QuantPoint kEmb0{0, QuantRole::kEmbedding};
constexpr QuantPoint kEmb1{1, QuantRole::kEmbedding};
constexpr QuantPoint kAtt0{0, QuantRole::kAttention};
constexpr QuantPoint kAtt1{1, QuantRole::kAttention};

TEST(BitPolicy, ResolvesUniformComponentAndLayerBits) {
  auto p = BitPolicy::parse("bits=8; emb=4; att=2; layer1.emb=6");
  EXPECT_EQ(p.bits(kEmb0), 4);
  EXPECT_EQ(p.bits(kEmb1), 6);  // LWQ override
  EXPECT_EQ(p.bits(kAtt0), 2);  // CWQ
  EXPECT_EQ(p.bits({0, QuantRole::kAttention}), 2);
  auto u = BitPolicy::parse("bits=3");
  EXPECT_EQ(u.bits(kEmb1), 3);
  EXPECT_EQ(u.bits(kAtt1), 3);
  EXPECT_TRUE(BitPolicy::parse("").is_full_precision());
  EXPECT_TRUE(BitPolicy::parse("fp32").is_full_precision());
  EXPECT_FALSE(u.is_full_precision());
}

TEST(BitPolicy, CanonicalTextRoundTrips) {
  for (const char* spec :
       {"fp32", "bits=4", "emb=4;att=2;layer1.emb=8;taq=4@<=2,3@<=8,2", "emb=1;att.taq=4,3,2",
        "bits=16;emb.gran=tensor;att.gran=bucket;layer3.att=5", "emb=8;emb.taq=8@<=1,2",
        "emb=2;round=nonzero;emb.cols=on", "emb=1;emb.round=nonzero;cols=on;att.cols=off",
        "emb=2;layer0.emb.round=nonzero;layer0.emb.cols=on;layer1.att.cols=on"}) {
    BitPolicy p = BitPolicy::parse(spec);
    const std::string text = p.to_string();
    BitPolicy q = BitPolicy::parse(text);
    EXPECT_EQ(q.to_string(), text) << spec;
    EXPECT_TRUE(p == q) << spec;
  }
  // Canonical order and white space do not depend on how the spec was written.
  EXPECT_EQ(BitPolicy::parse(" layer1.emb = 8 ; att=2;emb=4 ").to_string(),
            "emb=4;att=2;layer1.emb=8");
}

TEST(BitPolicy, RoundingAndColumnScalesPerComponent) {
  const BitPolicy d = BitPolicy::parse("emb=2");
  EXPECT_EQ(d.spec(kEmb0).rounding, Rounding::kNearest);  // SGQuant's default
  EXPECT_FALSE(d.spec(kEmb0).column_scales);
  const BitPolicy p = BitPolicy::parse("emb=2;round=nonzero;att.round=nearest;emb.cols=on");
  EXPECT_EQ(p.spec(kEmb1).rounding, Rounding::kNonzero);
  EXPECT_EQ(p.spec(kAtt0).rounding, Rounding::kNearest);
  EXPECT_TRUE(p.spec(kEmb1).column_scales);
  EXPECT_FALSE(p.spec(kAtt0).column_scales);
  EXPECT_EQ(p.to_string(), "emb=2;emb.round=nonzero;emb.cols=on");
  // Layer overrides: the input only.
  const BitPolicy l = BitPolicy::parse("emb=2;layer0.emb.round=nonzero;layer0.emb.cols=on");
  EXPECT_EQ(l.spec(kEmb0).rounding, Rounding::kNonzero);
  EXPECT_EQ(l.spec(kEmb1).rounding, Rounding::kNearest);
  EXPECT_TRUE(l.spec(kEmb0).column_scales);
  EXPECT_FALSE(l.spec(kEmb1).column_scales);
  EXPECT_EQ(l.to_string(), "emb=2;layer0.emb.round=nonzero;layer0.emb.cols=on");
  const BitPolicy o = BitPolicy::parse("emb=2;emb.cols=on;layer1.emb.cols=off");
  EXPECT_TRUE(o.spec(kEmb0).column_scales);
  EXPECT_FALSE(o.spec(kEmb1).column_scales);
  EXPECT_TRUE(BitPolicy::parse(o.to_string()) == o);
  EXPECT_EQ(BitPolicy::parse("emb=2;emb.cols=on;layer1.emb.cols=on").to_string(),
            "emb=2;emb.cols=on");  // an override equal to its role's prints nothing
  // The defaults print nothing: an explicit default equals the policy without it.
  EXPECT_TRUE(BitPolicy::parse("emb=2;round=nearest;cols=off") == d);
  for (const auto& [spec, needle] : std::vector<std::pair<std::string, std::string>>{
           {"emb=2;round=up", "unknown rounding 'up' (nearest or nonzero) in 'round=up'"},
           {"emb=2;emb.cols=yes", "expected on or off, got 'yes' in 'emb.cols=yes'"},
           {"emb=2;w.round=nonzero", "unknown key 'w.round'"},
           {"emb=2;layer0.emb.round=up", "unknown rounding 'up'"},
           {"emb=2;layerX.emb.cols=on", "expected a layer number after 'layer', got 'X'"}}) {
    try {
      BitPolicy::parse(spec);
      ADD_FAILURE() << spec << " parsed";
    } catch (const c10::Error& e) {
      EXPECT_NE(std::string(e.what_without_backtrace()).find(needle), std::string::npos)
          << e.what_without_backtrace();
    }
  }
}

TEST(BitPolicy, TaqCapsBitsByInDegreeBucket) {
  auto p = BitPolicy::parse("emb=4;att=2;taq=4@<=2,3@<=8,2");
  auto deg = torch::tensor({0, 2, 3, 8, 9, 100}, torch::kLong);
  RowBits rb = p.row_bits(kEmb0, deg);
  EXPECT_EQ(rb.group_bits, (std::vector<int>{4, 3, 2}));
  EXPECT_TRUE(torch::equal(rb.row_group, torch::tensor({0, 0, 1, 1, 2, 2}, torch::kByte)));
  RowBits ra = p.row_bits(kAtt0, deg);
  EXPECT_EQ(ra.group_bits, (std::vector<int>{2, 2, 2}));  // capped by att=2
  // No TAQ: one group.
  RowBits ru = BitPolicy::parse("emb=5").row_bits(kEmb0, deg);
  EXPECT_FALSE(ru.row_group.defined());
  EXPECT_EQ(ru.group_bits, std::vector<int>{5});
}

TEST(BitPolicy, QuantileBucketsSplitRowsEvenly) {
  auto p = BitPolicy::parse("emb=8;emb.taq=8,4");
  auto deg = torch::arange(100, torch::kLong);
  RowBits rb = p.row_bits(kEmb0, deg);
  const auto counts = torch::bincount(rb.row_group.to(torch::kLong));
  EXPECT_NEAR(counts[0].item<int64_t>(), 50, 1);
  EXPECT_NEAR(counts[1].item<int64_t>(), 50, 1);
  // Low-degree rows keep more bits.
  EXPECT_EQ(rb.row_group[0].item<int>(), 0);
  EXPECT_EQ(rb.row_group[99].item<int>(), 1);
}

TEST(BitPolicy, ErrorsNameTheClause) {
  auto expect_error = [](const std::string& spec, const std::string& needle) {
    try {
      BitPolicy::parse(spec);
      FAIL() << "no error for " << spec;
    } catch (const c10::Error& e) {
      const std::string msg = e.what_without_backtrace();
      EXPECT_NE(msg.find(needle), std::string::npos) << msg;
      EXPECT_NE(msg.find(spec), std::string::npos) << msg;
    }
  };
  expect_error("emb=9", "bits must be 1-8, half (16) or 32, got 9");
  expect_error("emb=x", "expected bits");
  expect_error("foo=3", "unknown key 'foo'");
  expect_error("emb", "expected key=value");
  expect_error("taq=4@<=8,3@<=2,2", "bounds must increase");
  // 2^32 + 4 once truncated to int and was accepted as 4 bits.
  expect_error("emb=4294967300", "bits must be 1-8, half (16) or 32, got 4294967300");
  expect_error("taq=4294967298@<=2,4", "bits must be 1-8, half (16) or 32, got 4294967298");
}

TEST(BitPolicy, AcceptsBoundedTaqWithOpenLastBucket) {
  EXPECT_NO_THROW(BitPolicy::parse("taq=4@<=2,3"));
  EXPECT_THROW(BitPolicy::parse("taq=4@<=2,3@<=5"), c10::Error);
  EXPECT_THROW(BitPolicy::parse("layerX.emb=3"), c10::Error);
  EXPECT_THROW(BitPolicy::parse("emb.gran=cube"), c10::Error);
}

}  // namespace
}  // namespace qgnn
