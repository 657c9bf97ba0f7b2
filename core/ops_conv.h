// 2-D convolution, differentiable in the input, the weights and the bias. Groups = 1.
//   x    [N, H, W, Cin]       NHWC activations
//   w    [Cout, kh, kw, Cin]  cuDNN's NHWC filter layout (PyTorch's [Cout, Cin, kh, kw] permuted)
//   bias [Cout], or an undefined Tensor for none
//   ->   [N, Ho, Wo, Cout],   Ho = (H + 2*pad_h - dil_h*(kh-1) - 1) / stride_h + 1 (same for W)
// relu: y = relu(conv(x, w) + bias) in one pass over the output (a fused epilogue): the values
// and gradients of relu(conv2d(...)), the backward masking dy by the saved output (y > 0), as
// batch_norm's fused ReLU. CPU: the ReLU runs on each chunk of output rows right after its GEMM,
// bit for bit relu(conv2d(...)). CUDA f32 with a bias: cuDNN's fused conv + bias + ReLU
// (cudnnConvolutionBiasActivationForward) where cuDNN runs it, else the convolution and one
// add_relu kernel; bf16 (and no bias): the convolution, then one bias + ReLU (or ReLU) kernel.
// CPU: im2col + OpenBLAS (f32, f64), see kernels/cpu/conv.h. CUDA: cuDNN (f32, bf16), see
// kernels/cuda/conv_cudnn.h. The backward is not itself differentiable (no double backward).
#pragma once
#include <cstddef>

#include "core/tensor.h"

namespace c3 {

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, int stride_h, int stride_w, int pad_h, int pad_w,
              int dil_h, int dil_w, bool relu = false);
// Square stride, padding and dilation.
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias = Tensor(), int stride = 1, int pad = 0,
              int dilation = 1, bool relu = false);

// Process-wide switches for the cuDNN convolutions (thread-safe). TF32 is allowed by default
// (tensor cores, inputs rounded to 10 mantissa bits, about 1e-3 relative error, PyTorch's
// default for convolutions); false forces full FP32 arithmetic.
void set_conv_allow_tf32(bool on);
bool conv_allow_tf32();
// The largest cuDNN workspace an algorithm may ask for (default 1 GiB).
void set_conv_workspace_limit(size_t bytes);
size_t conv_workspace_limit();
// Rank a new problem's algorithms by timing them instead of by cuDNN's heuristics (default
// off; the config key train.cudnn_benchmark, like PyTorch's torch.backends.cudnn.benchmark).
void set_conv_benchmark(bool on);
bool conv_benchmark();
// CPU f32 convolutions through oneDNN's kernels (default on; kernels/cpu/conv_dnnl.h), or
// through the im2col + GEMM reference (kernels/cpu/conv.h) when off. f64 always takes im2col.
void set_cpu_conv_onednn(bool on);
bool cpu_conv_onednn();
// Only cuDNN algorithms whose result is the same on every run (default off: the backward
// ones may sum with atomics; the config key train.cudnn_deterministic).
void set_conv_deterministic(bool on);
bool conv_deterministic();

}  // namespace c3
