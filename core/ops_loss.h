// Softmax over the channel dim and the segmentation losses built on it, differentiable.
//
// All work on the LAST dim of the logits (the channel dim of NHWC activations):
// logits [N,H,W,C] (any rank >= 1 works: [..., C] with per-pixel tensors [...]).
// f32 on the CPU and CUDA; f64 on the CPU (gradient checks).
//
// The two losses are fused: one pass computes the per-pixel losses AND d(loss)/d(logits),
// which is kept for backward (memory: one tensor the size of the logits, only when the
// logits require grad) and scaled there by the upstream gradient. Their sums are
// deterministic (fixed-order partial sums, no float atomics), on the CPU and on CUDA.
#pragma once
#include "core/tensor.h"

namespace c3 {

// Numerically stable (shifted by the row maximum). Backward uses the saved output.
Tensor softmax(const Tensor& x);
Tensor log_softmax(const Tensor& x);

// Hard-label cross-entropy -> scalar:
//   loss = sum over valid pixels i of w[y_i] * CE_i  /  (number of valid pixels)
// with CE_i = -log softmax(logits_i)[y_i] and w = `weight` [C] (all ones when undefined).
// NOTE: the divisor is the COUNT of valid pixels, not the sum of their weights (PyTorch's
// weighted 'mean' divides by the weight sum). Labels [N,H,W] are u8 or i32; a pixel whose
// label is ignore_index counts nowhere. No valid pixel gives 0 (not NaN) and a zero
// gradient. A label that is neither in [0, C) nor ignore_index throws c3::Error naming the
// value and its first position (on CUDA this costs one device synchronization per call).
// Labels and weight get no gradient.
Tensor cross_entropy(const Tensor& logits, const Tensor& labels, const Tensor& weight = {}, int ignore_index = 255);

// Soft-target cross-entropy -> scalar:
//   loss = sum_i M_i * sum_c (-p_ic * log softmax(logits_i)_c)  /  sum_i M_i
// target p [N,H,W,C] (probabilities, same dtype as the logits) and mask M [N,H,W] (u8, or the
// logits' float dtype; undefined = all ones) are constants: they get no gradient. A mask
// that sums to 0 gives 0 (not NaN). Pixels with M_i == 0 are skipped entirely.
Tensor soft_cross_entropy(const Tensor& logits, const Tensor& target, const Tensor& mask = {});

}  // namespace c3
