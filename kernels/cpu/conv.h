// CPU 2-D convolution: im2col + OpenBLAS GEMM (f32 and f64). Groups = 1.
//
// Layout conventions
// ------------------
//   activations  x [N, H, W, Cin]        NHWC: one pixel's channels are one contiguous row
//   weights      w [Cout, kh, kw, Cin]   cuDNN's NHWC filter layout; it is PyTorch's
//                                        [Cout, Cin, kh, kw] permuted (0, 2, 3, 1), so one
//                                        output channel's filter is one contiguous row of
//                                        kh*kw*Cin values in (ky, kx, c) order, c fastest
//   bias         [Cout] (optional)
//   output       y [N, Ho, Wo, Cout]     Ho = (H + 2*pad_h - dil_h*(kh-1) - 1) / stride_h + 1
// The op is a cross-correlation (no kernel flip), as in PyTorch and cuDNN:
//   y[n,oy,ox,k] = b[k] + sum_{ky,kx,c} w[k,ky,kx,c] * x[n, oy*sh - ph + ky*dh, ox*sw - pw + kx*dw, c]
// with x = 0 outside the image (zero padding).
//
// im2col writes one row per output pixel, holding the kh*kw*Cin input values that pixel's
// filters read, in the weights' own (ky, kx, c) order. Then, with P = N*Ho*Wo output pixels
// and T = kh*kw*Cin taps:
//   forward      Y[P,Cout]  = cols[P,T] * W[Cout,T]^T        (+ bias)
//   filter grad  dW[Cout,T] = dY[P,Cout]^T * cols[P,T]
//   data grad    dX         = col2im(dY[P,Cout] * W[Cout,T])  (sums the overlapping taps)
// A 1x1 stride-1 unpadded conv has cols == x, so it is one GEMM with no copy.
//
// The output pixels are processed in chunks whose im2col buffer stays under `cols_budget`
// bytes (256 MiB by default), so a large image never needs a T-times-larger copy of itself.
// That buffer is kept per thread between calls (at most the budget), so the page faults of
// a fresh allocation are paid once, not on every call.
// All outputs are written, not accumulated (dx and dw are overwritten).
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/conv_math.h"

namespace kernels::cpu {

inline constexpr size_t kConvColsBudget = size_t(256) << 20;

// cols[r, :] = the taps of output pixel p0 + r (global index over N*Ho*Wo), r < rows.
template <class T> void im2col(const T* x, T* cols, const ConvGeom& g, int64_t p0, int64_t rows);
// dx += the adjoint of im2col for the same rows (each input pixel sums the taps that read it).
template <class T> void col2im_add(const T* cols, T* dx, const ConvGeom& g, int64_t p0, int64_t rows);

// y = conv(x, w) + bias (bias may be null); relu: y = relu(y), applied to each chunk of output
// rows right after its GEMM (while they are in cache), with the relu op's function (NaN stays
// NaN), so the result is relu(conv2d(...)) bit for bit. Without relu the arithmetic is the
// same as before the epilogue existed.
template <class T>
void conv2d_forward(const T* x, const T* w, const T* bias, T* y, const ConvGeom& g, bool relu = false,
                    size_t cols_budget = kConvColsBudget);
// dx = d(loss)/dx and dw = d(loss)/dw from dy; either may be null (not wanted). The bias
// gradient is a column sum of dy (kernels/cpu/reduce.h sum_mid).
template <class T>
void conv2d_backward(const T* x, const T* w, const T* dy, T* dx, T* dw, const ConvGeom& g,
                     size_t cols_budget = kConvColsBudget);

// y[p, :] = relu(y[p, :]) for rows p0 <= p < p0 + rows of a [*, K] array: the relu op's
// function (NaN stays NaN), the epilogue of every CPU conv path.
template <class T> void relu_rows(T* y, int64_t K, int64_t p0, int64_t rows);

// The launch counter's view of a conv (kernels/launch_counter.h): what the GPU would launch
// for it, counted by every CPU conv path alike.
void count_forward_launches(bool bias, bool relu);
void count_backward_launches(bool dx, bool dw);

}  // namespace kernels::cpu
