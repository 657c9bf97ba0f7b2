// Error checks for the CUDA runtime, each with file and line. Under the emulator the same
// macros compile (launch() throws emu::Error on a rule violation instead of returning).
//
// Set C3_CUDA_SYNC=1 in the environment to synchronize after every checked launch, so an
// asynchronous fault is reported at the launch that caused it.
#pragma once
#include <stdexcept>
#include <string>

#include "compat.h"

namespace kernels {
[[noreturn]] void cuda_fail(const char* what, const char* expr, const char* file, int line);
bool cuda_sync_debug();
}  // namespace kernels

#define CUDA_CHECK(expr)                                                            \
  do {                                                                              \
    cudaError_t c3_err_ = (expr);                                                   \
    if (c3_err_ != cudaSuccess)                                                     \
      ::kernels::cuda_fail(cudaGetErrorString(c3_err_), #expr, __FILE__, __LINE__); \
  } while (0)

// Checks a launch() result, and in debug mode waits for the kernel to finish.
#ifdef __CUDACC__
#define LAUNCH_CHECK(expr)                                               \
  do {                                                                   \
    CUDA_CHECK(expr);                                                    \
    if (::kernels::cuda_sync_debug()) CUDA_CHECK(cudaDeviceSynchronize()); \
  } while (0)
#else
#define LAUNCH_CHECK(expr) CUDA_CHECK(expr)
#endif
