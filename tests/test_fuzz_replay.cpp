// Every seed input and every saved fuzzing finding (tests/fuzz/corpus/<target>/ and
// tests/fuzz/regressions/<target>/) through its target: each must be accepted or rejected
// with a c3::Error, never crash or throw anything else. A crash `make fuzz` finds is saved
// in regressions/ and stays here once fixed.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "tests/fuzz/targets.h"

namespace fs = std::filesystem;

TEST_CASE("fuzz: the seed corpora and saved findings are handled without a crash") {
  int inputs = 0;
  for (const c3fuzz::Target& t : c3fuzz::targets()) {
    int seeds = 0;
    for (const char* kind : {"corpus", "regressions"}) {
      const fs::path dir = fs::path("tests/fuzz") / kind / t.name;
      if (!fs::is_directory(dir)) continue;
      for (const auto& e : fs::directory_iterator(dir)) {
        if (!e.is_regular_file() || e.path().filename().string()[0] == '.') continue;
        std::ifstream f(e.path(), std::ios::binary);
        const std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
        CAPTURE(e.path().string());
        CHECK_NOTHROW(t.run(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
        ++inputs;
        seeds += std::string(kind) == "corpus";
      }
    }
    CHECK_MESSAGE(seeds >= 2, "target ", t.name, " has fewer than 2 seed inputs in tests/fuzz/corpus/", t.name);
  }
  CHECK(inputs >= 8);
}
