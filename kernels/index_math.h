// Per-row arithmetic of l2_normalize, shared by the CPU loops and the CUDA kernels.
// A row x of C values: y = x / d with d = max(||x||, eps) (PyTorch's F.normalize).
// Backward, from the row sums s = sum x^2 and p = sum g x:
//   ||x|| >= eps:  gx = g / n - x p / n^3   (n = ||x||; the projection onto the sphere's tangent)
//   ||x|| <  eps:  gx = g / eps             (the clamped denominator is a constant)
// so gx = g * inv_denom - x * grad_coef.
#pragma once
#include "kernels/elementwise_math.h"

namespace kernels {

template <class A> C3_HD A l2n_inv_denom(A sumsq, A eps) {
  const A n = c3_sqrt(sumsq);
  return A(1) / (n > eps ? n : eps);
}

// As in PyTorch's clamp_min backward, the gradient flows through the norm when ||x|| >= eps.
template <class A> C3_HD A l2n_grad_coef(A sumsq, A gdotx, A eps) {
  const A n = c3_sqrt(sumsq);
  return n >= eps ? gdotx / (n * n * n) : A(0);
}

}  // namespace kernels
