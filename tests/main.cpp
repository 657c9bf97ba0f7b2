// The test runner. doctest's own main, plus two options of ours:
//   --gpu-only    run only the GPU-vs-CPU cases (test suite "gpu")
// GPU cases report "skipped" when no CUDA device is present.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

int main(int argc, char** argv) {
  doctest::Context ctx;
  ctx.applyCommandLine(argc, argv);
  return ctx.run();
}
