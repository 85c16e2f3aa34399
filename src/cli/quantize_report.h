#pragma once
// What `qgnn quantize` and `qgnn run` share: the SGQuant options, and the report of a
// quantized model (table row, storage line, JSON, optional --save and --csv).
#include <string>

#include "cli/options.h"
#include "cli/outputs.h"
#include "qgnn/pipeline/quantize.h"

namespace qgnn::cli {

struct QuantizeCliOptions {
  QuantizeConfig config;
  std::string save;
  std::string csv;
};

// --policy, the search's options, --finetune-epochs, --csv and --save.
void add_quantize_options(CLI::App* cmd, QuantizeCliOptions& q);

// Reserves --json, --save and --csv.
void reserve_quantize_outputs(Outputs& out, const QuantizeCliOptions& q, const CommonOptions& c);

// Quantizes job.model (quantize_model, with search progress on a terminal), prints the
// table row and storage line, writes the JSON report, --csv and --save, and commits.
int quantize_and_report(Outputs& out, QuantizeJob& job, const QuantizeCliOptions& q,
                        const CommonOptions& c);

}  // namespace qgnn::cli
