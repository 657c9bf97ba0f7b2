#include "tests/fuzz/targets.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "data/dataset.h"
#include "data/image_io.h"
#include "nn/safetensors.h"
#include "semiseg/config.h"

namespace c3fuzz {
namespace fs = std::filesystem;
namespace {

// Our readers take paths: each input is written to this process's scratch folder first.
const std::string& scratch() {
  static const std::string dir = [] {
    const std::string d = (fs::temp_directory_path() / ("c3fuzz_" + std::to_string(::getpid()))).string();
    fs::create_directories(d + "/img");
    // Files a split list may name: an image and a label, one path holding a space.
    std::ofstream(d + "/img/a.png", std::ios::binary) << "not decoded by the list reader";
    std::ofstream(d + "/img/a b.png", std::ios::binary) << "x";
    return d;
  }();
  return dir;
}

std::string write_input(const char* name, const uint8_t* data, size_t size) {
  const std::string path = scratch() + "/" + name;
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(data), std::streamsize(size));
  return path;
}

template <class F>
void expect_clean(F&& f) {
  try {
    f();
  } catch (const c3::Error&) {
    // a clean rejection, naming the file or key
  }
}

}  // namespace

void safetensors(const uint8_t* data, size_t size) {
  const std::string path = write_input("in.safetensors", data, size);
  expect_clean([&] {
    c3::nn::SafetensorsFile f = c3::nn::load_safetensors(path);
    for (const auto& [name, t] : f.tensors) (void)t.numel();
  });
  expect_clean([&] { c3::nn::load_safetensors(path, {.keep_bf16 = true}); });
}

void image(const uint8_t* data, size_t size) {
  const std::string path = write_input("in.img", data, size);
  expect_clean([&] { c3::data::read_image(path); });
  expect_clean([&] { c3::data::read_label(path); });
}

void config(const uint8_t* data, size_t size) {
  const std::string path = write_input("in.json", data, size);
  expect_clean([&] { c3::semiseg::load_config(path, {}); });
  // Each line as an override of the defaults.
  std::string text(reinterpret_cast<const char*>(data), size), line;
  for (size_t start = 0; start <= text.size();) {
    const size_t nl = text.find('\n', start);
    line = text.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
    if (!line.empty()) expect_clean([&] { c3::semiseg::load_config("", {line}); });
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
}

void split_list(const uint8_t* data, size_t size) {
  const std::string path = write_input("in.txt", data, size);
  c3::data::LoadOptions skip;
  skip.on_missing = c3::data::OnMissing::skip;
  c3::data::LoadStats stats;
  expect_clean([&] { c3::data::load_split_list(path, scratch()); });
  expect_clean([&] {
    auto s = c3::data::load_split_list(path, scratch(), skip, &stats);
    c3::data::split_labeled_from_list({{scratch() + "/img/a.png", "", {}}}, path, scratch());
  });
}

const std::vector<Target>& targets() {
  static const std::vector<Target> t = {
      {"safetensors", safetensors}, {"image", image}, {"config", config}, {"split_list", split_list}};
  return t;
}

}  // namespace c3fuzz
