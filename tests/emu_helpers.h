// Runs emulated kernels in both fiber orders (a missing __syncthreads shows in one).
#pragma once
#include <functional>

#include "kernels/cuda/emu/emu.h"

namespace c3test {
inline void for_each_fiber_order(const std::function<void(const char*)>& body) {
  emu::set_fiber_order(emu::FiberOrder::forward);
  body("forward order");
  emu::set_fiber_order(emu::FiberOrder::reverse);
  body("reverse order");
  emu::set_fiber_order(emu::FiberOrder::forward);
}
}  // namespace c3test
