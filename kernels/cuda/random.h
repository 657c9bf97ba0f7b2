// CUDA random fills (kernels::cuda on the GPU, kernels::emu in emulation). Same semantics
// and the same values as kernels/cpu/random.h: integers and masks bit for bit, uniforms bit
// for bit (exact double arithmetic, see affine_exact), normals to a few ulp on the GPU
// (device logf/cosf/sinf) and bit for bit in emulation.
#pragma once
#include "kernels/device_api.h"
#include "kernels/philox_math.h"

C3_KERNELS_DECLARE(
  void random_bits(uint32_t* out, int64_t n, PhiloxDraw draw);
  void random_uniform(float* out, int64_t n, PhiloxDraw draw, float lo, float hi);
  void random_normal(float* out, int64_t n, PhiloxDraw draw, float mean, float std);
  void random_int(int32_t* out, int64_t n, PhiloxDraw draw, int64_t lo, uint64_t range);
  void random_bernoulli(uint8_t* out, int64_t n, PhiloxDraw draw, uint64_t threshold);
)
