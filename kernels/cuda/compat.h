// The one include of every hand-written kernel file (kernels/cuda/*.cu).
//
// Under nvcc: the CUDA runtime, and launch() as a template over <<<>>>.
// Under g++:  the emulator (emu/emu.h), which runs the same kernels on the CPU.
// Kernel code then uses CUDA's own names (threadIdx, __shared__, __syncthreads, shuffles,
// atomics) plus two helpers: launch(...) and dynamic_shared<T>().
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/launch_counter.h"

#ifdef __CUDACC__
#include <cuda_runtime.h>

template <class T> __device__ __forceinline__ T* dynamic_shared() {
  extern __shared__ __align__(16) unsigned char c3_dynamic_smem[];
  return reinterpret_cast<T*>(c3_dynamic_smem);
}

template <class... KArgs, class... Args>
cudaError_t launch(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t shmem, cudaStream_t stream,
                   Args&&... args) {
  kernels::count_launch();
  kernel<<<grid, block, shmem, stream>>>(static_cast<KArgs>(args)...);
  return cudaGetLastError();
}
template <class... KArgs>
cudaError_t allow_dynamic_shared(void (*kernel)(KArgs...), size_t bytes) {
  return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
}
#define KERNELS_NS cuda
#else
#include "emu/emu.h"
#define KERNELS_NS emu
#endif

// Kernel entry points live in kernels::cuda under nvcc and kernels::emu under g++, so the
// emulated objects and the GPU objects can be linked into one program without clashing.

// Host-and-device qualifier for the shared *_math.h headers.
#include "kernels/hd.h"
