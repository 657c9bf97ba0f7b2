// Resizing of NHWC tensors: PyTorch's F.interpolate semantics exactly (the formulas are in
// kernels/resize_math.h). Differentiable for float inputs; the backward passes are
// deterministic gathers on both backends (no atomics), so gradients repeat bit for bit.
#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace c3 {

// mode='bilinear'. x [N,H,W,C], f32 (CPU, CUDA) or f64 (CPU) -> [N,out_h,out_w,C].
// align_corners=true maps the corner pixel centres onto each other (DeepLab's upsampling);
// false maps the corner edges (PyTorch's default).
Tensor resize_bilinear(const Tensor& x, int64_t out_h, int64_t out_w, bool align_corners);

// mode='nearest': src = floor(dst * in/out) as PyTorch computes it (in f32). x [N,H,W,C], or a
// label map [N,H,W] (one channel; the result is [N,out_h,out_w]). dtypes f32, i32, u8 (CPU,
// CUDA) and f64 (CPU); differentiable for float inputs (each input pixel receives the sum of
// the gradients of the outputs that copied it).
Tensor resize_nearest(const Tensor& x, int64_t out_h, int64_t out_w);

}  // namespace c3
