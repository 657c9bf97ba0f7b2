// CPU batch normalization kernels (f32 and f64) over x viewed as [M, C]: M = N*H*W rows,
// C channels last (NHWC). Formulas and conventions: kernels/norm_math.h.
// Every output is written (never accumulated). Per-channel sums are taken in double over
// fixed row chunks combined in chunk order, so results do not depend on the thread count.
#pragma once
#include <cstdint>

namespace kernels::cpu {

// Train mode: batch mean and invstd = 1/sqrt(biased var + eps) per channel, scale = weight *
// invstd. running_mean/running_var, when not null, are updated in place with PyTorch's rule
// (unbiased variance; needs M >= 2).
template <class T>
void bn_batch_stats(const T* x, int64_t M, int64_t C, const T* weight, T eps, T momentum, T* running_mean,
                    T* running_var, T* mean, T* invstd, T* scale);

// Eval and frozen modes: mean = running_mean (a copy), invstd from running_var, scale as above.
template <class T>
void bn_running_stats(const T* running_mean, const T* running_var, const T* weight, int64_t C, T eps, T* mean,
                      T* invstd, T* scale);

// y = (x - mean) * scale + bias per channel, then max(y, 0) when relu (a fused ReLU; NaN stays
// NaN). mean and bias may be null (read as zero), so bn_apply(dy, M, C, nullptr, scale, nullptr,
// dx) is the backward of a fixed affine map. relu_y, when not null, is the output of a fused
// forward: x counts as zero where relu_y is not > 0, so bn_apply(dy, M, C, nullptr, scale,
// nullptr, dx, false, y) is the backward of a fixed affine map followed by ReLU.
template <class T>
void bn_apply(const T* x, int64_t M, int64_t C, const T* mean, const T* scale, const T* bias, T* y, bool relu = false,
              const T* relu_y = nullptr);

// Backward of y = (x - mean) * scale + bias with scale = weight * invstd. batch_stats: mean and
// invstd came from this batch (train), so dx includes the path through them. Writes dx,
// dweight = sum dy * xhat, dbias = sum dy; each may be null when that gradient is not wanted.
// relu_y: the output of a forward with fused ReLU (null: none); dy counts as zero where relu_y is
// not > 0, in the sums and in dx alike.
template <class T>
void bn_backward(const T* dy, const T* x, int64_t M, int64_t C, const T* mean, const T* invstd, const T* scale,
                 bool batch_stats, T* dx, T* dweight, T* dbias, const T* relu_y = nullptr);

// Frozen BatchNorm folded into the convolution before it (kernels/norm_math.h): w [K, taps]
// (a conv weight [K, kh, kw, Cin], K output channels) -> w_out = w * scale per row, b_out =
// (conv_bias - mean) * scale + bias, scale = weight / sqrt(running_var + eps) (also written: the
// backward multiplies by it). conv_bias may be null (none).
template <class T>
void bn_fold(const T* w, int64_t K, int64_t taps, const T* conv_bias, const T* weight, const T* bias,
             const T* running_mean, const T* running_var, T eps, T* w_out, T* b_out, T* scale);

}  // namespace kernels::cpu
