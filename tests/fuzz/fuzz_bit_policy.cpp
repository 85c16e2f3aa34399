// libFuzzer target: BitPolicy::parse on arbitrary text. Bad specs must end in c10::Error;
// an accepted spec must round-trip: parse(to_string(p)).to_string() == to_string(p).
#include <c10/util/Exception.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "qgnn/quant/bit_policy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string spec(reinterpret_cast<const char*>(data), size);
  qgnn::BitPolicy p;
  try {
    p = qgnn::BitPolicy::parse(spec);
  } catch (const c10::Error&) {
    return 0;
  }
  const std::string text = p.to_string();
  std::string again;
  try {
    again = qgnn::BitPolicy::parse(text).to_string();
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "canonical text '%s' of '%s' does not parse: %s\n", text.c_str(),
                 spec.c_str(), e.what_without_backtrace());
    std::abort();
  }
  if (again != text) {
    std::fprintf(stderr, "round trip of '%s': '%s' -> '%s'\n", spec.c_str(), text.c_str(),
                 again.c_str());
    std::abort();
  }
  return 0;
}
