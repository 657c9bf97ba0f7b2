// CUDA reductions (f32, and bf16 inputs for the sum and the broadcast); same semantics as
// kernels/cpu/reduce.h.
#pragma once
#include "kernels/device_api.h"
#include "kernels/reduce_math.h"

C3_KERNELS_DECLARE(
  // out[o, i] = sum over m of x[o, m, i], in f32. `scratch`: sum_mid_scratch(outer, mid, inner)
  // floats of device memory (may be null when that is 0).
  void sum_mid_f32(const float* x, float* out, int64_t outer, int64_t mid, int64_t inner, float* scratch);
  void sum_mid_bf16(const bf16* x, float* out, int64_t outer, int64_t mid, int64_t inner, float* scratch);
  void broadcast_mid_f32(const float* x, float* out, int64_t outer, int64_t mid, int64_t inner);
  void broadcast_mid_bf16(const bf16* x, bf16* out, int64_t outer, int64_t mid, int64_t inner);
  // vals may be null (argmax only); idx may be null (max only).
  void max_channels_f32(const float* x, float* vals, int32_t* idx, int64_t rows, int64_t C);
  void max_channels_backward_f32(const float* g, const int32_t* idx, float* gx, int64_t rows, int64_t C);
)
