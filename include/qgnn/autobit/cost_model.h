#pragma once
// Learned cost model of SGQuant's automatic bit selection (Feng et al. ICTAI 2020,
// Sec. IV): gradient-boosted regression trees (XGBoost, through its C API) mapping the
// feature vector of a quantization configuration to its measured accuracy.
#include <cstdint>
#include <memory>
#include <vector>

#include "qgnn/util/export.h"

namespace qgnn {

class QGNN_API CostModel {
 public:
  struct Options {
    int rounds = 60;  // boosting rounds
    int max_depth = 4;
    double eta = 0.2;  // learning rate
    double subsample = 1.0;
    int threads = 1;
    uint64_t seed = 0;
  };

  CostModel();
  explicit CostModel(Options options);
  ~CostModel();
  CostModel(const CostModel&) = delete;
  CostModel& operator=(const CostModel&) = delete;
  CostModel(CostModel&&) noexcept;
  CostModel& operator=(CostModel&&) noexcept;

  // Fits on rows x (each of the same length D) with targets y (same count, >= 1).
  // Replaces any previous fit. Throws c10::Error on inconsistent shapes or an XGBoost
  // failure (with XGBoost's message).
  void fit(const std::vector<std::vector<float>>& x, const std::vector<float>& y);

  // Predictions for rows of length D. REQUIRES: fit() was called.
  std::vector<float> predict(const std::vector<std::vector<float>>& x) const;

  bool fitted() const { return booster_ != nullptr; }

 private:
  Options options_;
  void* booster_ = nullptr;  // BoosterHandle
  int64_t dim_ = 0;
};

}  // namespace qgnn
