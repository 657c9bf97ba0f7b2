#include "kernels/cpu/conv.h"

#include <cblas.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>

#include "kernels/elementwise_math.h"
#include "kernels/launch_counter.h"

namespace kernels::cpu {
namespace {

// Row-major C[m,n] = alpha * op(A) * op(B) + beta * C, the two precisions through one name.
void blas_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
          const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(m), int(n), int(k),
              alpha, a, int(lda), b, int(ldb), beta, c, int(ldc));
}
void blas_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a, int64_t lda,
          const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(m), int(n), int(k),
              alpha, a, int(lda), b, int(ldb), beta, c, int(ldc));
}

// BLAS takes 32-bit sizes: every matrix dimension handed to it must fit.
void check_blas_dims(const ConvGeom& g, int64_t rows) {
  const int64_t m = std::max({rows, g.taps(), g.K});
  if (m > INT_MAX)
    throw std::length_error("conv2d (cpu): a GEMM dimension of " + std::to_string(m) + " exceeds the BLAS int range");
}

// Output pixels per chunk so that rows * taps values fit the budget (at least one row).
int64_t chunk_rows(const ConvGeom& g, size_t elem, size_t budget) {
  const int64_t per_row = g.taps() * static_cast<int64_t>(elem);
  return std::clamp<int64_t>(static_cast<int64_t>(budget) / per_row, 1, std::max<int64_t>(g.out_pixels(), 1));
}

// The im2col buffer, kept per thread and grown on demand: a fresh 100 MB allocation would
// pay its page faults on every call (measured: as long as the im2col itself). It holds at
// most the budget (plus one row). Not zeroed: im2col and the GEMMs write every value read.
template <class T> T* scratch(int64_t n) {
  thread_local std::unique_ptr<T[]> buf;
  thread_local int64_t capacity = 0;
  if (n > capacity) {
    buf.reset();
    buf = std::make_unique_for_overwrite<T[]>(static_cast<size_t>(n));
    capacity = n;
  }
  return buf.get();
}

// The fused ReLU over rows [p0, p0 + rows) of y [P, K]: Unary::relu, the relu op's own function.
}  // namespace

template <class T> void relu_rows(T* y, int64_t K, int64_t p0, int64_t rows) {
  T* p = y + p0 * K;
  const int64_t n = rows * K;
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) p[i] = unary_apply(Unary::relu, p[i], T(0), T(0));
}

template <class T> void im2col(const T* x, T* cols, const ConvGeom& g, int64_t p0, int64_t rows) {
  const int64_t taps = g.taps(), C = g.C;
#pragma omp parallel for schedule(static) if (rows * taps > 32768)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t p = p0 + r, ox = p % g.Wo, oy = (p / g.Wo) % g.Ho, n = p / (g.Wo * g.Ho);
    const T* img = x + n * g.H * g.W * C;
    T* row = cols + r * taps;
    for (int64_t ky = 0; ky < g.kh; ++ky) {
      const int64_t iy = conv_in_coord(oy, ky, g.sh, g.ph, g.dh);
      for (int64_t kx = 0; kx < g.kw; ++kx) {
        const int64_t ix = conv_in_coord(ox, kx, g.sw, g.pw, g.dw);
        T* dst = row + (ky * g.kw + kx) * C;
        if (iy < 0 || iy >= g.H || ix < 0 || ix >= g.W) std::fill(dst, dst + C, T(0));
        else std::memcpy(dst, img + (iy * g.W + ix) * C, static_cast<size_t>(C) * sizeof(T));
      }
    }
  }
}

// The adjoint, parallel over input rows: the thread that owns row (n, iy) adds into it every
// tap of the chunk's output pixels that reads it. No two threads write the same value and the
// order of the sums is fixed, so the result is deterministic (a parallel scatter over output
// pixels would race). Divisions happen once per (row, ky), not per pixel.
template <class T> void col2im_add(const T* cols, T* dx, const ConvGeom& g, int64_t p0, int64_t rows) {
  if (rows <= 0) return;
  const int64_t taps = g.taps(), C = g.C, plane = g.Ho * g.Wo, p1 = p0 + rows;
  const int64_t n0 = p0 / plane, n1 = (p1 - 1) / plane;
#pragma omp parallel for schedule(static) if (rows * taps > 32768)
  for (int64_t j = 0; j < (n1 - n0 + 1) * g.H; ++j) {
    const int64_t n = n0 + j / g.H, iy = j % g.H;
    T* drow = dx + (n * g.H + iy) * g.W * C;
    for (int64_t ky = 0; ky < g.kh; ++ky) {
      const int64_t ty = iy + g.ph - ky * g.dh;  // = oy * sh for the output row whose tap ky reads iy
      if (ty < 0 || ty % g.sh != 0 || ty / g.sh >= g.Ho) continue;
      const int64_t prow = (n * g.Ho + ty / g.sh) * g.Wo;  // that output row's first pixel
      const int64_t ox_lo = std::max<int64_t>(0, p0 - prow), ox_hi = std::min(g.Wo, p1 - prow);
      for (int64_t kx = 0; kx < g.kw; ++kx)
        for (int64_t ox = ox_lo; ox < ox_hi; ++ox) {
          const int64_t ix = conv_in_coord(ox, kx, g.sw, g.pw, g.dw);
          if (ix < 0 || ix >= g.W) continue;
          const T* src = cols + (prow + ox - p0) * taps + (ky * g.kw + kx) * C;
          T* dst = drow + ix * C;
          for (int64_t c = 0; c < C; ++c) dst[c] += src[c];
        }
    }
  }
}

void count_forward_launches(bool bias, bool relu) {
  // The GPU's launches for this op (f32): the cuDNN convolution, then the bias add; with the
  // ReLU, cuDNN's fused conv + bias + ReLU (one call), or without a bias the conv and a ReLU.
  count_launch();
  if (bias && !relu) count_launch();
  if (!bias && relu) count_launch();
}

void count_backward_launches(bool dx, bool dw) {
  // One cuDNN call per wanted gradient (backward data, backward filter).
  if (dx) count_launch();
  if (dw) count_launch();
}

template <class T>
void conv2d_forward(const T* x, const T* w, const T* bias, T* y, const ConvGeom& g, bool relu, size_t cols_budget) {
  count_forward_launches(bias != nullptr, relu);
  const int64_t P = g.out_pixels(), taps = g.taps(), K = g.K;
  if (P == 0 || K == 0) return;
  // The GEMM adds onto y (beta = 1) when it starts as the bias.
  T beta = 0;
  if (bias) {
    beta = 1;
#pragma omp parallel for schedule(static) if (P * K > 65536)
    for (int64_t p = 0; p < P; ++p) std::memcpy(y + p * K, bias, static_cast<size_t>(K) * sizeof(T));
  }
  if (g.is_pointwise()) {
    check_blas_dims(g, P);
    blas_gemm(false, true, P, K, taps, T(1), x, taps, w, taps, beta, y, K);
    if (relu) relu_rows(y, K, 0, P);
    return;
  }
  const int64_t chunk = chunk_rows(g, sizeof(T), cols_budget);
  check_blas_dims(g, chunk);
  T* cols = scratch<T>(chunk * taps);
  for (int64_t p0 = 0; p0 < P; p0 += chunk) {
    const int64_t rows = std::min(chunk, P - p0);
    im2col(x, cols, g, p0, rows);
    blas_gemm(false, true, rows, K, taps, T(1), cols, taps, w, taps, beta, y + p0 * K, K);
    if (relu) relu_rows(y, K, p0, rows);
  }
}

template <class T>
void conv2d_backward(const T* x, const T* w, const T* dy, T* dx, T* dw, const ConvGeom& g, size_t cols_budget) {
  count_backward_launches(dx != nullptr, dw != nullptr);
  const int64_t P = g.out_pixels(), taps = g.taps(), K = g.K;
  const int64_t nx = g.N * g.H * g.W * g.C, nw = K * taps;
  if (P == 0 || K == 0) {  // no output pixel: both gradients are zero
    if (dx) std::fill(dx, dx + nx, T(0));
    if (dw) std::fill(dw, dw + nw, T(0));
    return;
  }
  if (g.is_pointwise()) {  // cols == x and dcols == dx
    check_blas_dims(g, P);
    if (dw) blas_gemm(true, false, K, taps, P, T(1), dy, K, x, taps, T(0), dw, taps);
    if (dx) blas_gemm(false, false, P, taps, K, T(1), dy, K, w, taps, T(0), dx, taps);
    return;
  }
  if (dx) std::fill(dx, dx + nx, T(0));  // col2im accumulates
  const int64_t chunk = chunk_rows(g, sizeof(T), cols_budget);
  check_blas_dims(g, chunk);
  T* cols = scratch<T>(chunk * taps);  // holds cols for dw, then dcols for dx
  for (int64_t p0 = 0; p0 < P; p0 += chunk) {
    const int64_t rows = std::min(chunk, P - p0);
    const T* dyc = dy + p0 * K;
    if (dw) {
      im2col(x, cols, g, p0, rows);
      blas_gemm(true, false, K, taps, rows, T(1), dyc, K, cols, taps, p0 == 0 ? T(0) : T(1), dw, taps);
    }
    if (dx) {
      blas_gemm(false, false, rows, taps, K, T(1), dyc, K, w, taps, T(0), cols, taps);
      col2im_add(cols, dx, g, p0, rows);
    }
  }
}

#define C3_CONV_INSTANTIATE(T)                                                                   \
  template void relu_rows<T>(T*, int64_t, int64_t, int64_t);                                     \
  template void im2col<T>(const T*, T*, const ConvGeom&, int64_t, int64_t);                      \
  template void col2im_add<T>(const T*, T*, const ConvGeom&, int64_t, int64_t);                  \
  template void conv2d_forward<T>(const T*, const T*, const T*, T*, const ConvGeom&, bool, size_t); \
  template void conv2d_backward<T>(const T*, const T*, const T*, T*, T*, const ConvGeom&, size_t);
C3_CONV_INSTANTIATE(float)
C3_CONV_INSTANTIATE(double)
#undef C3_CONV_INSTANTIATE

}  // namespace kernels::cpu
