// Reductions over the middle axis of [outer, mid, inner]. Deterministic (no atomics).
#include "kernels/cuda/check.h"
#include "kernels/cuda/launch_util.h"
#include "kernels/cuda/reduce.h"
#include "kernels/cuda/reduce_util.h"
#include "kernels/reduce_math.h"

namespace kernels::KERNELS_NS {
namespace {

// inner == 1: one block per row, the block strides along it.
__global__ void sum_rows_kernel(const float* x, float* out, int64_t mid) {
  __shared__ float scratch[32];
  const float* p = x + blockIdx.x * mid;
  float s = 0.f;
  for (int64_t m = threadIdx.x; m < mid; m += blockDim.x) s += p[m];
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) out[blockIdx.x] = s;
}

// inner > 1: a block covers 32 consecutive columns (coalesced) of one outer slice;
// its 8 rows of threads split `mid`, then combine through shared memory.
__global__ void sum_cols_kernel(const float* x, float* out, int64_t mid, int64_t inner) {
  __shared__ float part[8][33];
  const int64_t col = blockIdx.x * 32 + threadIdx.x;
  const int64_t o = blockIdx.y;
  float s = 0.f;
  if (col < inner)
    for (int64_t m = threadIdx.y; m < mid; m += blockDim.y) s += x[(o * mid + m) * inner + col];
  part[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && col < inner) {
    float t = 0.f;
    for (int r = 0; r < 8; ++r) t += part[r][threadIdx.x];
    out[o * inner + col] = t;
  }
}
__global__ void broadcast_mid_kernel(const float* x, float* out, int64_t outer, int64_t mid, int64_t inner) {
  const int64_t n = outer * mid * inner;
  for (int64_t k = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; k < n; k += (int64_t)gridDim.x * blockDim.x) {
    const int64_t i = k % inner, o = k / (mid * inner);
    out[k] = x[o * inner + i];
  }
}

// One warp per row of [rows, C]: each lane scans its strided share of the row in order,
// then a shuffle tree combines the lanes with the same rule as the CPU scan. A lane with
// no element holds (-inf, C), which loses to every real element.
constexpr int kRowsPerBlock = 8;
__global__ void max_channels_kernel(const float* x, float* vals, int32_t* idx, int64_t rows, int64_t C) {
  const int lane = threadIdx.x % 32;
  for (int64_t r = blockIdx.x * (int64_t)kRowsPerBlock + threadIdx.x / 32; r < rows;
       r += (int64_t)gridDim.x * kRowsPerBlock) {
    const float* p = x + r * C;
    float best = -INFINITY;
    int bi = static_cast<int>(C);
    for (int c = lane; c < C; c += 32)
      if (argmax_better(p[c], c, best, bi)) best = p[c], bi = c;
    for (int d = 16; d > 0; d >>= 1) {
      const float ob = __shfl_xor_sync(0xffffffffu, best, d);
      const int oi = __shfl_xor_sync(0xffffffffu, bi, d);
      if (argmax_better(ob, oi, best, bi)) best = ob, bi = oi;
    }
    if (lane == 0) {
      if (vals) vals[r] = best;
      if (idx) idx[r] = bi;
    }
  }
}
__global__ void max_channels_backward_kernel(const float* g, const int32_t* idx, float* gx, int64_t rows, int64_t C) {
  const int64_t n = rows * C;
  for (int64_t k = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; k < n; k += (int64_t)gridDim.x * blockDim.x) {
    const int64_t r = k / C;
    gx[k] = k - r * C == idx[r] ? g[r] : 0.f;
  }
}
}  // namespace

void max_channels_f32(const float* x, float* vals, int32_t* idx, int64_t rows, int64_t C) {
  if (rows == 0) return;
  const dim3 grid = grid_for(rows, kRowsPerBlock);
  LAUNCH_CHECK(launch(max_channels_kernel, grid, dim3(32 * kRowsPerBlock), 0, nullptr, x, vals, idx, rows, C));
}
void max_channels_backward_f32(const float* g, const int32_t* idx, float* gx, int64_t rows, int64_t C) {
  const int64_t n = rows * C;
  if (n == 0) return;
  LAUNCH_CHECK(launch(max_channels_backward_kernel, grid_for(n, 256), dim3(256), 0, nullptr, g, idx, gx, rows, C));
}

void broadcast_mid_f32(const float* x, float* out, int64_t outer, int64_t mid, int64_t inner) {
  const int64_t n = outer * mid * inner;
  if (n == 0) return;
  LAUNCH_CHECK(launch(broadcast_mid_kernel, grid_for(n, 256), dim3(256), 0, nullptr, x, out, outer, mid, inner));
}

void sum_mid_f32(const float* x, float* out, int64_t outer, int64_t mid, int64_t inner) {
  if (outer * inner == 0) return;
  if (inner == 1) {
    LAUNCH_CHECK(launch(sum_rows_kernel, dim3((unsigned)outer), dim3(256), 0, nullptr, x, out, mid));
  } else {
    dim3 grid((unsigned)((inner + 31) / 32), (unsigned)outer);
    LAUNCH_CHECK(launch(sum_cols_kernel, grid, dim3(32, 8), 0, nullptr, x, out, mid, inner));
  }
}

}  // namespace kernels::KERNELS_NS
