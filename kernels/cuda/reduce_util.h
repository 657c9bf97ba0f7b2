// The one reduction toolkit of the CUDA kernels: warp and block sums and maxima.
// Deterministic: a fixed tree, no atomics, so the same input gives the same bits.
// Every thread of the block must call the block_* functions (they contain barriers).
#pragma once
#include "kernels/cuda/compat.h"

namespace kernels {

template <class T> __device__ __forceinline__ T warp_sum(T v) {
  for (int d = 16; d > 0; d >>= 1) v += __shfl_xor_sync(0xffffffffu, v, d);
  return v;
}
template <class T> __device__ __forceinline__ T warp_max(T v) {
  for (int d = 16; d > 0; d >>= 1) {
    T o = __shfl_xor_sync(0xffffffffu, v, d);
    v = o > v ? o : v;
  }
  return v;
}

// Sum over the block; the result is returned to every thread. `scratch` holds 32 values.
template <class T> __device__ T block_sum(T v, T* scratch) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int nwarps = (blockDim.x + 31) / 32;
  v = warp_sum(v);
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  T r = lane < nwarps ? scratch[lane] : T(0);
  r = warp_sum(r);
  return r;
}
template <class T> __device__ T block_max(T v, T* scratch, T lowest) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int nwarps = (blockDim.x + 31) / 32;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  T r = lane < nwarps ? scratch[lane] : lowest;
  return warp_max(r);
}

}  // namespace kernels
