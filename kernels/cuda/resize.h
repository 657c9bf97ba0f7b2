// CUDA resize kernels (f32 and bf16; nearest also i32 and u8 for label maps), declared for the
// GPU (kernels::cuda) and the emulator (kernels::emu). Same semantics as kernels/cpu/resize.h:
// every function writes its whole output; backward passes are deterministic gathers.
// The _bf16 functions compute in f32 (source coordinates and weights as the _f32 ones; the
// backward sums in f32) and round each output once: the _f32 result on the widened input,
// rounded to bf16.
#pragma once
#include "kernels/bf16_math.h"
#include "kernels/device_api.h"
#include "kernels/resize_math.h"

C3_KERNELS_DECLARE(
  void resize_bilinear_f32(const float* x, float* y, ResizeShape s, bool align_corners);
  void resize_bilinear_backward_f32(const float* gy, float* gx, ResizeShape s, bool align_corners);
  void resize_nearest_f32(const float* x, float* y, ResizeShape s);
  void resize_nearest_i32(const int32_t* x, int32_t* y, ResizeShape s);
  void resize_nearest_u8(const uint8_t* x, uint8_t* y, ResizeShape s);
  void resize_nearest_backward_f32(const float* gy, float* gx, ResizeShape s);
  void resize_bilinear_bf16(const bf16* x, bf16* y, ResizeShape s, bool align_corners);
  void resize_bilinear_backward_bf16(const bf16* gy, bf16* gx, ResizeShape s, bool align_corners);
)
