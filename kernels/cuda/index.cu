// Indexing kernels: grid-stride copies, gathers and atomic scatters (f32 and bf16), and
// l2_normalize (f32 only) with one warp per row (a row is an embedding of a few hundred
// channels: one warp covers it in a few coalesced passes and reduces with shuffles, no shared
// memory, no block barrier).
#include "kernels/cuda/check.h"
#include "kernels/cuda/index.h"
#include "kernels/cuda/launch_util.h"
#include "kernels/cuda/reduce_util.h"
#include "kernels/index_math.h"

namespace kernels::KERNELS_NS {
namespace {
constexpr int kBlock = 256;
constexpr int kWarpsPerBlock = kBlock / 32;

#define C3_GRID_STRIDE(i, n) \
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

// copy_rows, gather_rows: templated over the element type, pure copies of its bits.
template <class T>
__global__ void copy_rows_kernel(const T* src, int64_t src_stride, T* dst, int64_t dst_stride, int64_t rows,
                                 int64_t len) {
  C3_GRID_STRIDE(e, rows * len) {
    const int64_t r = e / len, i = e - r * len;
    dst[r * dst_stride + i] = src[r * src_stride + i];
  }
}

template <class T>
__global__ void gather_rows_kernel(const T* x, const int32_t* idx, T* out, int64_t R, int64_t K, int64_t C,
                                   int32_t* bad) {
  C3_GRID_STRIDE(e, K * C) {
    const int64_t k = e / C, c = e - k * C;
    const int64_t row = idx[k];
    const bool ok = row >= 0 && row < R;
    out[e] = ok ? x[row * C + c] : T{};  // T{}: +0 (f32 0.f, bf16 bits 0)
    if (!ok && c == 0) atomicExch(bad, 1);
  }
}

// The sums are accumulated in acc_t<T> (f32 for a bf16 src too): `out` is an f32 buffer,
// which the caller rounds to bf16 once, after the last addition (adding into bf16 would
// round a row's running sum after each of its up to K additions).
template <class T>
__global__ void scatter_add_rows_kernel(const T* src, const int32_t* idx, acc_t<T>* out, int64_t R, int64_t K,
                                        int64_t C, int32_t* bad) {
  C3_GRID_STRIDE(e, K * C) {
    const int64_t k = e / C, c = e - k * C;
    const int64_t row = idx[k];
    if (row >= 0 && row < R) atomicAdd(out + row * C + c, widen(src[e]));
    else if (c == 0) atomicExch(bad, 1);
  }
}

// Rows are distributed over warps; the row loop is uniform across a warp (it depends on the
// warp index only), so every lane takes part in every shuffle of warp_sum.
#define C3_WARP_PER_ROW(r, rows)                                                                     \
  for (int64_t r = blockIdx.x * (int64_t)kWarpsPerBlock + threadIdx.x / 32; r < (rows);             \
       r += (int64_t)gridDim.x * kWarpsPerBlock)

__global__ void l2_normalize_kernel(const float* x, float* y, int64_t rows, int64_t C, float eps) {
  const int lane = threadIdx.x % 32;
  C3_WARP_PER_ROW(r, rows) {
    const float* p = x + r * C;
    float ss = 0.f;
    for (int64_t c = lane; c < C; c += 32) ss += p[c] * p[c];
    const float inv = l2n_inv_denom(warp_sum(ss), eps);
    for (int64_t c = lane; c < C; c += 32) y[r * C + c] = p[c] * inv;
  }
}

__global__ void l2_normalize_backward_kernel(const float* x, const float* g, float* gx, int64_t rows, int64_t C,
                                             float eps) {
  const int lane = threadIdx.x % 32;
  C3_WARP_PER_ROW(r, rows) {
    const float *p = x + r * C, *q = g + r * C;
    float ss = 0.f, gdx = 0.f;
    for (int64_t c = lane; c < C; c += 32) {
      ss += p[c] * p[c];
      gdx += q[c] * p[c];
    }
    ss = warp_sum(ss);
    gdx = warp_sum(gdx);
    const float inv = l2n_inv_denom(ss, eps), coef = l2n_grad_coef(ss, gdx, eps);
    for (int64_t c = lane; c < C; c += 32) gx[r * C + c] = q[c] * inv - p[c] * coef;
  }
}

dim3 grid_for_rows(int64_t rows) { return grid_for(rows, kWarpsPerBlock); }

}  // namespace

namespace {
template <class T>
void copy_rows_t(const T* src, int64_t src_stride, T* dst, int64_t dst_stride, int64_t rows, int64_t len) {
  if (rows * len == 0) return;
  LAUNCH_CHECK(launch(copy_rows_kernel<T>, grid_for(rows * len, kBlock), kBlock, 0, nullptr, src, src_stride, dst,
                      dst_stride, rows, len));
}
template <class T>
void gather_rows_t(const T* x, const int32_t* idx, T* out, int64_t R, int64_t K, int64_t C, int32_t* bad) {
  if (K * C == 0) return;
  LAUNCH_CHECK(
      launch(gather_rows_kernel<T>, grid_for(K * C, kBlock), kBlock, 0, nullptr, x, idx, out, R, K, C, bad));
}
template <class T>
void scatter_add_rows_t(const T* src, const int32_t* idx, acc_t<T>* out, int64_t R, int64_t K, int64_t C,
                        int32_t* bad) {
  if (K * C == 0) return;
  LAUNCH_CHECK(
      launch(scatter_add_rows_kernel<T>, grid_for(K * C, kBlock), kBlock, 0, nullptr, src, idx, out, R, K, C, bad));
}
}  // namespace

void copy_rows_f32(const float* src, int64_t src_stride, float* dst, int64_t dst_stride, int64_t rows, int64_t len) {
  copy_rows_t(src, src_stride, dst, dst_stride, rows, len);
}
void copy_rows_bf16(const bf16* src, int64_t src_stride, bf16* dst, int64_t dst_stride, int64_t rows, int64_t len) {
  copy_rows_t(src, src_stride, dst, dst_stride, rows, len);
}

void gather_rows_f32(const float* x, const int32_t* idx, float* out, int64_t R, int64_t K, int64_t C, int32_t* bad) {
  gather_rows_t(x, idx, out, R, K, C, bad);
}
void gather_rows_bf16(const bf16* x, const int32_t* idx, bf16* out, int64_t R, int64_t K, int64_t C, int32_t* bad) {
  gather_rows_t(x, idx, out, R, K, C, bad);
}

void scatter_add_rows_f32(const float* src, const int32_t* idx, float* out, int64_t R, int64_t K, int64_t C,
                          int32_t* bad) {
  scatter_add_rows_t(src, idx, out, R, K, C, bad);
}
void scatter_add_rows_bf16(const bf16* src, const int32_t* idx, float* out, int64_t R, int64_t K, int64_t C,
                           int32_t* bad) {
  scatter_add_rows_t(src, idx, out, R, K, C, bad);
}

void l2_normalize_rows_f32(const float* x, float* y, int64_t rows, int64_t C, float eps) {
  if (rows * C == 0) return;
  LAUNCH_CHECK(launch(l2_normalize_kernel, grid_for_rows(rows), kBlock, 0, nullptr, x, y, rows, C, eps));
}

void l2_normalize_rows_backward_f32(const float* x, const float* g, float* gx, int64_t rows, int64_t C, float eps) {
  if (rows * C == 0) return;
  LAUNCH_CHECK(
      launch(l2_normalize_backward_kernel, grid_for_rows(rows), kBlock, 0, nullptr, x, g, gx, rows, C, eps));
}

}  // namespace kernels::KERNELS_NS
