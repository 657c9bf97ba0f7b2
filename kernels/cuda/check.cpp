// Shared by the GPU and emulated builds (no CUDA types used).
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace kernels {
[[noreturn]] void cuda_fail(const char* what, const char* expr, const char* file, int line) {
  throw std::runtime_error(std::string("CUDA error: ") + what + " in " + expr + " at " + file + ":" +
                           std::to_string(line));
}
bool cuda_sync_debug() {
  static const bool on = [] {
    const char* v = std::getenv("C3_CUDA_SYNC");
    return v && *v && std::string(v) != "0";
  }();
  return on;
}
}  // namespace kernels
