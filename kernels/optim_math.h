// Per-element optimizer updates, shared by the CPU loops and the CUDA kernels.
// PyTorch semantics: weight decay is L2 (added to the gradient) for both Adam and SGD.
#pragma once
#include "kernels/elementwise_math.h"

namespace kernels {

struct AdamParams {
  float lr, beta1, beta2, eps, weight_decay;
  float bias_correction1, bias_correction2;  // 1 - beta^t for the current step t >= 1
};

template <class T> C3_HD void adam_update(T& p, T g, T& m, T& v, const AdamParams& a) {
  g += T(a.weight_decay) * p;
  m = T(a.beta1) * m + (T(1) - T(a.beta1)) * g;
  v = T(a.beta2) * v + (T(1) - T(a.beta2)) * g * g;
  const T mhat = m / T(a.bias_correction1), vhat = v / T(a.bias_correction2);
  p -= T(a.lr) * mhat / (c3_sqrt(vhat) + T(a.eps));
}

struct SgdParams {
  float lr, momentum, dampening, weight_decay;
  bool nesterov, first_step;  // on the first step the momentum buffer starts at the gradient
};

template <class T> C3_HD void sgd_update(T& p, T g, T& buf, const SgdParams& s) {
  g += T(s.weight_decay) * p;
  if (s.momentum != 0.f) {
    buf = s.first_step ? g : T(s.momentum) * buf + (T(1) - T(s.dampening)) * g;
    g = s.nesterov ? g + T(s.momentum) * buf : buf;
  }
  p -= T(s.lr) * g;
}

// Teacher <- decay * teacher + (1 - decay) * student
template <class T> C3_HD void ema_update(T& t, T s, float decay) { t = T(decay) * t + (T(1) - T(decay)) * s; }

}  // namespace kernels
