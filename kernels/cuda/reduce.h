// CUDA reductions (f32); same semantics as kernels/cpu/reduce.h.
#pragma once
#include "kernels/device_api.h"

C3_KERNELS_DECLARE(
  void sum_mid_f32(const float* x, float* out, int64_t outer, int64_t mid, int64_t inner);
  void broadcast_mid_f32(const float* x, float* out, int64_t outer, int64_t mid, int64_t inner);
)
