// libFuzzer target: convert_edge_list (qgnn convert) on arbitrary text. The first byte
// picks which input the rest replaces (0 edges, 1 features, 2 labels, 3 train ids; the
// others are a valid 4-node fixture). Bad text must end in c10::Error; a dataset the
// converter accepts must pass read_dataset's checks once written.
#include <c10/util/Exception.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "fuzz_util.h"
#include "qgnn/io/convert.h"
#include "qgnn/io/generate.h"

namespace {

using qgnn::fuzz::ScratchFile;

const std::string& fixture(ScratchFile& f, const char* text) {
  return f.write(reinterpret_cast<const uint8_t*>(text), std::char_traits<char>::length(text));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static ScratchFile edges(".edges"), features(".feat"), labels(".labels"), train(".train"),
      val(".val"), test(".test"), out(".npz");
  if (size == 0) return 0;
  const int target = data[0] % 4;
  qgnn::EdgeListSources s;
  s.one_based = (data[0] / 4) % 2 == 1;
  s.undirected = (data[0] / 8) % 2 == 1;
  // The fixtures in the id base the fuzzed file uses.
  s.edges = fixture(
      edges, s.one_based ? "src,dst\n1,2\n2,3\n3,4\n4,1\n" : "src,dst\n0,1\n1,2\n2,3\n3,0\n");
  s.features = fixture(features, "1,0\n0,1\n1,1\n0.5,2\n");
  s.labels = fixture(labels, "0\n1\n0\n1\n");
  if (target == 3) {
    s.train = fixture(train, s.one_based ? "1\n" : "0\n");
    s.val = fixture(val, s.one_based ? "2\n" : "1\n");
    s.test = fixture(test, s.one_based ? "3\n4\n" : "2\n3\n");
  }
  ScratchFile* fuzzed[4] = {&edges, &features, &labels, &train};
  fuzzed[target]->write(data + 1, size - 1);
  qgnn::Dataset d;
  try {
    d = qgnn::convert_edge_list(s);
  } catch (const c10::Error&) {
    return 0;
  }
  try {
    qgnn::write_dataset(out.path(), d);
    qgnn::read_dataset(out.path());
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "converted dataset fails read_dataset: %s\n", e.what_without_backtrace());
    std::abort();
  }
  return 0;
}
