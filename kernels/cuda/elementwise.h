// CUDA elementwise kernels (f32 and bf16), declared for the GPU (kernels::cuda) and the
// emulator (kernels::emu). Same semantics as kernels/cpu/elementwise.h.
//
// The _bf16 entry points run the same kernels as the _f32 ones (templated on the element
// type): each bf16 element is widened to f32, the math is the f32 math, and each output is
// rounded to bf16 once (kernels::narrow), so a bf16 result is the f32 kernel's result on the
// widened inputs, rounded once. The scalars (p0, p1, alpha) stay f32. select copies the
// chosen element's bits.
#pragma once
#include "kernels/device_api.h"
#include "kernels/elementwise_math.h"

C3_KERNELS_DECLARE(
  void binary_f32(Binary op, const float* a, const float* b, float* out, int64_t n, Bcast bc, int64_t inner);
  void binary_bf16(Binary op, const bf16* a, const bf16* b, bf16* out, int64_t n, Bcast bc, int64_t inner);
  void unary_f32(Unary op, const float* x, float* y, int64_t n, float p0, float p1);
  void unary_bf16(Unary op, const bf16* x, bf16* y, int64_t n, float p0, float p1);
  void unary_backward_f32(Unary op, const float* x, const float* y, const float* g, float* gx, int64_t n,
                          float p0, float p1);
  void unary_backward_bf16(Unary op, const bf16* x, const bf16* y, const bf16* g, bf16* gx, int64_t n, float p0,
                           float p1);
  void select_f32(const uint8_t* mask, const float* a, const float* b, float* out, int64_t n);
  void fill_bytes4(void* out, int64_t n, uint32_t bits);  // any 4-byte dtype
  void fill_bytes2(void* out, int64_t n, uint16_t bits);  // any 2-byte dtype (bf16)
  void fill_u8(uint8_t* out, int64_t n, uint8_t v);
  void axpy_f32(float alpha, const float* x, float* y, int64_t n);
  // Any two of f32, f64, i32, u8, bf16 (codes as c3::DType), per element as kernels::cast_element.
  void cast(const void* src, int src_dtype, void* dst, int dst_dtype, int64_t n);
  // Writes up to kSmallValues i32 values carried in the launch's own arguments: a small
  // upload that neither waits for the device nor needs page-locked memory.
  void write_small_i32(int32_t* out, const kernels::SmallI32& values);
)
