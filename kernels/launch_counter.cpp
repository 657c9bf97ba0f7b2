#include "kernels/launch_counter.h"

#include <atomic>

namespace kernels {
namespace {
std::atomic<uint64_t> g_launches{0};
}
uint64_t launches() { return g_launches.load(std::memory_order_relaxed); }
void count_launch() { g_launches.fetch_add(1, std::memory_order_relaxed); }
}  // namespace kernels
