// Per-channel arithmetic of batch normalization, shared by the CPU loops and the CUDA kernels.
//
// Conventions (x viewed as [M, C], M = N*H*W rows, channels last):
//   forward   y = (x - mean) * scale + bias,  scale = weight * invstd,  invstd = 1/sqrt(var + eps)
//   backward  dx = A*dy + B*(x - mean) + D  per channel (bn_dx_coeffs), where the B and D terms
//             are the gradient through the batch statistics (train mode only).
// The centred forms (x - mean) avoid the cancellation of x*scale + (bias - mean*scale) when
// |mean| is large next to the standard deviation.
#pragma once
#include "kernels/elementwise_math.h"

namespace kernels {

// Count, mean and sum of squared deviations of a set of values (Welford / Chan et al.).
template <class T> struct MeanM2 {
  T n, mean, m2;
};

// Chan, Golub & LeVeque's pairwise update: the statistics of the union of a and b.
template <class T> C3_HD MeanM2<T> mean_m2_combine(MeanM2<T> a, MeanM2<T> b) {
  const T n = a.n + b.n;
  if (n == T(0)) return a;
  const T delta = b.mean - a.mean, fb = b.n / n;
  return {n, a.mean + delta * fb, a.m2 + b.m2 + delta * delta * a.n * fb};
}

// Adds one value (Welford's update).
template <class T> C3_HD void mean_m2_push(MeanM2<T>& s, T x) {
  s.n += T(1);
  const T delta = x - s.mean;
  s.mean += delta / s.n;
  s.m2 += delta * (x - s.mean);
}

template <class T> C3_HD T bn_invstd(T var, T eps) { return T(1) / c3_sqrt(var + eps); }

// PyTorch's rule: running = (1 - m) * running + m * batch, with the UNBIASED batch variance
// (var_biased * M / (M - 1)); the caller guarantees M >= 2.
template <class T>
C3_HD void bn_running_update(T& running_mean, T& running_var, T mean, T var_biased, T rows, T momentum) {
  running_mean = (T(1) - momentum) * running_mean + momentum * mean;
  running_var = (T(1) - momentum) * running_var + momentum * (var_biased * rows / (rows - T(1)));
}

// Coefficients of dx = A*dy + B*(x - mean) + D from the per-channel sums of dy and
// dy*(x - mean). With batch statistics (train), from d/dx of (x - mean(x)) * invstd(x):
//   dx = scale * (dy - sum_dy/M - xhat * sum(dy*xhat)/M),  xhat = (x - mean) * invstd.
// With fixed statistics (eval) the statistics are constants: dx = scale * dy.
template <class T>
C3_HD void bn_dx_coeffs(T scale, T invstd, T sum_dy, T sum_dy_xmu, T rows, bool batch_stats, T& A, T& B, T& D) {
  A = scale;
  if (batch_stats) {
    B = -scale * invstd * invstd * sum_dy_xmu / rows;
    D = -scale * sum_dy / rows;
  } else {
    B = T(0);
    D = T(0);
  }
}

}  // namespace kernels
