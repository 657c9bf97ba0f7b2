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

}  // namespace kernels::KERNELS_NS
