// CUDA pooling kernels (f32), declared for the GPU (kernels::cuda) and the emulator
// (kernels::emu). Same semantics as kernels/cpu/pool.h; deterministic (no atomics).
#pragma once
#include "kernels/device_api.h"
#include "kernels/pool_math.h"

C3_KERNELS_DECLARE(
  void max_pool2d_f32(const float* x, const PoolGeom& g, float* y, int32_t* argmax);
  void max_pool2d_backward_f32(const float* dy, const int32_t* argmax, const PoolGeom& g, float* dx);
  void global_avg_pool_f32(const float* x, int64_t N, int64_t HW, int64_t C, float* y);
  void global_avg_pool_backward_f32(const float* dy, int64_t N, int64_t HW, int64_t C, float* dx);
)
