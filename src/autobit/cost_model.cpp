#include "qgnn/autobit/cost_model.h"

#include <c10/util/Exception.h>
#include <xgboost/c_api.h>

#include <string>
#include <utility>

namespace qgnn {

namespace {

void check(int rc, const char* what) {
  TORCH_CHECK(rc == 0, "CostModel: XGBoost ", what, " failed: ", XGBGetLastError());
}

// Row-major copy of x with the shape checked.
std::vector<float> flatten(const std::vector<std::vector<float>>& x, int64_t dim,
                           const char* what) {
  std::vector<float> flat;
  flat.reserve(x.size() * dim);
  for (size_t i = 0; i < x.size(); ++i) {
    TORCH_CHECK(static_cast<int64_t>(x[i].size()) == dim, "CostModel::", what, ": row ", i, " has ",
                x[i].size(), " features, expected ", dim);
    flat.insert(flat.end(), x[i].begin(), x[i].end());
  }
  return flat;
}

// Owns a DMatrix handle.
struct Matrix {
  DMatrixHandle h = nullptr;
  Matrix(const std::vector<float>& flat, size_t rows, int64_t dim) {
    check(
        XGDMatrixCreateFromMat(flat.data(), rows, dim, std::numeric_limits<float>::quiet_NaN(), &h),
        "XGDMatrixCreateFromMat");
  }
  ~Matrix() {
    if (h != nullptr) XGDMatrixFree(h);
  }
};

}  // namespace

CostModel::CostModel() : CostModel(Options{}) {}
CostModel::CostModel(Options options) : options_(options) {}

CostModel::~CostModel() {
  if (booster_ != nullptr) XGBoosterFree(booster_);
}

CostModel::CostModel(CostModel&& o) noexcept
    : options_(o.options_), booster_(std::exchange(o.booster_, nullptr)), dim_(o.dim_) {}

CostModel& CostModel::operator=(CostModel&& o) noexcept {
  if (this != &o) {
    if (booster_ != nullptr) XGBoosterFree(booster_);
    options_ = o.options_;
    booster_ = std::exchange(o.booster_, nullptr);
    dim_ = o.dim_;
  }
  return *this;
}

void CostModel::fit(const std::vector<std::vector<float>>& x, const std::vector<float>& y) {
  TORCH_CHECK(!x.empty(), "CostModel::fit: no training rows");
  TORCH_CHECK(x.size() == y.size(), "CostModel::fit: ", x.size(), " rows but ", y.size(),
              " targets");
  const int64_t dim = static_cast<int64_t>(x[0].size());
  TORCH_CHECK(dim > 0, "CostModel::fit: rows have no features");
  const std::vector<float> flat = flatten(x, dim, "fit");
  Matrix m(flat, x.size(), dim);
  check(XGDMatrixSetFloatInfo(m.h, "label", y.data(), y.size()), "XGDMatrixSetFloatInfo");
  if (booster_ != nullptr) {
    XGBoosterFree(booster_);
    booster_ = nullptr;
  }
  BoosterHandle b = nullptr;
  check(XGBoosterCreate(&m.h, 1, &b), "XGBoosterCreate");
  booster_ = b;
  dim_ = dim;
  const std::pair<const char*, std::string> params[] = {
      {"objective", "reg:squarederror"},
      {"max_depth", std::to_string(options_.max_depth)},
      {"eta", std::to_string(options_.eta)},
      {"subsample", std::to_string(options_.subsample)},
      {"nthread", std::to_string(options_.threads)},
      {"seed", std::to_string(options_.seed)},
      {"min_child_weight", "1"},
      {"verbosity", "0"},
  };
  for (const auto& [k, v] : params) check(XGBoosterSetParam(b, k, v.c_str()), "XGBoosterSetParam");
  for (int it = 0; it < options_.rounds; ++it) {
    check(XGBoosterUpdateOneIter(b, it, m.h), "XGBoosterUpdateOneIter");
  }
}

std::vector<float> CostModel::predict(const std::vector<std::vector<float>>& x) const {
  TORCH_CHECK(booster_ != nullptr, "CostModel::predict: the model is not fitted");
  if (x.empty()) return {};
  const std::vector<float> flat = flatten(x, dim_, "predict");
  Matrix m(flat, x.size(), dim_);
  bst_ulong len = 0;
  const float* out = nullptr;
  check(XGBoosterPredict(booster_, m.h, 0, 0, 0, &len, &out), "XGBoosterPredict");
  TORCH_CHECK(len == x.size(), "CostModel::predict: XGBoost returned ", len, " values for ",
              x.size(), " rows");
  return std::vector<float>(out, out + len);
}

}  // namespace qgnn
