#pragma once
// Summary statistics of repeated measurements (accuracy over seeds, latency over repeats).
#include <vector>

#include "qgnn/util/export.h"

namespace qgnn {

// Arithmetic mean; 0 for an empty vector.
QGNN_API double mean(const std::vector<double>& v);
// Sample standard deviation (n - 1 denominator); 0 for fewer than two values.
QGNN_API double sample_stddev(const std::vector<double>& v);
// Median (mean of the middle two for an even count); 0 for an empty vector.
QGNN_API double median(std::vector<double> v);

}  // namespace qgnn
