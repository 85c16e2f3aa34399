#pragma once
// Seeded synthetic node-classification datasets: a power-law (R-MAT) graph with planted,
// homophilous classes and Gaussian class-conditional features, for speed work on graphs
// of any size without a download.
//
// Generative model (all randomness from `seed`; byte-identical output for any thread count):
//
//  1. Ranks and classes. Nodes are first numbered by popularity rank u in [0, N). Classes
//     are balanced: class(u) = q[u] mod C for a random permutation q, so every class has
//     floor(N / C) or ceil(N / C) members, spread over all ranks. The node id stored in the
//     file is perm[u] for a second random permutation, so hubs are not the low ids.
//  2. Edges. Each candidate edge k draws one R-MAT cell (Chakrabarti, Zhan & Faloutsos,
//     SDM 2004) at scale s = ceil(log2 N): at each of s levels one quadrant with
//     probabilities (a, b, c, d), Graph500's (0.57, 0.19, 0.19, 0.05) by default, giving
//     a row id i and a column id j in [0, 2^s). The source is the node of rank
//     floor(i * N / 2^s). Its target class is the source's class with probability h,
//     else a uniformly drawn other class c'; the target is the member of that class with
//     class rank floor(j * n_c' / 2^s) (members ordered by global rank), so within every
//     class the R-MAT column skew decides which nodes are hubs. A self loop is redrawn.
//  3. Exact edge count and homophily. Duplicates (and, for an undirected graph, both
//     orientations of a pair) are merged, keeping the earliest candidate of each edge;
//     candidates are drawn in rounds until there are round(h * M) distinct same-class and
//     M - round(h * M) distinct cross-class edges, and of each kind the earliest are kept
//     (duplicates are likelier inside a class, so a plain first-M cut would lower h).
//     Directed: M = E edges (j -> i stored in row i). Undirected: M = ceil(E / 2) pairs,
//     each stored in both rows, so 2 * ceil(E / 2) entries (E, or E + 1 for odd E). No
//     self loops, no duplicate entries. The fraction of stored entries joining same-class
//     nodes is round(h * M) / M: h is the edge homophily ratio (Zhu et al., NeurIPS 2020);
//     h = 1 / C gives class-blind edges, h < 1 / C heterophily.
//  4. Features: x_v = mu_{y_v} + sigma * z_v, z_v ~ N(0, I_F), with class centres
//     mu_c ~ N(0, m^2 I_F). The separation Delta = m * sqrt(2F) / sigma is the expected
//     distance between two centres in units of the noise, so a node's features alone give
//     a pairwise Bayes error of Phi(-Delta / 2) (16% at the default Delta = 2, and worse
//     among C classes), while averaging over in-neighbours, a fraction h of which share
//     the class, shrinks the noise with the degree. Per-value standard deviation is
//     sqrt(m^2 + sigma^2) = feature_std (0.2), so qgnn's default "binarize" feature
//     normalization (min(x, 1)) leaves all but ~1e-6 of the values unchanged.
//
// Randomness: splitmix64 streams keyed by (seed, candidate index) for edges and by
// (seed, node) for features; std::mt19937_64 for the permutations and class centres.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <string>

#include "qgnn/io/dataset.h"
#include "qgnn/util/export.h"

namespace qgnn {

struct QGNN_API GenerateConfig {
  int64_t num_nodes = 0;     // N, 2 <= N <= 2^31 - 1
  int64_t num_edges = 0;     // E >= 1, stored CSR entries (see above for undirected)
  int64_t num_features = 0;  // F >= 1
  int64_t num_classes = 0;   // C, 2 <= C <= N
  double homophily = 0.7;    // h in [0, 1]: fraction of same-class edges (step 3)
  bool undirected = true;    // store every edge in both directions
  uint64_t seed = 0;
  double rmat_a = 0.57, rmat_b = 0.19, rmat_c = 0.19;  // d = 1 - a - b - c
  double class_separation = 2.0;                       // Delta >= 0: centre distance / noise std
  double feature_std = 0.2;                            // per-value standard deviation of x, > 0
};

struct QGNN_API GenerateResult {
  Dataset dataset;             // no masks: read_dataset applies the seeded Shchur split
  int64_t candidates = 0;      // R-MAT candidate edges drawn (incl. self-loop failures)
  int64_t max_in_degree = 0;   // longest CSR row
  double edge_homophily = 0;   // fraction of stored entries joining same-class nodes
  int64_t isolated_nodes = 0;  // rows of length 0 with no out-edge either
};

// Stage names ("classes", "edges", "features") as each one starts, for progress output.
using GenerateProgress = std::function<void(const std::string& stage)>;

// Checks a configuration; throws c10::Error "generate: <field> (--<flag>) <problem>
// (got <value>)", naming the flag of `qgnn generate`, for the first bad field: N, E, F
// or C out of range; E above N (N - 1), the most a simple graph holds; E needing more
// same-class or cross-class edges at h than C balanced classes allow; h outside [0, 1];
// R-MAT probabilities negative or summing above 1; Delta < 0; feature_std <= 0.
QGNN_API void check_generate_config(const GenerateConfig& cfg);

// Generates the dataset described at the top of this file.
//   returns: dataset.graph [N, N] CSR (rows = in-neighbours, ascending indices), x [N, F]
//   float32, y [N] int64 in [0, C), num_classes = C, name "rmat", no split masks.
// Memory: about 25 bytes per candidate edge while edges are drawn, then 8 per stored
// entry and 4 N F for x (1M nodes, 20M entries, F = 128: 1.15 GB peak RSS).
// Throws what check_generate_config throws, and c10::Error naming --edges when the R-MAT
// skew and the classes cannot supply enough distinct same-class or cross-class edges
// within 32 M + 2^20 candidates (graphs too dense).
QGNN_API GenerateResult generate_rmat(const GenerateConfig& cfg,
                                      const GenerateProgress& progress = {});

// Writes `d` in the layout of data/README.md (indptr, indices int64; x float32; y int64;
// num_classes 0-d int64; weights [E] float32 when the graph has them; the three masks
// when d.has_public_split), atomically through
// write_npz. compress = true deflates the members (slow on dense float features).
// Throws write_npz's c10::Error naming the path.
QGNN_API void write_dataset(const std::string& path, const Dataset& d, bool compress = false);

}  // namespace qgnn
