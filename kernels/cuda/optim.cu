// Fused optimizer updates: one grid-stride pass reads p, g and the state, writes p and state.
#include "kernels/cuda/check.h"
#include "kernels/cuda/launch_util.h"
#include "kernels/cuda/optim.h"

namespace kernels::KERNELS_NS {
namespace {
constexpr int kBlock = 256;
#define C3_GRID_STRIDE(i, n) \
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

__global__ void adam_kernel(float* p, const float* g, float* m, float* v, int64_t n, AdamParams a) {
  C3_GRID_STRIDE(i, n) adam_update(p[i], g[i], m[i], v[i], a);
}
__global__ void sgd_kernel(float* p, const float* g, float* buf, int64_t n, SgdParams s) {
  C3_GRID_STRIDE(i, n) {
    float dummy = 0.f;
    sgd_update(p[i], g[i], buf ? buf[i] : dummy, s);
  }
}
__global__ void ema_kernel(float* t, const float* s, int64_t n, float decay) {
  C3_GRID_STRIDE(i, n) ema_update(t[i], s[i], decay);
}

// Over an arena: each thread walks its grid-stride indices through the spans in order.
#define C3_THREAD_START (blockIdx.x * (int64_t)blockDim.x + threadIdx.x)
#define C3_THREAD_STRIDE ((int64_t)gridDim.x * blockDim.x)
__global__ void adam_arena_kernel(float* p, const float* g, float* m, float* v, ArenaSpans s, AdamParams a) {
  for_arena_elements(s, C3_THREAD_START, C3_THREAD_STRIDE, [&](int64_t i, const ArenaSpan& sp) {
    AdamParams ak = a;
    ak.lr = s.lr[sp.group];
    ak.weight_decay = s.weight_decay[sp.group];
    adam_update(p[i], g[i], m[i], v[i], ak);
  });
}
__global__ void sgd_arena_kernel(float* p, const float* g, float* buf, ArenaSpans s, SgdParams base) {
  for_arena_elements(s, C3_THREAD_START, C3_THREAD_STRIDE, [&](int64_t i, const ArenaSpan& sp) {
    SgdParams sk = base;
    sk.lr = s.lr[sp.group];
    sk.weight_decay = s.weight_decay[sp.group];
    sk.first_step = sp.first_step != 0;
    float dummy = 0.f;
    sgd_update(p[i], g[i], buf ? buf[i] : dummy, sk);
  });
}
__global__ void ema_spans_kernel(EmaSpans<float> s, float decay) {
  for_ema_elements(s, C3_THREAD_START, C3_THREAD_STRIDE, [&](float& t, float st) { ema_update(t, st, decay); });
}
}  // namespace

void adam_step_f32(float* p, const float* g, float* m, float* v, int64_t n, const AdamParams& a) {
  if (n) LAUNCH_CHECK(launch(adam_kernel, grid_for(n, kBlock), kBlock, 0, nullptr, p, g, m, v, n, a));
}
void sgd_step_f32(float* p, const float* g, float* buf, int64_t n, const SgdParams& s) {
  if (n) LAUNCH_CHECK(launch(sgd_kernel, grid_for(n, kBlock), kBlock, 0, nullptr, p, g, buf, n, s));
}
void ema_step_f32(float* t, const float* s, int64_t n, float decay) {
  if (n) LAUNCH_CHECK(launch(ema_kernel, grid_for(n, kBlock), kBlock, 0, nullptr, t, s, n, decay));
}

void adam_arena_f32(float* p, const float* g, float* m, float* v, const ArenaSpans& s, const AdamParams& a) {
  if (s.total) LAUNCH_CHECK(launch(adam_arena_kernel, grid_for(s.total, kBlock), kBlock, 0, nullptr, p, g, m, v, s, a));
}
void sgd_arena_f32(float* p, const float* g, float* buf, const ArenaSpans& s, const SgdParams& sp) {
  if (s.total) LAUNCH_CHECK(launch(sgd_arena_kernel, grid_for(s.total, kBlock), kBlock, 0, nullptr, p, g, buf, s, sp));
}
void ema_spans_f32(const EmaSpans<float>& s, float decay) {
  if (s.total) LAUNCH_CHECK(launch(ema_spans_kernel, grid_for(s.total, kBlock), kBlock, 0, nullptr, s, decay));
}

}  // namespace kernels::KERNELS_NS
