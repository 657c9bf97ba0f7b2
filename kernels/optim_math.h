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

// One optimizer launch over a parameter arena: the spans of consecutive parameters that have
// a gradient, as offsets into the arena's buffers (parameters, gradients and each state
// slot share the layout), each with its group (learning rate, weight decay) and, for SGD,
// whether its momentum buffer starts this step. Passed by value as a kernel argument.
constexpr int kMaxArenaSpans = 64, kMaxArenaGroups = 8;
struct ArenaSpan {
  int64_t begin, count;
  int32_t group, first_step;
};
struct ArenaSpans {
  int32_t n;
  int64_t total;  // sum of the counts
  ArenaSpan span[kMaxArenaSpans];
  float lr[kMaxArenaGroups], weight_decay[kMaxArenaGroups];
};
// The settings of span sp's update: its group's learning rate and weight decay; for SGD also
// whether its momentum buffer starts now.
C3_HD AdamParams span_params(const ArenaSpans& s, const ArenaSpan& sp, AdamParams a) {
  a.lr = s.lr[sp.group];
  a.weight_decay = s.weight_decay[sp.group];
  return a;
}
C3_HD SgdParams span_params(const ArenaSpans& s, const ArenaSpan& sp, SgdParams p) {
  p.lr = s.lr[sp.group];
  p.weight_decay = s.weight_decay[sp.group];
  p.first_step = sp.first_step != 0;
  return p;
}

// Up to kMaxEmaSpans (teacher, student) pairs of the same length for one EMA launch (the
// parameter arena and the buffer arena of a model, or a list of tensors in chunks).
constexpr int kMaxEmaSpans = 8;
template <class T> struct EmaSpans {
  int32_t n;
  int64_t total;
  T* teacher[kMaxEmaSpans];
  const T* student[kMaxEmaSpans];
  int64_t count[kMaxEmaSpans];
};

}  // namespace kernels
