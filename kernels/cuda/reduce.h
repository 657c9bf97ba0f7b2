// CUDA reductions (f32); same semantics as kernels/cpu/reduce.h.
#pragma once
#include "kernels/device_api.h"

C3_KERNELS_DECLARE(
  void sum_mid_f32(const float* x, float* out, int64_t outer, int64_t mid, int64_t inner);
  void broadcast_mid_f32(const float* x, float* out, int64_t outer, int64_t mid, int64_t inner);
  // vals may be null (argmax only); idx may be null (max only).
  void max_channels_f32(const float* x, float* vals, int32_t* idx, int64_t rows, int64_t C);
  void max_channels_backward_f32(const float* g, const int32_t* idx, float* gx, int64_t rows, int64_t C);
)
