#pragma once
// Printing helpers shared by the `qgnn` subcommands (only the CLI talks to a person).
#include <nlohmann/json.hpp>
#include <string>

#include "cli/options.h"
#include "cli/outputs.h"
#include "qgnn/pipeline/quantize.h"

namespace qgnn::cli {

// v with `digits` decimals.
std::string fmt(double v, int digits = 2);

// Progress lines go to a terminal only, and never with --quiet.
bool show_progress(const CommonOptions& c);

// Applies --threads.
void apply_threads(const CommonOptions& c);

// Writes `j` (2-space indented) to the reserved --json temporary.
void write_json(const Outputs& out, const CommonOptions& c, const nlohmann::json& j);

const char* layout_name(PackedLayout l);

// The labelled storage line printed under the headline (empty when x is not quantized).
std::string storage_line(const MemoryReport& m, const InputStorage& in);

// The figures every report carries: dense codes + parameters lead (comparable with
// SGQuant's Table III), the storage format follows under its own names.
void add_memory_json(nlohmann::json& j, const MemoryReport& m, const InputStorage& in);

}  // namespace qgnn::cli
