// 2-D convolution on the GPU through cuDNN 9's legacy API (f32, NHWC), same layouts and
// semantics as kernels/cpu/conv.h: x [N,H,W,C], w [K,kh,kw,C], y [N,Ho,Wo,K]. Groups = 1.
//
// Every function writes its output (beta = 0), never accumulates. The bias is not handled
// here (the op adds it with the per-channel elementwise kernel and sums dy for its gradient).
//
// The algorithm of each (shapes, stride, pad, dilation, direction, math mode, workspace cap)
// is chosen once with cudnnGet*Algorithm_v7 (cuDNN's heuristics, no trial runs) and cached.
// Backward algorithms may use atomics, so gradients can differ in the last bits from run to
// run (cuDNN's own nondeterminism; the CPU backend is deterministic).
//
// Under the emulator (g++ build) cuDNN cannot run: these functions throw
// "cuDNN is not emulated".
#pragma once
#include <cstddef>
#include <functional>

#include "kernels/conv_math.h"
#include "kernels/device_api.h"

namespace kernels {
struct CudnnConvOptions {
  // true: cuDNN may use TF32 tensor cores (CUDNN_DEFAULT_MATH, Ampere and later);
  // false: full FP32 (CUDNN_FMA_MATH).
  bool allow_tf32 = true;
  size_t workspace_limit = size_t(1) << 30;  // the largest scratch an algorithm may need
};
// Device scratch from the caller (core/ hands out caching-allocator memory): returns `bytes`
// of device memory, valid until the convolution call that asked for it returns.
using ConvWorkspaceFn = std::function<void*(size_t bytes)>;
}  // namespace kernels

C3_KERNELS_DECLARE(
  void conv2d_forward_f32(const float* x, const float* w, float* y, const ConvGeom& g,
                          const CudnnConvOptions& opt, const ConvWorkspaceFn& workspace);
  void conv2d_backward_data_f32(const float* dy, const float* w, float* dx, const ConvGeom& g,
                                const CudnnConvOptions& opt, const ConvWorkspaceFn& workspace);
  void conv2d_backward_filter_f32(const float* x, const float* dy, float* dw, const ConvGeom& g,
                                  const CudnnConvOptions& opt, const ConvWorkspaceFn& workspace);
  size_t conv_algo_cache_size();  // number of cached algorithm choices (for tests)
  void conv_algo_cache_clear();
)
