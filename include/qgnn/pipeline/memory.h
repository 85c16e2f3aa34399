#pragma once
// Peak resident memory of full-graph inference under a bit policy, measured in a child
// process (fork) so that one measurement's allocations cannot hide or inflate another's
// peak. x is read in row chunks and, for a packed policy, packed chunk by chunk: the fp32
// [N, F] matrix is never held ("packed" in DESIGN.md's sense). What `qgnn memory` runs.
#include <cstdint>
#include <string>
#include <vector>

#include "qgnn/quant/bit_policy.h"
#include "qgnn/util/export.h"

namespace qgnn {

// How a measurement holds the model input x.
enum class XStorage { kDense, kCsr, kPacked };

struct MemoryPolicy {
  std::string label;  // as given
  XStorage storage = XStorage::kDense;
  BitPolicy policy;  // full precision for kDense / kCsr
};

// "fp32" (dense float x, as PyG holds it), "csr" (fp32, x stored sparse), B (an integer:
// "bits=B;emb.gran=row", every point) or a bit-policy spec. Throws c10::Error for a bad
// spec.
QGNN_API MemoryPolicy parse_memory_policy(const std::string& s);

struct MemoryConfig {
  std::string dataset_path;  // resolved .npz path
  // A trained fp32 checkpoint: its model, weights, feature normalization and split.
  // Empty: an untrained `model` (sgquant preset) with `feature_norm`.
  std::string checkpoint;
  std::string model = "gcn";
  std::string feature_norm = "auto";
  bool check_fake = false;    // also run the fake-quantized model and compare predictions
  int64_t chunk_rows = 1024;  // rows of x read (and packed) at a time
  int64_t seed = 0;           // split and weight seed
  int64_t repeats = 3;        // timed forwards after one warm-up
  int64_t threads = 0;        // intra-op threads of the child (0: libtorch's default)
};

// One measurement. Memory in MB (1e6 bytes); RSS figures read from /proc/self/status
// (VmRSS, VmHWM) in the child, ru_maxrss from the kernel by the parent.
struct InferenceMemory {
  std::string error;  // non-empty when the child failed (then only the labels are set)
  std::string policy, policy_spec, x_storage, x_layout, feature_norm;
  double baseline_rss_mb = 0;  // before loading anything
  double load_ms = 0, load_peak_rss_mb = 0, loaded_rss_mb = 0;
  double x_mb = 0;                                                  // x as held
  std::vector<double> rss_after_forward_mb, peak_after_forward_mb;  // after each forward
  double infer_ms = 0;                                              // median of the timed forwards
  std::vector<double> infer_ms_all;                                 // sorted
  // From shapes (memory_report): dense codes + parameters, as stored, fp32.
  double feature_mb = 0, stored_feature_mb = 0, fp32_feature_mb = 0, avg_bits = 0;
  double packed_held_mb = 0;  // bytes the packed hook held across a forward
  double test_acc = 0;        // percent
  int64_t num_nodes = 0, num_features = 0, num_edges = 0;
  int64_t nnz = -1;                      // of a sparse x, else -1
  double peak_rss_mb = 0;                // VmHWM after the forwards: the headline
  double ru_maxrss_mb = 0;               // the kernel's peak RSS of the child
  double fake_quant_agreement_pct = -1;  // check_fake: same prediction, % of nodes
};

// Measures `policy` in a forked child: loads the graph and x as the policy asks, runs
// one warm-up and config.repeats timed full-graph forwards of the checkpoint's model (or
// an untrained config.model), and reports. The calling process must not have started
// libtorch's OpenMP pool (a child forked after it could deadlock). Failures inside the
// child come back in `error`; throws c10::Error when the child cannot be started.
QGNN_API InferenceMemory measure_inference_memory(const MemoryConfig& config,
                                                  const MemoryPolicy& policy);

// The measurement as a JSON object (its field names as keys; fake_quant_agreement_pct,
// x_layout and nnz only when set).
QGNN_API std::string to_json(const InferenceMemory& m);

}  // namespace qgnn
