// CUDA elementwise kernels (f32), declared for the GPU (kernels::cuda) and the emulator
// (kernels::emu). Same semantics as kernels/cpu/elementwise.h.
#pragma once
#include "kernels/device_api.h"
#include "kernels/elementwise_math.h"

C3_KERNELS_DECLARE(
  void binary_f32(Binary op, const float* a, const float* b, float* out, int64_t n, Bcast bc, int64_t inner);
  void unary_f32(Unary op, const float* x, float* y, int64_t n, float p0, float p1);
  void unary_backward_f32(Unary op, const float* x, const float* y, const float* g, float* gx, int64_t n,
                          float p0, float p1);
  void select_f32(const uint8_t* mask, const float* a, const float* b, float* out, int64_t n);
  void fill_bytes4(void* out, int64_t n, uint32_t bits);  // any 4-byte dtype
  void fill_u8(uint8_t* out, int64_t n, uint8_t v);
  void axpy_f32(float alpha, const float* x, float* y, int64_t n);
  // Any two of f32, f64, i32, u8, bf16 (codes as c3::DType), per element as kernels::cast_element.
  void cast(const void* src, int src_dtype, void* dst, int dst_dtype, int64_t n);
  // Writes up to kSmallValues i32 values carried in the launch's own arguments: a small
  // upload that neither waits for the device nor needs page-locked memory.
  void write_small_i32(int32_t* out, const kernels::SmallI32& values);
)
