// Reductions over the middle axis of [outer, mid, inner]. Deterministic (no atomics).
#include "kernels/cuda/check.h"
#include "kernels/cuda/launch_util.h"
#include "kernels/cuda/reduce.h"
#include "kernels/cuda/reduce_util.h"
#include "kernels/reduce_math.h"

namespace kernels::KERNELS_NS {
namespace {

// `mid` is cut into S splits (sum_splits) so that a sum over few rows or columns still spreads
// over many blocks: each block sums one split of its slice into a partial, then a second
// kernel adds a slice's S partials in split order. No atomics: the same input and shape give
// the same bits. With S = 1 the first kernel writes the result itself. The input is f32 or
// bf16 (widened on load); sums and results are f32.

// The rows [s * len, min(mid, (s + 1) * len)) of split s.
__device__ __forceinline__ void split_range(int64_t mid, int64_t S, int64_t s, int64_t& m0, int64_t& m1) {
  const int64_t len = (mid + S - 1) / S;
  m0 = s * len;
  m1 = m0 + len < mid ? m0 + len : mid;
}

// inner == 1: block b sums split b % S of row b / S, its threads striding along it.
template <class T> __global__ void sum_rows_kernel(const T* x, float* out, int64_t mid, int64_t S) {
  __shared__ float scratch[32];
  const int64_t o = blockIdx.x / S, sp = blockIdx.x % S;
  int64_t m0, m1;
  split_range(mid, S, sp, m0, m1);
  const T* p = x + o * mid;
  float s = 0.f;
  for (int64_t m = m0 + threadIdx.x; m < m1; m += blockDim.x) s += widen(p[m]);
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) out[blockIdx.x] = s;  // out[o * S + sp]
}

// inner > 1: a block covers 32 consecutive columns (coalesced) of one outer slice (y) and one
// split of `mid` (z); its 8 rows of threads share the split, then combine through shared memory.
template <class T> __global__ void sum_cols_kernel(const T* x, float* out, int64_t mid, int64_t inner, int64_t S) {
  __shared__ float part[8][33];
  const int64_t col = blockIdx.x * 32 + threadIdx.x;
  const int64_t o = blockIdx.y, sp = blockIdx.z;
  int64_t m0, m1;
  split_range(mid, S, sp, m0, m1);
  float s = 0.f;
  if (col < inner)
    for (int64_t m = m0 + threadIdx.y; m < m1; m += blockDim.y) s += widen(x[(o * mid + m) * inner + col]);
  part[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && col < inner) {
    float t = 0.f;
    for (int r = 0; r < 8; ++r) t += part[r][threadIdx.x];
    out[(o * S + sp) * inner + col] = t;
  }
}

// out[o, i] = the sum over s, in order, of part[o, s, i] (one thread per output).
__global__ void sum_splits_kernel(const float* part, float* out, int64_t outer, int64_t S, int64_t inner) {
  for (int64_t k = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; k < outer * inner;
       k += (int64_t)gridDim.x * blockDim.x) {
    const int64_t o = k / inner, i = k % inner;
    float t = 0.f;
    for (int64_t s = 0; s < S; ++s) t += part[(o * S + s) * inner + i];
    out[k] = t;
  }
}

template <class T>
__global__ void broadcast_mid_kernel(const T* x, T* out, int64_t outer, int64_t mid, int64_t inner) {
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

namespace {
template <class T> void broadcast_mid_t(const T* x, T* out, int64_t outer, int64_t mid, int64_t inner) {
  const int64_t n = outer * mid * inner;
  if (n == 0) return;
  LAUNCH_CHECK(launch(broadcast_mid_kernel<T>, grid_for(n, 256), dim3(256), 0, nullptr, x, out, outer, mid, inner));
}

template <class T> void sum_mid_t(const T* x, float* out, int64_t outer, int64_t mid, int64_t inner, float* scratch) {
  if (outer * inner == 0) return;
  const int64_t S = sum_splits(outer, mid, inner);
  if (S > 1 && scratch == nullptr)
    throw std::invalid_argument("sum_mid: " + std::to_string(S) + " splits need sum_mid_scratch floats of scratch");
  float* dst = S == 1 ? out : scratch;
  if (inner == 1) {
    LAUNCH_CHECK(launch(sum_rows_kernel<T>, dim3((unsigned)(outer * S)), dim3(256), 0, nullptr, x, dst, mid, S));
  } else {
    dim3 grid((unsigned)((inner + 31) / 32), (unsigned)outer, (unsigned)S);
    LAUNCH_CHECK(launch(sum_cols_kernel<T>, grid, dim3(32, 8), 0, nullptr, x, dst, mid, inner, S));
  }
  if (S > 1)
    LAUNCH_CHECK(launch(sum_splits_kernel, grid_for(outer * inner, 256), dim3(256), 0, nullptr, scratch, out, outer,
                        S, inner));
}
}  // namespace

void broadcast_mid_f32(const float* x, float* out, int64_t outer, int64_t mid, int64_t inner) {
  broadcast_mid_t(x, out, outer, mid, inner);
}
void broadcast_mid_bf16(const bf16* x, bf16* out, int64_t outer, int64_t mid, int64_t inner) {
  broadcast_mid_t(x, out, outer, mid, inner);
}
void sum_mid_f32(const float* x, float* out, int64_t outer, int64_t mid, int64_t inner, float* scratch) {
  sum_mid_t(x, out, outer, mid, inner, scratch);
}
void sum_mid_bf16(const bf16* x, float* out, int64_t outer, int64_t mid, int64_t inner, float* scratch) {
  sum_mid_t(x, out, outer, mid, inner, scratch);
}

}  // namespace kernels::KERNELS_NS
