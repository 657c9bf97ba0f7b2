// 2-D convolution on the GPU through cuDNN 9's legacy API (f32, NHWC), same layouts and
// semantics as kernels/cpu/conv.h: x [N,H,W,C], w [K,kh,kw,C], y [N,Ho,Wo,K]. Groups = 1.
//
// Every function writes its output (beta = 0), never accumulates. The bias is not handled
// here (the op adds it with the per-channel elementwise kernel and sums dy for its gradient).
//
// The algorithms of each (shapes, stride, pad, dilation, direction, math mode, workspace cap)
// are ranked once, by cuDNN's heuristics (cudnnGet*Algorithm_v7, no trial runs) or, with
// `benchmark`, by timing each on the call's buffers (cudnnFind*AlgorithmEx, as PyTorch's
// cudnn.benchmark), and cached. When the chosen one fails at run time the next in rank runs
// and becomes the choice (kernels/conv_algo.h); the error names each one tried when none runs.
// Backward algorithms may use atomics, so gradients can differ in the last bits from run to
// run (cuDNN's own nondeterminism; the CPU backend is deterministic) unless `deterministic`.
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
  // true: rank the algorithms of a new problem by timing them (its first call is slower;
  // the fastest is not always the heuristics' first choice); false: cuDNN's heuristics.
  bool benchmark = false;
  // true: only algorithms whose result is the same on every run (no atomics in their sums;
  // PyTorch's cudnn.deterministic); false: any, the fastest may differ in the last bits.
  bool deterministic = false;
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
