// CUDA batch normalization kernels (f32 and bf16), declared for the GPU (kernels::cuda) and the
// emulator (kernels::emu). Same semantics as kernels/cpu/norm.h, except that the two
// reductions (bn_batch_stats, bn_backward) take a device workspace of
// bn_workspace_floats(M, C) floats for their per-block partials. Deterministic: partials
// over fixed row ranges, combined in a fixed order (no atomics).
//
// The _bf16 functions take bf16 activations (x, y, dy, dx, relu_y) and everything else in f32
// (weight, bias, running stats, mean/invstd/scale, dweight/dbias, the workspace): they compute
// what the _f32 function computes on the widened activations, in f32, and round each bf16
// output once. bn_workspace_floats and bn_running_stats_f32 (no activations) serve both.
#pragma once
#include "kernels/bf16_math.h"
#include "kernels/device_api.h"

C3_KERNELS_DECLARE(
  int64_t bn_workspace_floats(int64_t M, int64_t C);
  void bn_batch_stats_f32(const float* x, int64_t M, int64_t C, const float* weight, float eps, float momentum,
                          float* running_mean, float* running_var, float* mean, float* invstd, float* scale,
                          float* workspace);
  void bn_running_stats_f32(const float* running_mean, const float* running_var, const float* weight, int64_t C,
                            float eps, float* mean, float* invstd, float* scale);
  // relu: a fused ReLU on the output; relu_y: the output of a fused forward, masking x (apply)
  // or dy (backward) where it is not > 0. Both as in kernels/cpu/norm.h.
  void bn_apply_f32(const float* x, int64_t M, int64_t C, const float* mean, const float* scale, const float* bias,
                    float* y, bool relu = false, const float* relu_y = nullptr);
  void bn_backward_f32(const float* dy, const float* x, int64_t M, int64_t C, const float* mean,
                       const float* invstd, const float* scale, bool batch_stats, float* dx, float* dweight,
                       float* dbias, float* workspace, const float* relu_y = nullptr);
  // Frozen BatchNorm folded into the convolution before it, as kernels/cpu/norm.h bn_fold: one
  // launch, f32 (the master weights; a bf16 conv lowers the folded ones itself).
  void bn_fold_f32(const float* w, int64_t K, int64_t taps, const float* conv_bias, const float* weight,
                   const float* bias, const float* running_mean, const float* running_var, float eps, float* w_out,
                   float* b_out, float* scale);
  void bn_batch_stats_bf16(const bf16* x, int64_t M, int64_t C, const float* weight, float eps, float momentum,
                           float* running_mean, float* running_var, float* mean, float* invstd, float* scale,
                           float* workspace);
  void bn_apply_bf16(const bf16* x, int64_t M, int64_t C, const float* mean, const float* scale, const float* bias,
                     bf16* y, bool relu = false, const bf16* relu_y = nullptr);
  void bn_backward_bf16(const bf16* dy, const bf16* x, int64_t M, int64_t C, const float* mean,
                        const float* invstd, const float* scale, bool batch_stats, bf16* dx, float* dweight,
                        float* dbias, float* workspace, const bf16* relu_y = nullptr);
)
