// Launch geometry shared by the kernel files.
#pragma once
#include <cstdint>

#include "kernels/cuda/compat.h"

namespace kernels {
// Grid for a grid-stride loop over n items: enough blocks to fill an H100 several times
// over, and never so many that the tail is mostly idle.
inline dim3 grid_for(int64_t n, int block, int64_t max_blocks = 1024) {
  int64_t b = (n + block - 1) / block;
  if (b < 1) b = 1;
  if (b > max_blocks) b = max_blocks;
  return dim3(static_cast<unsigned>(b));
}
}  // namespace kernels
