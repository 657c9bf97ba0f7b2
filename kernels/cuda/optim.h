// CUDA optimizer steps (f32), same semantics as kernels/cpu/optim.h.
#pragma once
#include "kernels/device_api.h"
#include "kernels/optim_math.h"

C3_KERNELS_DECLARE(
  void adam_step_f32(float* p, const float* g, float* m, float* v, int64_t n, const AdamParams& a);
  void sgd_step_f32(float* p, const float* g, float* buf, int64_t n, const SgdParams& s);  // buf may be null (no momentum)
  void ema_step_f32(float* teacher, const float* student, int64_t n, float decay);
  // Over a parameter arena (kernels/optim_math.h): one launch each.
  void adam_arena_f32(float* p, const float* g, float* m, float* v, const ArenaSpans& s, const AdamParams& a);
  void sgd_arena_f32(float* p, const float* g, float* buf, const ArenaSpans& s, const SgdParams& sp);  // buf may be null
  void ema_spans_f32(const EmaSpans<float>& s, float decay);
)
