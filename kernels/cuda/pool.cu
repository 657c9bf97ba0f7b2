// Pooling kernels, NHWC. Max pooling: one thread per output (forward) or per input cell
// (backward, a gather over the covering windows: no atomics), channels fastest so a warp
// reads consecutive addresses. Global average pooling: a block of 32 x 8 threads covers 32
// channels of one image and combines its 8 rows of threads in a fixed order.
//
// Every kernel is templated over the element type T (float or bf16): elements are widened on
// load, compared and summed in acc_t<T> (f32 for both), and each output is narrowed once.
#include "kernels/cuda/check.h"
#include "kernels/cuda/launch_util.h"
#include "kernels/cuda/pool.h"

namespace kernels::KERNELS_NS {
namespace {
constexpr int kBlock = 256;
constexpr int kCols = 32, kRows = 8;

template <class T> __global__ void max_pool_kernel(const T* x, PoolGeom g, T* y, int32_t* argmax) {
  const int64_t n_out = g.N * g.Ho * g.Wo * g.C;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n_out; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t c = i % g.C, t = i / g.C, ow = t % g.Wo, t2 = t / g.Wo, oh = t2 % g.Ho, n = t2 / g.Ho;
    acc_t<T> best;
    max_pool_window(x, g, n, oh, ow, c, best, argmax[i]);
    y[i] = narrow<T>(best);
  }
}

template <class T> __global__ void max_pool_backward_kernel(const T* dy, const int32_t* argmax, PoolGeom g, T* dx) {
  const int64_t n_in = g.N * g.H * g.W * g.C;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n_in; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t c = i % g.C, t = i / g.C, iw = t % g.W, t2 = t / g.W, ih = t2 % g.H, n = t2 / g.H;
    dx[i] = narrow<T>(max_pool_grad_at(dy, argmax, g, n, ih, iw, c));
  }
}

// grid (ceil(C/32), N): block (bx, n) averages channels bx*32.. of image n. The sums (and
// the shared partial sums) are f32 for a bf16 x too; the mean is rounded once.
template <class T> __global__ void avg_pool_kernel(const T* x, int64_t HW, int64_t C, T* y) {
  __shared__ acc_t<T> part[kRows][kCols + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t c = blockIdx.x * (int64_t)kCols + tx, n = blockIdx.y;
  acc_t<T> s = 0.f;
  if (c < C)
    for (int64_t m = ty; m < HW; m += kRows) s += widen(x[(n * HW + m) * C + c]);
  part[ty][tx] = s;
  __syncthreads();
  if (ty == 0 && c < C) {
    for (int k = 1; k < kRows; ++k) s += part[k][tx];
    y[n * C + c] = narrow<T>(s / float(HW));
  }
}

template <class T> __global__ void avg_pool_backward_kernel(const T* dy, int64_t N, int64_t HW, int64_t C, T* dx) {
  const int64_t n_in = N * HW * C;
  const float inv = 1.f / float(HW);
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n_in; i += (int64_t)gridDim.x * blockDim.x)
    dx[i] = narrow<T>(widen(dy[(i / (HW * C)) * C + i % C]) * inv);
}

template <class T> void max_pool2d_t(const T* x, const PoolGeom& g, T* y, int32_t* argmax) {
  const int64_t n = g.N * g.Ho * g.Wo * g.C;
  if (n == 0) return;
  LAUNCH_CHECK(launch(max_pool_kernel<T>, grid_for(n, kBlock), dim3(kBlock), 0, nullptr, x, g, y, argmax));
}

template <class T> void max_pool2d_backward_t(const T* dy, const int32_t* argmax, const PoolGeom& g, T* dx) {
  const int64_t n = g.N * g.H * g.W * g.C;
  if (n == 0) return;
  LAUNCH_CHECK(
      launch(max_pool_backward_kernel<T>, grid_for(n, kBlock), dim3(kBlock), 0, nullptr, dy, argmax, g, dx));
}

template <class T> void global_avg_pool_t(const T* x, int64_t N, int64_t HW, int64_t C, T* y) {
  if (N * C == 0) return;
  const dim3 grid((unsigned)((C + kCols - 1) / kCols), (unsigned)N);
  LAUNCH_CHECK(launch(avg_pool_kernel<T>, grid, dim3(kCols, kRows), 0, nullptr, x, HW, C, y));
}

template <class T> void global_avg_pool_backward_t(const T* dy, int64_t N, int64_t HW, int64_t C, T* dx) {
  const int64_t n = N * HW * C;
  if (n == 0) return;
  LAUNCH_CHECK(
      launch(avg_pool_backward_kernel<T>, grid_for(n, kBlock), dim3(kBlock), 0, nullptr, dy, N, HW, C, dx));
}
}  // namespace

void max_pool2d_f32(const float* x, const PoolGeom& g, float* y, int32_t* argmax) { max_pool2d_t(x, g, y, argmax); }
void max_pool2d_bf16(const bf16* x, const PoolGeom& g, bf16* y, int32_t* argmax) { max_pool2d_t(x, g, y, argmax); }

void max_pool2d_backward_f32(const float* dy, const int32_t* argmax, const PoolGeom& g, float* dx) {
  max_pool2d_backward_t(dy, argmax, g, dx);
}
void max_pool2d_backward_bf16(const bf16* dy, const int32_t* argmax, const PoolGeom& g, bf16* dx) {
  max_pool2d_backward_t(dy, argmax, g, dx);
}

void global_avg_pool_f32(const float* x, int64_t N, int64_t HW, int64_t C, float* y) {
  global_avg_pool_t(x, N, HW, C, y);
}
void global_avg_pool_bf16(const bf16* x, int64_t N, int64_t HW, int64_t C, bf16* y) {
  global_avg_pool_t(x, N, HW, C, y);
}

void global_avg_pool_backward_f32(const float* dy, int64_t N, int64_t HW, int64_t C, float* dx) {
  global_avg_pool_backward_t(dy, N, HW, C, dx);
}
void global_avg_pool_backward_bf16(const bf16* dy, int64_t N, int64_t HW, int64_t C, bf16* dx) {
  global_avg_pool_backward_t(dy, N, HW, C, dx);
}

}  // namespace kernels::KERNELS_NS
