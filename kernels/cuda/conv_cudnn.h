// 2-D convolution on the GPU through cuDNN 9's legacy API (f32 and bf16, NHWC), same layouts
// and semantics as kernels/cpu/conv.h: x [N,H,W,C], w [K,kh,kw,C], y [N,Ho,Wo,K]. Groups = 1.
//
// Every function writes its output (beta = 0), never accumulates. The bias is not handled
// here, for either type (the op adds it with the per-channel elementwise kernel and sums dy
// for its gradient; for bf16 that too is the ops layer's work), except by the fused f32
// forward conv2d_forward_bias_relu_f32.
//
// conv2d_forward_bias_relu_f32: y = relu(conv(x, w) + bias) in one call of
// cudnnConvolutionBiasActivationForward (y = act(alpha1 * conv(x) + alpha2 * z + bias), here
// alpha1 = 1, alpha2 = 0 with z = y, as PyTorch's cudnn_convolution_relu; bias a 1xKx1x1
// tensor; CUDNN_ACTIVATION_RELU with NaN propagated, as our relu). cuDNN documents the fused
// call for CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, so that algorithm runs it, with
// TF32 as opt.allow_tf32 says, whatever the forward ranking would pick. Returns false when
// cuDNN does not run it for the problem (no workspace size, a workspace over the limit, or a
// failing call): y then holds nothing of use and the caller runs conv2d_forward_f32 and a
// bias + ReLU epilogue. A problem refused once is not tried again (cached like the algorithms).
//
// bf16 (the *_bf16 functions): x, w, y, dy, dx and dw are all bf16 (CUDNN_DATA_BFLOAT16), the
// convolution's compute type is FP32: cuDNN's PSEUDO_BFLOAT16_CONFIG. Products of bf16 values
// are exact in FP32 and the sums are FP32; the results are rounded to bf16 on store. So:
//   - dw is bf16 too: cuDNN's backward filter takes x, dy and dw of one data type (no bf16-in,
//     f32-dw configuration). An op that keeps FP32 master weights widens dw itself.
//   - A GPU of compute capability 8.0 or later (Ampere): on an older one the call throws,
//     naming the device.
//   - Tensor-core math always (CUDNN_TENSOR_OP_MATH, never ALLOW_CONVERSION, which may round to
//     FP16); opt.allow_tf32 concerns f32 only and is ignored for bf16.
//   - cuDNN's tensor-core kernels want C and K multiples of 8 (and 16-byte aligned NHWC
//     pointers); other channel counts run on other kernels, and where cuDNN offers none the
//     error says to pad the channels. Dilation is supported (the implicit-GEMM algorithms; the
//     FFT and Winograd ones need dilation 1 and cuDNN leaves them out of its ranking).
//
// The algorithms of each (shapes, stride, pad, dilation, direction, element type, math mode,
// workspace cap) are ranked once, by cuDNN's heuristics (cudnnGet*Algorithm_v7, no trial runs)
// or, with `benchmark`, by timing each on the call's buffers (cudnnFind*AlgorithmEx, as
// PyTorch's cudnn.benchmark), and cached. When the chosen one fails at run time the next in rank runs
// and becomes the choice (kernels/conv_algo.h); the error names each one tried when none runs.
// Backward algorithms may use atomics, so gradients can differ in the last bits from run to
// run (cuDNN's own nondeterminism; the CPU backend is deterministic) unless `deterministic`.
//
// Under the emulator (g++ build) cuDNN cannot run: these functions throw
// "cuDNN is not emulated".
#pragma once
#include <cstddef>
#include <functional>

#include "kernels/bf16_math.h"
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
  bool conv2d_forward_bias_relu_f32(const float* x, const float* w, const float* bias, float* y,
                                    const ConvGeom& g, const CudnnConvOptions& opt,
                                    const ConvWorkspaceFn& workspace);
  void conv2d_backward_data_f32(const float* dy, const float* w, float* dx, const ConvGeom& g,
                                const CudnnConvOptions& opt, const ConvWorkspaceFn& workspace);
  void conv2d_backward_filter_f32(const float* x, const float* dy, float* dw, const ConvGeom& g,
                                  const CudnnConvOptions& opt, const ConvWorkspaceFn& workspace);
  // bf16 data, FP32 compute (see above); the same cache, keyed by the element type as well.
  void conv2d_forward_bf16(const kernels::bf16* x, const kernels::bf16* w, kernels::bf16* y, const ConvGeom& g,
                           const CudnnConvOptions& opt, const ConvWorkspaceFn& workspace);
  void conv2d_backward_data_bf16(const kernels::bf16* dy, const kernels::bf16* w, kernels::bf16* dx,
                                 const ConvGeom& g, const CudnnConvOptions& opt, const ConvWorkspaceFn& workspace);
  void conv2d_backward_filter_bf16(const kernels::bf16* x, const kernels::bf16* dy, kernels::bf16* dw,
                                   const ConvGeom& g, const CudnnConvOptions& opt,
                                   const ConvWorkspaceFn& workspace);
  size_t conv_algo_cache_size();  // number of cached algorithm choices (for tests)
  void conv_algo_cache_clear();
)
