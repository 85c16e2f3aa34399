#include "cli/report.h"

#include <unistd.h>

#include <cstdio>

#include "qgnn/util/threads.h"

namespace qgnn::cli {

std::string fmt(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

bool show_progress(const CommonOptions& c) { return !c.quiet && ::isatty(STDERR_FILENO); }

void apply_threads(const CommonOptions& c) { set_num_threads(c.threads); }

void write_json(const Outputs& out, const CommonOptions& c, const nlohmann::json& j) {
  out.write_text(c.json, j.dump(2) + "\n");
}

const char* layout_name(PackedLayout l) {
  return l == PackedLayout::kIndexList ? "index_list" : "bitmap";
}

std::string storage_line(const MemoryReport& m, const InputStorage& in) {
  if (!in.quantized) return "";
  return "storage (lossless format, not in the headline): input x as " +
         std::string(in.layout == PackedLayout::kIndexList ? "an index list" : "a bitmap") + " " +
         fmt(in.stored_bytes / 1e6, 3) + " MB vs " + fmt(in.csr_fp32_bytes / 1e6, 3) +
         " MB as fp32 CSR (" + fmt(in.saving_vs_csr()) + "x); all features as stored " +
         fmt(m.stored_mb(), 3) + " MB (" + fmt(m.stored_saving()) + "x vs dense fp32)\n";
}

void add_memory_json(nlohmann::json& j, const MemoryReport& m, const InputStorage& in) {
  j["avg_bits"] = m.average_bits();
  j["fp32_feature_mb"] = m.fp32_mb();
  j["quant_feature_mb"] = m.dense_mb();
  j["saving"] = m.saving();
  j["stored_feature_mb"] = m.stored_mb();
  j["stored_saving"] = m.stored_saving();
  j["input_layout"] = in.quantized ? layout_name(in.layout) : "fp32";
  j["input_stored_mb"] = in.stored_bytes / 1e6;
  j["input_csr_fp32_mb"] = in.csr_fp32_bytes / 1e6;
  j["storage_saving_vs_csr"] = in.saving_vs_csr();
}

}  // namespace qgnn::cli
