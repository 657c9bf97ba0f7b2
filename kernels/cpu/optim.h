// CPU optimizer steps: one fused pass over a parameter tensor (and its state) each.
#pragma once
#include <cstdint>

#include "kernels/optim_math.h"

namespace kernels::cpu {
template <class T> void adam_step(T* p, const T* g, T* m, T* v, int64_t n, const AdamParams& a);
template <class T> void sgd_step(T* p, const T* g, T* buf, int64_t n, const SgdParams& s);
template <class T> void ema_step(T* teacher, const T* student, int64_t n, float decay);
// Over a parameter arena (kernels/optim_math.h): one pass over every span.
template <class T> void adam_arena(T* p, const T* g, T* m, T* v, const ArenaSpans& s, const AdamParams& a);
template <class T> void sgd_arena(T* p, const T* g, T* buf, const ArenaSpans& s, const SgdParams& sp);
template <class T> void ema_spans(const EmaSpans<T>& s, float decay);
}  // namespace kernels::cpu
