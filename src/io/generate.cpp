// Synthetic R-MAT datasets with planted homophilous classes (model: qgnn/io/generate.h).
#include "qgnn/io/generate.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <random>
#include <vector>

#include "io/random_internal.h"
#include "qgnn/io/npz.h"

namespace qgnn {
namespace {

constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ULL;
// Independent random streams derived from one seed.
constexpr uint64_t kDomainPermutations = 1, kDomainEdges = 2, kDomainCentres = 3,
                   kDomainFeatures = 4;
constexpr uint64_t kInvalidKey = std::numeric_limits<uint64_t>::max();
// Redraws of a target that hit its source before the candidate is dropped.
constexpr int kMaxTargetAttempts = 16;

// splitmix64's output function (Steele, Lea & Flood, OOPSLA 2014).
inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// A splitmix64 generator keyed by (seed, domain, index): counter-based, so that item
// `index` gets the same numbers whichever thread draws it.
struct SplitMix64 {
  SplitMix64(uint64_t seed, uint64_t domain, uint64_t index)
      : state(mix64(mix64(seed + domain * kGolden) ^ mix64(index + kGolden))) {}
  uint64_t next() {
    state += kGolden;
    return mix64(state);
  }
  uint64_t state;
};

// Uniform double in [0, 1) from the top 53 bits.
inline double unit(uint64_t x) { return static_cast<double>(x >> 11) * 0x1.0p-53; }

using detail::uniform_below;

std::vector<int64_t> random_permutation(int64_t n, std::mt19937_64& rng) {
  std::vector<int64_t> p(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) p[i] = i;
  for (int64_t i = n - 1; i > 0; --i) {  // Fisher-Yates
    std::swap(p[i], p[uniform_below(rng, static_cast<uint64_t>(i) + 1)]);
  }
  return p;
}

int bit_width(uint64_t v) {
  int b = 0;
  while (v > 0) {
    ++b;
    v >>= 1;
  }
  return b;
}

// Probability p in [0, 1] as a threshold on 32-bit uniforms.
uint64_t threshold32(double p) {
  return static_cast<uint64_t>(std::llround(std::clamp(p, 0.0, 1.0) * 4294967296.0));
}

// A node by popularity rank: its id in the file and its class.
struct RankInfo {
  int32_t node;
  int32_t cls;
};

// Draws candidate edges: an R-MAT cell mapped to a source rank and a target class rank
// (header, step 2). Holds pointers into the caller's class tables.
class EdgeSampler {
 public:
  EdgeSampler(const GenerateConfig& cfg, const RankInfo* rank_info, const int64_t* class_start,
              const int32_t* members)
      : n_(cfg.num_nodes),
        c_(cfg.num_classes),
        scale_(std::max(1, bit_width(static_cast<uint64_t>(cfg.num_nodes - 1)))),
        seed_(cfg.seed),
        homophily_(cfg.homophily),
        undirected_(cfg.undirected),
        ta_(threshold32(cfg.rmat_a)),
        tab_(threshold32(cfg.rmat_a + cfg.rmat_b)),
        tabc_(threshold32(cfg.rmat_a + cfg.rmat_b + cfg.rmat_c)),
        rank_info_(rank_info),
        class_start_(class_start),
        members_(members) {}

  // Keys row * N + col of candidates [k_begin, k_begin + count) into out (row = target, or
  // the larger id when undirected), or kInvalidKey when every target drawn was the source.
  // Candidate k's value depends on k alone; candidates go in batches so that the table
  // look-ups of a batch (cache misses on large graphs) overlap.
  void sample(uint64_t k_begin, int64_t count, uint64_t* out) const {
    constexpr int64_t kBatch = 32;
    struct Pending {
      SplitMix64 rng{0, 0, 0};
      uint64_t j = 0;
      int64_t u = 0, src = 0, ct = 0, member = 0;
    };
    Pending p[kBatch];
    for (int64_t base = 0; base < count; base += kBatch) {
      const int64_t len = std::min(kBatch, count - base);
      for (int64_t t = 0; t < len; ++t) {
        p[t].rng = SplitMix64(seed_, kDomainEdges, k_begin + static_cast<uint64_t>(base + t));
        uint64_t i;
        rmat_cell(p[t].rng, i, p[t].j);
        p[t].u = static_cast<int64_t>((i * static_cast<uint64_t>(n_)) >> scale_);
        __builtin_prefetch(rank_info_ + p[t].u);
      }
      for (int64_t t = 0; t < len; ++t) {
        const RankInfo info = rank_info_[p[t].u];
        p[t].src = info.node;
        p[t].ct = info.cls;
        if (!(unit(p[t].rng.next()) < homophily_)) {
          // One of the C - 1 other classes (multiply-shift; bias below C / 2^32).
          const uint64_t r = ((p[t].rng.next() >> 32) * static_cast<uint64_t>(c_ - 1)) >> 32;
          p[t].ct = (info.cls + 1 + static_cast<int64_t>(r)) % c_;
        }
        p[t].member = member_index(p[t].ct, p[t].j);
        __builtin_prefetch(members_ + p[t].member);
      }
      for (int64_t t = 0; t < len; ++t) {
        int64_t dst = members_[p[t].member];
        for (int attempt = 1; dst == p[t].src && attempt < kMaxTargetAttempts; ++attempt) {
          uint64_t unused, j;
          rmat_cell(p[t].rng, unused, j);
          dst = members_[member_index(p[t].ct, j)];
        }
        out[base + t] = dst == p[t].src ? kInvalidKey : key(p[t].src, dst);
      }
    }
  }

 private:
  // One R-MAT cell: row id i and column id j in [0, 2^scale), a quadrant per level from
  // 32 random bits (two levels per 64-bit draw): a = (0, 0), b = (0, 1), c = (1, 0),
  // d = (1, 1); the column bit is the parity of the thresholds passed.
  void rmat_cell(SplitMix64& rng, uint64_t& i, uint64_t& j) const {
    i = 0;
    j = 0;
    uint64_t bits = 0;
    for (int level = 0; level < scale_; ++level) {
      if (level % 2 == 0) bits = rng.next();
      const uint64_t r = bits & 0xFFFFFFFFULL;
      bits >>= 32;
      const uint64_t past_a = r >= ta_, past_ab = r >= tab_, past_abc = r >= tabc_;
      i = (i << 1) | past_ab;
      j = (j << 1) | (past_a ^ past_ab ^ past_abc);
    }
  }

  // Position in members_ of the class-ct member whose class rank column j selects.
  int64_t member_index(int64_t ct, uint64_t j) const {
    const uint64_t nc = static_cast<uint64_t>(class_start_[ct + 1] - class_start_[ct]);
    return class_start_[ct] + static_cast<int64_t>((j * nc) >> scale_);
  }

  uint64_t key(int64_t src, int64_t dst) const {
    const uint64_t row = static_cast<uint64_t>(undirected_ ? std::max(src, dst) : dst);
    const uint64_t col = static_cast<uint64_t>(undirected_ ? std::min(src, dst) : src);
    return row * static_cast<uint64_t>(n_) + col;
  }

  int64_t n_, c_;
  int scale_;
  uint64_t seed_;
  double homophily_;
  bool undirected_;
  uint64_t ta_, tab_, tabc_;
  const RankInfo* rank_info_;
  const int64_t* class_start_;
  const int32_t* members_;
};

// The distinct edges among the candidates drawn so far, bucketed by row: bucket r holds,
// sorted by column, one entry per distinct edge of row r, packed as
// col << index_bits | (index of the edge's earliest candidate).
struct Buckets {
  std::vector<int64_t> start;   // [N + 1] bucket offsets into packed (empty: no candidates)
  std::vector<int64_t> unique;  // [N] distinct edges in bucket r, at packed[start[r]...]
  std::vector<uint64_t> packed;
  // [candidates] kSame / kCross where a candidate is the earliest of a same-class /
  // cross-class edge, else 0.
  std::vector<uint8_t> first;
  int64_t total[3] = {0, 0, 0};  // distinct edges by kind (index kSame, kCross)
};
constexpr uint8_t kSame = 1, kCross = 2;

// Adds candidates [begin, begin + keys.size()) to `b` (keys[t] is candidate begin + t):
// only the new candidates are bucketed, sorted behind each row's earlier distinct entries
// and merged with them, and duplicates dropped. Earlier candidates have smaller indices,
// so an edge keeps its earliest candidate.
void add_candidates(Buckets& b, const std::vector<uint64_t>& keys, int64_t begin, int64_t n,
                    int index_bits, const int64_t* y) {
  const int64_t num_keys = static_cast<int64_t>(keys.size()), m = begin + num_keys;
  const bool has_old = !b.start.empty();
  std::vector<int64_t> start(static_cast<size_t>(n) + 1, 0);
  int64_t* cnt = start.data() + 1;
  at::parallel_for(0, num_keys, 1 << 16, [&](int64_t lo, int64_t hi) {
    for (int64_t t = lo; t < hi; ++t) {
      if (keys[t] != kInvalidKey) __atomic_fetch_add(&cnt[keys[t] / n], 1, __ATOMIC_RELAXED);
    }
  });
  for (int64_t r = 0; r < n; ++r) start[r + 1] += start[r] + (has_old ? b.unique[r] : 0);
  std::vector<uint64_t> packed(static_cast<size_t>(start[n]));
  std::vector<int64_t> cursor(static_cast<size_t>(n));
  at::parallel_for(0, n, 4096, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const int64_t old = has_old ? b.unique[r] : 0;
      if (old > 0) std::copy_n(b.packed.data() + b.start[r], old, packed.data() + start[r]);
      cursor[r] = start[r] + old;
    }
  });
  b.packed = std::vector<uint64_t>();
  at::parallel_for(0, num_keys, 1 << 16, [&](int64_t lo, int64_t hi) {
    for (int64_t t = lo; t < hi; ++t) {
      if (keys[t] == kInvalidKey) continue;
      const int64_t pos = __atomic_fetch_add(&cursor[keys[t] / n], 1, __ATOMIC_RELAXED);
      packed[pos] = ((keys[t] % n) << index_bits) | static_cast<uint64_t>(begin + t);
    }
  });
  // Scatter order depends on the threads; sorting each bucket makes it irrelevant.
  b.unique.resize(static_cast<size_t>(n));
  b.first.resize(static_cast<size_t>(m), 0);
  std::vector<int64_t> same(static_cast<size_t>(n), 0);
  const uint64_t index_mask = (uint64_t{1} << index_bits) - 1;
  at::parallel_for(0, n, 1024, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      uint64_t* p = packed.data() + start[r];
      const int64_t len = start[r + 1] - start[r], old = has_old ? b.unique[r] : 0;
      std::sort(p + old, p + len);  // the earlier entries are sorted already
      if (old > 0 && old < len) std::inplace_merge(p, p + old, p + len);
      int64_t out = 0;
      for (int64_t t = 0; t < len; ++t) {
        if (out > 0 && (p[t] >> index_bits) == (p[out - 1] >> index_bits)) continue;
        const bool is_same = y[p[t] >> index_bits] == y[r];
        b.first[p[t] & index_mask] = is_same ? kSame : kCross;
        same[r] += is_same;
        p[out++] = p[t];
      }
      b.unique[r] = out;
    }
  });
  b.start = std::move(start);
  b.packed = std::move(packed);
  b.total[kSame] = b.total[kCross] = 0;
  for (int64_t r = 0; r < n; ++r) {
    b.total[kSame] += same[r];
    b.total[kCross] += b.unique[r] - same[r];
  }
}

// Smallest limit such that candidates [0, limit) hold `wanted` earliest edges of `kind`.
int64_t kind_limit(const std::vector<uint8_t>& first, uint8_t kind, int64_t wanted) {
  int64_t limit = 0;
  for (int64_t seen = 0; seen < wanted; ++limit) seen += first[limit] == kind;
  return limit;
}

template <typename... Args>
void check_config(bool ok, const char* field, const char* flag, const Args&... problem) {
  TORCH_CHECK(ok, "generate: ", field, " (", flag, ") ", problem...);
}

}  // namespace

void check_generate_config(const GenerateConfig& cfg) {
  const int64_t n = cfg.num_nodes;
  check_config(n >= 2 && n <= std::numeric_limits<int32_t>::max(), "num_nodes", "--nodes",
               "must be in [2, 2^31 - 1] (got ", n, ")");
  check_config(cfg.num_edges >= 1, "num_edges", "--edges", "must be >= 1 (got ", cfg.num_edges,
               ")");
  check_config(cfg.num_edges <= n * (n - 1), "num_edges", "--edges",
               "must be at most N (N - 1) = ", n * (n - 1), " (no self loops or duplicates) (got ",
               cfg.num_edges, ")");
  check_config(cfg.num_features >= 1, "num_features", "--features", "must be >= 1 (got ",
               cfg.num_features, ")");
  check_config(cfg.num_features <= std::numeric_limits<int64_t>::max() / 4 / n, "num_features",
               "--features", "makes x larger than 2^63 bytes (got ", cfg.num_features, ")");
  check_config(cfg.num_classes >= 2 && cfg.num_classes <= n, "num_classes", "--classes",
               "must be in [2, N = ", n, "] (got ", cfg.num_classes, ")");
  check_config(cfg.homophily >= 0 && cfg.homophily <= 1, "homophily", "--homophily",
               "must be in [0, 1] (got ", cfg.homophily, ")");
  const double a = cfg.rmat_a, b = cfg.rmat_b, c = cfg.rmat_c;
  check_config(a >= 0 && b >= 0 && c >= 0 && a + b + c <= 1 + 1e-12, "rmat_a, rmat_b, rmat_c",
               "--rmat", "must be probabilities with a + b + c <= 1 (got ", a, ", ", b, ", ", c,
               ")");
  // The class sizes (floor / ceil of N / C) bound the same-class and cross-class edges.
  const int64_t num_classes = cfg.num_classes, big = n % num_classes, small_size = n / num_classes;
  int64_t same_max =
      big * (small_size + 1) * small_size + (num_classes - big) * small_size * (small_size - 1);
  int64_t cross_max = n * (n - 1) - same_max;
  int64_t wanted = cfg.num_edges;
  if (cfg.undirected) {
    same_max /= 2;
    cross_max /= 2;
    wanted = (cfg.num_edges + 1) / 2;
  }
  const int64_t want_same = std::llround(cfg.homophily * static_cast<double>(wanted));
  const char* what = cfg.undirected ? " pairs" : " edges";
  check_config(want_same <= same_max && wanted - want_same <= cross_max, "num_edges", "--edges",
               "needs ", want_same, " same-class and ", wanted - want_same, " cross-class", what,
               " at --homophily ", cfg.homophily, ", but ", num_classes, " classes of ", n,
               " nodes hold at most ", same_max, " and ", cross_max, " (got ", cfg.num_edges, ")");
  check_config(cfg.class_separation >= 0 && std::isfinite(cfg.class_separation), "class_separation",
               "--separation", "must be finite and >= 0 (got ", cfg.class_separation, ")");
  TORCH_CHECK(cfg.feature_std > 0 && std::isfinite(cfg.feature_std),
              "generate: feature_std must be finite and > 0 (got ", cfg.feature_std, ")");
}

GenerateResult generate_rmat(const GenerateConfig& cfg, const GenerateProgress& progress) {
  check_generate_config(cfg);
  auto stage = [&](const char* s) {
    if (progress) progress(s);
  };
  const int64_t n = cfg.num_nodes, num_classes = cfg.num_classes, f = cfg.num_features;

  // 1. Ranks, classes and node ids.
  stage("classes");
  std::mt19937_64 perm_rng(mix64(cfg.seed + kDomainPermutations * kGolden));
  std::vector<RankInfo> rank_info(static_cast<size_t>(n));
  {
    const std::vector<int64_t> node_of_rank = random_permutation(n, perm_rng);
    const std::vector<int64_t> q = random_permutation(n, perm_rng);
    for (int64_t u = 0; u < n; ++u) {
      rank_info[u] = {static_cast<int32_t>(node_of_rank[u]),
                      static_cast<int32_t>(q[u] % num_classes)};
    }
  }
  std::vector<int64_t> class_start(static_cast<size_t>(num_classes) + 1, 0);
  for (int64_t u = 0; u < n; ++u) ++class_start[rank_info[u].cls + 1];
  for (int64_t c = 0; c < num_classes; ++c) class_start[c + 1] += class_start[c];
  std::vector<int32_t> members(static_cast<size_t>(n));  // node ids by (class, rank)
  {
    std::vector<int64_t> fill(class_start.begin(), class_start.end() - 1);
    for (int64_t u = 0; u < n; ++u) members[fill[rank_info[u].cls]++] = rank_info[u].node;
  }
  at::Tensor y = at::empty({n}, at::kLong);
  int64_t* yp = y.data_ptr<int64_t>();
  for (int64_t u = 0; u < n; ++u) yp[rank_info[u].node] = rank_info[u].cls;

  // 2-3. Candidate edges in rounds until enough distinct ones of each kind exist: exactly
  // round(h * wanted) same-class edges, so that merging duplicates (likelier inside a
  // class) does not lower the edge homophily.
  stage("edges");
  const int64_t wanted = cfg.undirected ? (cfg.num_edges + 1) / 2 : cfg.num_edges;
  int64_t want[3] = {0, 0, 0};
  want[kSame] = std::llround(cfg.homophily * static_cast<double>(wanted));
  want[kCross] = wanted - want[kSame];
  const int index_bits = 64 - bit_width(static_cast<uint64_t>(n - 1));
  const int64_t budget = std::min<int64_t>(
      32 * wanted + (int64_t{1} << 20),
      index_bits >= 63 ? std::numeric_limits<int64_t>::max() : (int64_t{1} << index_bits));
  const EdgeSampler sampler(cfg, rank_info.data(), class_start.data(), members.data());
  std::vector<uint64_t> keys;  // the current round's candidates
  Buckets b;
  int64_t drawn = 0, add = wanted + wanted / 16 + 1024, prev_drawn = 0;
  int64_t prev_total[3] = {0, 0, 0};
  while (true) {
    add = std::min(add, budget - drawn);
    keys.resize(static_cast<size_t>(add));
    at::parallel_for(0, add, 1 << 14, [&](int64_t begin, int64_t end) {
      sampler.sample(static_cast<uint64_t>(drawn + begin), end - begin, keys.data() + begin);
    });
    add_candidates(b, keys, drawn, n, index_bits, yp);
    drawn += add;
    if (b.total[kSame] >= want[kSame] && b.total[kCross] >= want[kCross]) break;
    const uint8_t short_kind = b.total[kSame] < want[kSame] ? kSame : kCross;
    TORCH_CHECK(drawn < budget, "generate: num_edges (--edges) too many for the R-MAT skew on ", n,
                " nodes and ", num_classes, " classes: ", drawn, " candidates gave ",
                b.total[short_kind], " distinct ",
                short_kind == kSame ? "same-class " : "cross-class ",
                cfg.undirected ? "pairs" : "edges", " of the ", want[short_kind],
                " needed (got --edges ", cfg.num_edges, "; lower it or raise --nodes)");
    // Next round: enough for the slower kind at the last round's yield, plus a margin.
    double more = 0;
    for (uint8_t kind : {kSame, kCross}) {
      if (b.total[kind] >= want[kind]) continue;
      const double yield = std::max(1e-6, static_cast<double>(b.total[kind] - prev_total[kind]) /
                                              static_cast<double>(drawn - prev_drawn));
      more = std::max(more, static_cast<double>(want[kind] - b.total[kind]) / yield);
    }
    prev_total[kSame] = b.total[kSame];
    prev_total[kCross] = b.total[kCross];
    prev_drawn = drawn;
    add = std::max<int64_t>(static_cast<int64_t>(std::min(1.25 * more, 1e18)) + 1024, drawn / 4);
  }
  keys = std::vector<uint64_t>();

  // Keep, of each kind, the wanted number of edges whose earliest candidates come first.
  int64_t limit[3] = {0, 0, 0};
  for (uint8_t kind : {kSame, kCross}) limit[kind] = kind_limit(b.first, kind, want[kind]);
  b.first = std::vector<uint8_t>();
  const uint64_t index_mask = (uint64_t{1} << index_bits) - 1;
  std::vector<int64_t> kept(static_cast<size_t>(n));  // edges kept per bucket, at its start
  at::parallel_for(0, n, 1024, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      uint64_t* p = b.packed.data() + b.start[r];
      int64_t out = 0;
      for (int64_t t = 0; t < b.unique[r]; ++t) {
        const uint8_t kind = yp[p[t] >> index_bits] == yp[r] ? kSame : kCross;
        if (static_cast<int64_t>(p[t] & index_mask) < limit[kind]) p[out++] = p[t];
      }
      kept[r] = out;
    }
  });

  // CSR: row r lists the in-neighbours of r (bucket r's columns); undirected graphs also
  // get each pair (r, c < r) as c's entry r, appended in ascending r so rows stay sorted.
  at::Tensor indptr = at::empty({n + 1}, at::kLong);
  int64_t* ip = indptr.data_ptr<int64_t>();
  std::vector<int64_t> upper(cfg.undirected ? static_cast<size_t>(n) : 0, 0);
  if (cfg.undirected) {
    for (int64_t r = 0; r < n; ++r) {
      const uint64_t* p = b.packed.data() + b.start[r];
      for (int64_t t = 0; t < kept[r]; ++t) ++upper[p[t] >> index_bits];
    }
  }
  ip[0] = 0;
  for (int64_t r = 0; r < n; ++r) ip[r + 1] = ip[r] + kept[r] + (cfg.undirected ? upper[r] : 0);
  const int64_t num_entries = ip[n];
  TORCH_INTERNAL_ASSERT(num_entries == (cfg.undirected ? 2 * wanted : wanted));
  at::Tensor indices = at::empty({num_entries}, at::kLong);
  int64_t* ix = indices.data_ptr<int64_t>();
  at::parallel_for(0, n, 1024, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const uint64_t* p = b.packed.data() + b.start[r];
      for (int64_t t = 0; t < kept[r]; ++t) {
        ix[ip[r] + t] = static_cast<int64_t>(p[t] >> index_bits);
      }
    }
  });
  if (cfg.undirected) {
    std::vector<int64_t> cursor(static_cast<size_t>(n));
    for (int64_t r = 0; r < n; ++r) cursor[r] = ip[r] + kept[r];
    for (int64_t r = 0; r < n; ++r) {
      const uint64_t* p = b.packed.data() + b.start[r];
      for (int64_t t = 0; t < kept[r]; ++t) ix[cursor[p[t] >> index_bits]++] = r;
    }
  }
  b = Buckets();

  // 4. Features.
  stage("features");
  const double delta = cfg.class_separation;
  const double sigma = cfg.feature_std / std::sqrt(1.0 + delta * delta / (2.0 * f));
  const double m = delta * sigma / std::sqrt(2.0 * f);
  at::Tensor centres = at::empty({num_classes, f}, at::kFloat);
  {
    std::mt19937_64 rng(mix64(cfg.seed + kDomainCentres * kGolden));
    float* cp = centres.data_ptr<float>();
    for (int64_t i = 0; i < num_classes * f; i += 2) {  // Box-Muller
      const double u1 = 1.0 - unit(rng()), u2 = unit(rng());
      const double r = std::sqrt(-2.0 * std::log(u1)), th = 2 * M_PI * u2;
      cp[i] = static_cast<float>(m * r * std::cos(th));
      if (i + 1 < num_classes * f) cp[i + 1] = static_cast<float>(m * r * std::sin(th));
    }
  }
  at::Tensor x = at::empty({n, f}, at::kFloat);
  {
    float* xp = x.data_ptr<float>();
    const float* cp = centres.data_ptr<float>();
    const float s = static_cast<float>(sigma);
    at::parallel_for(0, n, 256, [&](int64_t begin, int64_t end) {
      for (int64_t v = begin; v < end; ++v) {
        SplitMix64 rng(cfg.seed, kDomainFeatures, static_cast<uint64_t>(v));
        float* row = xp + v * f;
        const float* mu = cp + yp[v] * f;
        for (int64_t i = 0; i < f; i += 2) {  // Box-Muller from 24 + 24 random bits
          const uint64_t bits = rng.next();
          const float u1 = static_cast<float>((bits >> 40) + 1) * 0x1.0p-24f;  // (0, 1]
          const float u2 = static_cast<float>((bits >> 16) & 0xFFFFFF) * 0x1.0p-24f;
          const float r = s * std::sqrt(-2.0f * std::log(u1));
          const float th = 2.0f * static_cast<float>(M_PI) * u2;
          row[i] = mu[i] + r * std::cos(th);
          if (i + 1 < f) row[i + 1] = mu[i + 1] + r * std::sin(th);
        }
      }
    });
  }

  GenerateResult res;
  res.candidates = drawn;
  std::vector<int64_t> same(static_cast<size_t>(n)), has_out(static_cast<size_t>(n), 0);
  at::parallel_for(0, n, 1024, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      int64_t s = 0;
      for (int64_t e = ip[r]; e < ip[r + 1]; ++e) s += yp[ix[e]] == yp[r];
      same[r] = s;
    }
  });
  for (int64_t e = 0; e < num_entries; ++e) has_out[ix[e]] = 1;
  int64_t num_same = 0;
  for (int64_t r = 0; r < n; ++r) {
    num_same += same[r];
    res.max_in_degree = std::max(res.max_in_degree, ip[r + 1] - ip[r]);
    res.isolated_nodes += ip[r + 1] == ip[r] && !has_out[r];
  }
  res.edge_homophily = static_cast<double>(num_same) / static_cast<double>(num_entries);

  Dataset& d = res.dataset;
  d.name = "rmat";
  d.graph = CsrGraph(indptr, indices);
  d.x = x;
  d.feature_dim = f;
  d.y = y;
  d.num_classes = num_classes;
  return res;
}

void write_dataset(const std::string& path, const Dataset& d, bool compress) {
  std::map<std::string, at::Tensor> arrays = {
      {"indptr", d.graph.indptr()},
      {"indices", d.graph.indices()},
      {"x", d.x},
      {"y", d.y},
      {"num_classes", at::scalar_tensor(d.num_classes, at::TensorOptions().dtype(at::kLong))}};
  if (d.graph.has_weights()) arrays["weights"] = d.graph.weights();
  if (d.has_public_split) {
    arrays["train_mask"] = d.train_mask;
    arrays["val_mask"] = d.val_mask;
    arrays["test_mask"] = d.test_mask;
  }
  write_npz(path, arrays, compress);
}

}  // namespace qgnn
