// CUDA pooling kernels (f32 and bf16), declared for the GPU (kernels::cuda) and the emulator
// (kernels::emu). Same semantics as kernels/cpu/pool.h; deterministic (no atomics).
//
// The _bf16 entry points run the f32 kernels' code (templated on the element type): bf16
// values are compared and summed in f32 (the average pool's sums, a max-pool gradient summed
// over overlapping windows) and each output is rounded to bf16 once.
#pragma once
#include "kernels/device_api.h"
#include "kernels/pool_math.h"

C3_KERNELS_DECLARE(
  void max_pool2d_f32(const float* x, const PoolGeom& g, float* y, int32_t* argmax);
  void max_pool2d_bf16(const bf16* x, const PoolGeom& g, bf16* y, int32_t* argmax);
  void max_pool2d_backward_f32(const float* dy, const int32_t* argmax, const PoolGeom& g, float* dx);
  void max_pool2d_backward_bf16(const bf16* dy, const int32_t* argmax, const PoolGeom& g, bf16* dx);
  void global_avg_pool_f32(const float* x, int64_t N, int64_t HW, int64_t C, float* y);
  void global_avg_pool_bf16(const bf16* x, int64_t N, int64_t HW, int64_t C, bf16* y);
  void global_avg_pool_backward_f32(const float* dy, int64_t N, int64_t HW, int64_t C, float* dx);
  void global_avg_pool_backward_bf16(const bf16* dy, int64_t N, int64_t HW, int64_t C, bf16* dx);
)
