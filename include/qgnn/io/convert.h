#pragma once
// Datasets from the formats users keep graphs in, converted to qgnn's .npz layout
// (data/README.md): an edge list (CSV / TSV / whitespace) with features and labels, or
// OGB's raw node-property layout. Every text file may be gzip-compressed (read through
// zlib, which also reads plain files) and is read line by line: memory is the dataset
// being built (24 bytes per edge line while sorting, twice that with --undirected, plus
// the CSR; 4 N F bytes for the features, grown as a vector), never a whole text file.
// Lines are at most 64 MiB; a UTF-8 byte-order mark is skipped, a NUL byte is an error.
//
// Lines that are empty or start with '#' or '%' are skipped everywhere. A bad line is a
// one-line c10::Error "convert: <file>:<line>: <problem> (got '<value>')".
#include <cstdint>
#include <string>

#include "qgnn/io/dataset.h"
#include "qgnn/util/export.h"

namespace qgnn {

// Field separator of a text table.
enum class Delimiter { kAuto, kComma, kTab, kWhitespace };
// "auto", "comma", "tab", "space"; throws c10::Error naming the bad value.
QGNN_API Delimiter parse_delimiter(const std::string& s);

struct QGNN_API EdgeListSources {
  // Edges, one per line: "source target" or "source target weight" (an edge source ->
  // target; weight finite and > 0). A first line whose first field is not an integer is
  // a header and skipped.
  std::string edges;
  // Node features: a .npy [N, F] array (float or integer), or a text table with one row
  // of F numbers per node, row i = node i.
  std::string features;
  // Labels: a .npy [N] integer array, or a text file with one integer per line (line i =
  // node i) or "node label" per line (every node once). Labels >= 0; num_classes = max
  // label + 1.
  std::string labels;
  // Optional split: three files of node ids, one per line (all three or none); without
  // them read_dataset draws Shchur et al.'s random split.
  std::string train, val, test;
  Delimiter delimiter = Delimiter::kAuto;  // of every text table
  bool one_based = false;                  // node ids in all files start at 1
  bool undirected = false;  // each edge also stands for target -> source (weights alike)
};

// What a conversion did beyond the dataset itself.
struct QGNN_API ConvertReport {
  int64_t lines = 0;               // edge lines read (without comments and the header)
  int64_t duplicates_dropped = 0;  // repeated (source, target) lines; the first kept
  int64_t reverse_pairs = 0;       // --undirected: pairs written in both directions (one edge,
                                   // the first line's weight)
  int64_t self_loops = 0;          // edges i -> i, kept
};

// Builds the dataset (N = feature rows; labels and ids must fit it). Throws c10::Error as
// described above, or naming the file for unreadable or inconsistent inputs (row counts,
// ids out of range, overlapping split files).
QGNN_API Dataset convert_edge_list(const EdgeListSources& src, ConvertReport* report = nullptr);

// OGB's raw node-property layout (e.g. ogbn-arxiv as downloaded): <dir>/raw/edge.csv.gz
// ("source,target" per line), num-node-list.csv.gz (N), node-feat.csv.gz (F numbers per
// line), node-label.csv.gz (one label per line), and <dir>/split/<split>/{train,valid,
// test}.csv.gz (node ids). OGB node ids are 0-based. `undirected` adds the reverse edges
// (PyG's to_undirected, as the OGB examples do for ogbn-arxiv).
QGNN_API Dataset convert_ogb(const std::string& dir, const std::string& split, bool undirected,
                             ConvertReport* report = nullptr);

}  // namespace qgnn
