// Per-channel arithmetic of batch normalization, shared by the CPU loops and the CUDA kernels.
//
// Conventions (x viewed as [M, C], M = N*H*W rows, channels last):
//   forward   y = (x - mean) * scale + bias,  scale = weight * invstd,  invstd = 1/sqrt(var + eps)
//   backward  dx = A*dy + B*(x - mean) + D  per channel (bn_dx_coeffs), where the B and D terms
//             are the gradient through the batch statistics (train mode only).
//   fused ReLU  y = relu((x - mean) * scale + bias); its backward reads dy through the mask of the
//             saved output (bn_relu_dy) in every pass, so the formulas above stay as they are.
// The centred forms (x - mean) avoid the cancellation of x*scale + (bias - mean*scale) when
// |mean| is large next to the standard deviation.
#pragma once
#include <cstdint>
#include <cstring>

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

// The ReLU fused into the apply pass and its backward, the same functions as the relu op's
// (Unary::relu, unary_grad), so BN + ReLU fused and BN then relu give the same bits:
// relu(NaN) = NaN (as PyTorch's), relu(-0) = +0. The backward reads the fused output y (y > 0
// exactly where the input is > 0): the gradient passes where y > 0 and is +0 elsewhere, a NaN y
// included (as the relu op's). Both are written so that compilers emit no branch (a branch per
// element is mispredicted on mixed signs: 3-5x slower on the CPU): !(v <= 0) becomes a select;
// the gradient is g's bits and-ed with a mask of all ones or zeros (a select there is turned
// back into a branch when the result feeds a conversion to double).
template <class T> C3_HD T bn_relu(T v) { return !(v <= T(0)) ? v : T(0); }
template <class T, class Bits> C3_HD T bn_relu_grad_bits(T y, T g) {
  Bits b;
  memcpy(&b, &g, sizeof b);
  b &= Bits(0) - Bits(y > T(0));
  memcpy(&g, &b, sizeof b);
  return g;
}
C3_HD float bn_relu_grad(float y, float g) { return bn_relu_grad_bits<float, uint32_t>(y, g); }
C3_HD double bn_relu_grad(double y, double g) { return bn_relu_grad_bits<double, uint64_t>(y, g); }

// Element i of the incoming gradient: dy[i], masked by the fused forward's output relu_y when
// there is one (null: no fused ReLU).
template <class T> C3_HD T bn_relu_dy(const T* dy, const T* relu_y, int64_t i) {
  return relu_y ? bn_relu_grad(relu_y[i], dy[i]) : dy[i];
}

// One element of the apply pass: (x - mean) * scale + bias, then the ReLU when asked.
template <class T> C3_HD T bn_apply_one(T x, T mean, T scale, T bias, bool relu) {
  const T v = (x - mean) * scale + bias;
  return relu ? bn_relu(v) : v;
}

template <class T> C3_HD T bn_invstd(T var, T eps) { return T(1) / c3_sqrt(var + eps); }

// Frozen BatchNorm folded into the convolution before it (bn_fold): conv(x, w) + cb, then
// (. - mean) * s + bias with s = weight * invstd, is conv(x, w * s) + (cb - mean) * s + bias per
// output channel. The scale has bn_running_stats' bits (invstd rounded, then the product); the
// folded bias is bn_apply_one of the conv's bias (0 without one), the centred form.
template <class T> C3_HD T bn_fold_scale(T weight, T var, T eps) { return weight * bn_invstd(var, eps); }
template <class T> C3_HD T bn_fold_bias(T conv_bias, T mean, T scale, T bias) {
  return (conv_bias - mean) * scale + bias;
}

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
