// The kernel lab's registry (bench/lab/lab.h) as tests: each entry's check (the device
// kernel against the CPU kernel on the same inputs) at every small scale, in both fiber
// orders on the emulator, and on a GPU when there is one (small scales and the reference
// protocol's). A kernel added to the lab is tested here without another harness.
#include <doctest/doctest.h>

#include <string>
#include <utility>
#include <vector>

#include "bench/lab/lab.h"
#include "kernels/cuda/emu/emu.h"
#include "tests/emu_helpers.h"
#include "tests/helpers.h"

namespace {
std::string describe(const lab::Kernel& k, const lab::Case& c, const char* where) {
  return k.family + " " + k.name + " v" + std::to_string(k.version) + " at " + c.shape + " (" + where + ")";
}
}  // namespace

TEST_CASE("kernel lab: every registered emulated kernel equals its CPU kernel at the small scales, both fiber orders") {
  REQUIRE(lab::registry().size() >= 20);
  for (const lab::Kernel& k : lab::registry())
    for (const lab::Scale& s : lab::Scale::checks()) {
      lab::Case c = k.setup(lab::Backend::emu, s);
      c3test::for_each_fiber_order([&](const char* order) {
        const std::string msg = c.check();
        CHECK_MESSAGE(msg.empty(), describe(k, c, order), ": ", msg);
      });
    }
}

// The race detector (c3tests-race, run by make test) over every entry at the edge scale, one
// fiber order (it finds a race in any order): a kernel whose threads touch one address between
// two barriers, one of them writing, fails here naming the kernel, the offset and both threads.
// make race-check runs the case above under it as well (the tiny scale too, a few minutes).
TEST_CASE("kernel lab: no registered emulated kernel races at the edge scale (c3tests-race)" *
          doctest::skip(!emu::race_detector())) {
  for (const lab::Kernel& k : lab::registry()) {
    lab::Case c = k.setup(lab::Backend::emu, lab::Scale::edge());
    std::string msg;
    try {
      msg = c.check();
    } catch (const emu::Error& e) {  // a race fails the launch; the other entries still run
      msg = e.what();
    }
    CHECK_MESSAGE(msg.empty(), describe(k, c, "race detector"), ": ", msg);
  }
}

// CUDA kernels whose emulated-vs-CPU check is only the lab's (no other test calls them): the
// lab entry that runs each. If an entry is renamed or dropped, this fails instead of the
// kernel silently losing its check.
TEST_CASE("kernel lab: the kernels checked only here have their entries") {
  const std::vector<std::pair<const char*, const char*>> only_here = {
      {"adam_kernel", "adam"},  // kernels/cuda/optim.cu, through adam_step_f32
      {"sgd_kernel", "sgd"},    // sgd_step_f32
      {"ema_kernel", "ema"},    // ema_step_f32
  };
  for (const auto& [kernel, entry] : only_here) {
    bool found = false;
    for (const lab::Kernel& k : lab::registry()) found |= k.family == "optim" && k.name == entry && k.version == 1;
    CHECK_MESSAGE(found, kernel, ": no lab entry optim/", entry, " v1");
  }
}

GPU_TEST_CASE("kernel lab: every registered CUDA kernel equals its CPU kernel, small scales and the reference shapes") {
  for (const lab::Kernel& k : lab::registry()) {
    std::vector<lab::Scale> scales = lab::Scale::checks();
    scales.push_back(lab::Scale::full());
    for (const lab::Scale& s : scales) {
      lab::Case c = k.setup(lab::Backend::cuda, s);
      const std::string msg = c.check();
      CHECK_MESSAGE(msg.empty(), describe(k, c, "cuda"), ": ", msg);
    }
  }
}
