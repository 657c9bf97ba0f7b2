// libFuzzer entry point for one target, chosen at compile time (make fuzz builds one binary
// per target: -DC3_FUZZ_TARGET=safetensors, image, config or split_list).
#include "tests/fuzz/targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  c3fuzz::C3_FUZZ_TARGET(data, size);
  return 0;
}
