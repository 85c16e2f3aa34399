// libFuzzer target: load_checkpoint. Bad input must end in c10::Error; any other
// exception, crash, sanitizer report, timeout or allocation beyond -rss_limit_mb is a bug.
// Two kinds of input:
//   starts with "PK" (a zip): the bytes are the checkpoint file itself (libtorch archive);
//   otherwise: "<config JSON>\n<meta JSON>" are written into a well-formed archive (format
//     version 1, no tensors), so that mutations reach ModelConfig::from_json and the
//     model's construction instead of stopping at the archive's CRCs.
#include <c10/util/Exception.h>
#include <torch/serialize/output-archive.h>

#include <cstdint>
#include <string>

#include "fuzz_util.h"
#include "qgnn/train/checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static qgnn::fuzz::ScratchFile file(".pt");
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  if (bytes.rfind("PK", 0) == 0) {
    file.write(data, size);
  } else {
    const size_t nl = bytes.find('\n');
    torch::serialize::OutputArchive ar;
    ar.write("qgnn_format", c10::IValue(int64_t{1}));
    ar.write("config", c10::IValue(bytes.substr(0, nl)));
    ar.write("meta", c10::IValue(nl == std::string::npos ? std::string() : bytes.substr(nl + 1)));
    ar.save_to(std::string(file.path()));
  }
  try {
    qgnn::load_checkpoint(file.path());
  } catch (const c10::Error&) {
  }
  return 0;
}
