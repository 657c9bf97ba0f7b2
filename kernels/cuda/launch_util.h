// Launch geometry and 16-byte access helpers shared by the kernel files.
#pragma once
#include <cstdint>

#include "kernels/bf16_math.h"
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

// 16-byte accesses for memory-bound kernels: p must be 16-byte aligned.
__device__ __forceinline__ float4 ld4(const float* p) { return *reinterpret_cast<const float4*>(p); }
__device__ __forceinline__ void st4(float* p, const float4& v) { *reinterpret_cast<float4*>(p) = v; }
__device__ __forceinline__ float& lane(float4& v, int k) { return k == 0 ? v.x : k == 1 ? v.y : k == 2 ? v.z : v.w; }

// The same 16-byte accesses for kernels written once over their element type T: ld16/st16 move
// lanes16<T> elements (4 float as a float4, 8 bf16 as a bf16x8). An aligned 16-byte aggregate
// is loaded and stored as one 128-bit access, as float4 is.
struct alignas(16) bf16x8 {
  bf16 v[8];
};
template <class T> constexpr int lanes16 = 16 / int(sizeof(T));
__device__ __forceinline__ float4 ld16(const float* p) { return ld4(p); }
__device__ __forceinline__ void st16(float* p, const float4& v) { st4(p, v); }
__device__ __forceinline__ bf16x8 ld16(const bf16* p) { return *reinterpret_cast<const bf16x8*>(p); }
__device__ __forceinline__ void st16(bf16* p, const bf16x8& v) { *reinterpret_cast<bf16x8*>(p) = v; }
__device__ __forceinline__ bf16& lane(bf16x8& v, int k) { return v.v[k]; }

}  // namespace kernels
