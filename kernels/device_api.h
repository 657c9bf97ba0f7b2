// The CUDA runtime calls the engine needs (memory, copies, sync), as plain functions, so
// core/ never includes a CUDA header. Defined in kernels/cuda/runtime.cu, once per build:
// kernels::cuda (the GPU) and kernels::emu (host memory standing in for the device).
#pragma once
#include <cstddef>
#include <cstdint>

struct CUstream_st;
typedef struct CUstream_st* cudaStream_t;

// Declares the same functions in kernels::cuda and kernels::emu.
#define C3_KERNELS_DECLARE(...)            \
  namespace kernels::cuda { __VA_ARGS__ } \
  namespace kernels::emu { __VA_ARGS__ }

C3_KERNELS_DECLARE(
  int device_count();               // 0 when there is no usable GPU (never throws)
  void* device_malloc(size_t bytes);  // nullptr when out of memory
  void device_free(void* p);
  void memcpy_h2d(void* dst, const void* src, size_t bytes);
  void memcpy_d2h(void* dst, const void* src, size_t bytes);
  void memcpy_d2d(void* dst, const void* src, size_t bytes);
  void memset_device(void* dst, int value, size_t bytes);
  void synchronize();
  void* host_malloc_pinned(size_t bytes);
  void host_free_pinned(void* p);
)
