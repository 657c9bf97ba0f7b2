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
  void memcpy_d2d(void* dst, const void* src, size_t bytes);  // stream-ordered (returns at once on a GPU)
  // Stream-ordered upload from page-locked memory (returns at once on a GPU): `src` must not be
  // reused until an event recorded after it is done.
  void memcpy_h2d_async(void* dst, const void* src, size_t bytes);
  void* event_record();         // an event recorded on the stream now (nullptr in emulation)
  bool event_done(void* event); // the work before it has finished
  void event_destroy(void* event);
  void memset_device(void* dst, int value, size_t bytes);  // stream-ordered
  void synchronize();
  void* host_malloc_pinned(size_t bytes);  // page-locked, usable by every device (portable)
  void host_free_pinned(void* p);
)
