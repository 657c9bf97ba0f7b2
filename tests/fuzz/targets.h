// The fuzz targets: one function per input format a user hands us, each taking raw bytes.
// A target returns normally for any input, valid or not; a clean rejection is a c3::Error,
// caught inside. Anything else (a crash, a sanitizer report, another exception, a hang) is
// a finding. `make fuzz` drives them with libFuzzer (tests/fuzz/driver.cpp); `make test`
// replays the seed corpora and every saved finding through them (tests/test_fuzz_replay.cpp).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace c3fuzz {

void safetensors(const uint8_t* data, size_t size);  // nn::load_safetensors
void image(const uint8_t* data, size_t size);        // data::read_image and data::read_label
void config(const uint8_t* data, size_t size);       // a config file, and each line as a --set
void split_list(const uint8_t* data, size_t size);   // data::load_split_list, labeled subsets

struct Target {
  const char* name;
  void (*run)(const uint8_t*, size_t);
};
const std::vector<Target>& targets();

}  // namespace c3fuzz
