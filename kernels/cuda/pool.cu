// Pooling kernels, NHWC. Max pooling: one thread per output (forward) or per input cell
// (backward, a gather over the covering windows: no atomics), channels fastest so a warp
// reads consecutive addresses. Global average pooling: a block of 32 x 8 threads covers 32
// channels of one image and combines its 8 rows of threads in a fixed order.
#include "kernels/cuda/check.h"
#include "kernels/cuda/launch_util.h"
#include "kernels/cuda/pool.h"

namespace kernels::KERNELS_NS {
namespace {
constexpr int kBlock = 256;
constexpr int kCols = 32, kRows = 8;

__global__ void max_pool_kernel(const float* x, PoolGeom g, float* y, int32_t* argmax) {
  const int64_t n_out = g.N * g.Ho * g.Wo * g.C;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n_out; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t c = i % g.C, t = i / g.C, ow = t % g.Wo, t2 = t / g.Wo, oh = t2 % g.Ho, n = t2 / g.Ho;
    max_pool_window(x, g, n, oh, ow, c, y[i], argmax[i]);
  }
}

__global__ void max_pool_backward_kernel(const float* dy, const int32_t* argmax, PoolGeom g, float* dx) {
  const int64_t n_in = g.N * g.H * g.W * g.C;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n_in; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t c = i % g.C, t = i / g.C, iw = t % g.W, t2 = t / g.W, ih = t2 % g.H, n = t2 / g.H;
    dx[i] = max_pool_grad_at(dy, argmax, g, n, ih, iw, c);
  }
}

// grid (ceil(C/32), N): block (bx, n) averages channels bx*32.. of image n.
__global__ void avg_pool_kernel(const float* x, int64_t HW, int64_t C, float* y) {
  __shared__ float part[kRows][kCols + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t c = blockIdx.x * (int64_t)kCols + tx, n = blockIdx.y;
  float s = 0.f;
  if (c < C)
    for (int64_t m = ty; m < HW; m += kRows) s += x[(n * HW + m) * C + c];
  part[ty][tx] = s;
  __syncthreads();
  if (ty == 0 && c < C) {
    for (int k = 1; k < kRows; ++k) s += part[k][tx];
    y[n * C + c] = s / float(HW);
  }
}

__global__ void avg_pool_backward_kernel(const float* dy, int64_t N, int64_t HW, int64_t C, float* dx) {
  const int64_t n_in = N * HW * C;
  const float inv = 1.f / float(HW);
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n_in; i += (int64_t)gridDim.x * blockDim.x)
    dx[i] = dy[(i / (HW * C)) * C + i % C] * inv;
}
}  // namespace

void max_pool2d_f32(const float* x, const PoolGeom& g, float* y, int32_t* argmax) {
  const int64_t n = g.N * g.Ho * g.Wo * g.C;
  if (n == 0) return;
  LAUNCH_CHECK(launch(max_pool_kernel, grid_for(n, kBlock), dim3(kBlock), 0, nullptr, x, g, y, argmax));
}

void max_pool2d_backward_f32(const float* dy, const int32_t* argmax, const PoolGeom& g, float* dx) {
  const int64_t n = g.N * g.H * g.W * g.C;
  if (n == 0) return;
  LAUNCH_CHECK(launch(max_pool_backward_kernel, grid_for(n, kBlock), dim3(kBlock), 0, nullptr, dy, argmax, g, dx));
}

void global_avg_pool_f32(const float* x, int64_t N, int64_t HW, int64_t C, float* y) {
  if (N * C == 0) return;
  const dim3 grid((unsigned)((C + kCols - 1) / kCols), (unsigned)N);
  LAUNCH_CHECK(launch(avg_pool_kernel, grid, dim3(kCols, kRows), 0, nullptr, x, HW, C, y));
}

void global_avg_pool_backward_f32(const float* dy, int64_t N, int64_t HW, int64_t C, float* dx) {
  const int64_t n = N * HW * C;
  if (n == 0) return;
  LAUNCH_CHECK(launch(avg_pool_backward_kernel, grid_for(n, kBlock), dim3(kBlock), 0, nullptr, dy, N, HW, C, dx));
}

}  // namespace kernels::KERNELS_NS
