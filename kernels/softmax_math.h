// Per-row arithmetic of softmax, log-softmax and the two cross-entropy losses, shared by
// the CPU loops and the CUDA kernels. A row is one pixel's C logits (NHWC, last dim).
//
// Numerical stability: every row is shifted by its maximum m, so exp never overflows;
// s = sum_c exp(z_c - m) lies in [1, C]; log-softmax is z - m - log(s), never log(0).
#pragma once
#include <cstdint>

#include "kernels/elementwise_math.h"

namespace kernels {

template <class T> C3_HD T softmax_prob(T z, T m, T inv_s) { return c3_exp(z - m) * inv_s; }
template <class T> C3_HD T log_softmax_of(T z, T m, T log_s) { return z - m - log_s; }

// Backward of softmax from its output y: dx_c = y_c * (g_c - sum_k g_k y_k); dot = that sum.
template <class T> C3_HD T softmax_grad(T y, T g, T dot) { return y * (g - dot); }
// Backward of log-softmax from its output y: dx_c = g_c - exp(y_c) * sum_k g_k.
template <class T> C3_HD T log_softmax_grad(T y, T g, T gsum) { return g - c3_exp(y) * gsum; }

// What a label means for cross-entropy: ignore_index wins over the class range (as in
// PyTorch), anything else outside [0, C) is an error reported by the op.
enum class LabelKind : int { valid, ignored, invalid };
C3_HD LabelKind label_kind(int64_t y, int64_t C, int64_t ignore_index) {
  if (y == ignore_index) return LabelKind::ignored;
  return (y >= 0 && y < C) ? LabelKind::valid : LabelKind::invalid;
}

// Hard-label CE of one pixel with weight w: w * (log sum_c exp z_c - z_y), with m and s
// as above. Its gradient over class c: w * (p_c - [c == y]).
template <class T> C3_HD T ce_pixel_loss(T z_label, T m, T s, T w) { return w * (m + c3_log(s) - z_label); }
template <class T> C3_HD T ce_grad(T p, bool is_label, T w) { return w * (p - (is_label ? T(1) : T(0))); }

// Soft-target CE of one pixel: -sum_c t_c log softmax(z)_c. Its gradient over class c is
// (sum_k t_k) p_c - t_c (= p_c - t_c when t sums to one); tsum = sum_k t_k.
template <class T> C3_HD T soft_ce_term(T t, T z, T m, T log_s) { return -t * log_softmax_of(z, m, log_s); }
template <class T> C3_HD T soft_ce_grad(T p, T t, T tsum) { return tsum * p - t; }

// The mean of a masked or weighted sum: the loss and the factor d(loss)/d(per-pixel term),
// both 0 when nothing counts (an all-ignored batch gives loss 0, not NaN).
template <class T> C3_HD T safe_mean(double sum, double count) { return count > 0 ? T(sum / count) : T(0); }
template <class T> C3_HD T safe_inverse(double count) { return count > 0 ? T(1.0 / count) : T(0); }

}  // namespace kernels
