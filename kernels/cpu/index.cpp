#include "kernels/cpu/index.h"

#include <cstring>

#include "kernels/bf16_math.h"
#include "kernels/index_math.h"
#include "kernels/launch_counter.h"

namespace kernels::cpu {

template <class T>
void copy_rows(const T* src, int64_t src_stride, T* dst, int64_t dst_stride, int64_t rows, int64_t len) {
  count_launch();
  const size_t bytes = size_t(len) * sizeof(T);
#pragma omp parallel for schedule(static) if (rows * len > 65536)
  for (int64_t r = 0; r < rows; ++r) std::memcpy(dst + r * dst_stride, src + r * src_stride, bytes);
}

int64_t first_bad_index(const int32_t* idx, int64_t K, int64_t R) {
  for (int64_t k = 0; k < K; ++k)
    if (idx[k] < 0 || idx[k] >= R) return k;
  return -1;
}

template <class T> void gather_rows(const T* x, const int32_t* idx, T* out, int64_t K, int64_t C) {
  count_launch();
#pragma omp parallel for schedule(static) if (K * C > 65536)
  for (int64_t k = 0; k < K; ++k) std::memcpy(out + k * C, x + int64_t(idx[k]) * C, size_t(C) * sizeof(T));
}

template <class T> void scatter_add_rows(const T* src, const int32_t* idx, T* out, int64_t K, int64_t C) {
  count_launch();
  for (int64_t k = 0; k < K; ++k) {
    T* o = out + int64_t(idx[k]) * C;
    const T* s = src + k * C;
    for (int64_t c = 0; c < C; ++c) o[c] += s[c];
  }
}

template <class T> void l2_normalize_rows(const T* x, T* y, int64_t rows, int64_t C, double eps) {
  count_launch();
#pragma omp parallel for schedule(static) if (rows * C > 32768)
  for (int64_t r = 0; r < rows; ++r) {
    const T* p = x + r * C;
    double ss = 0;
    for (int64_t c = 0; c < C; ++c) ss += double(p[c]) * p[c];
    const double inv = l2n_inv_denom(ss, eps);
    for (int64_t c = 0; c < C; ++c) y[r * C + c] = T(p[c] * inv);
  }
}

template <class T>
void l2_normalize_rows_backward(const T* x, const T* g, T* gx, int64_t rows, int64_t C, double eps) {
  count_launch();
#pragma omp parallel for schedule(static) if (rows * C > 32768)
  for (int64_t r = 0; r < rows; ++r) {
    const T *p = x + r * C, *q = g + r * C;
    double ss = 0, gdx = 0;
    for (int64_t c = 0; c < C; ++c) {
      ss += double(p[c]) * p[c];
      gdx += double(q[c]) * p[c];
    }
    const double inv = l2n_inv_denom(ss, eps), coef = l2n_grad_coef(ss, gdx, eps);
    for (int64_t c = 0; c < C; ++c) gx[r * C + c] = T(q[c] * inv - p[c] * coef);
  }
}

template void copy_rows<float>(const float*, int64_t, float*, int64_t, int64_t, int64_t);
template void copy_rows<double>(const double*, int64_t, double*, int64_t, int64_t, int64_t);
template void copy_rows<int32_t>(const int32_t*, int64_t, int32_t*, int64_t, int64_t, int64_t);
template void copy_rows<uint8_t>(const uint8_t*, int64_t, uint8_t*, int64_t, int64_t, int64_t);
template void copy_rows<bf16>(const bf16*, int64_t, bf16*, int64_t, int64_t, int64_t);
#define C3_INSTANTIATE(T)                                                                    \
  template void gather_rows<T>(const T*, const int32_t*, T*, int64_t, int64_t);              \
  template void scatter_add_rows<T>(const T*, const int32_t*, T*, int64_t, int64_t);         \
  template void l2_normalize_rows<T>(const T*, T*, int64_t, int64_t, double);                \
  template void l2_normalize_rows_backward<T>(const T*, const T*, T*, int64_t, int64_t, double);
C3_INSTANTIATE(float)
C3_INSTANTIATE(double)
template void gather_rows<bf16>(const bf16*, const int32_t*, bf16*, int64_t, int64_t);  // a copy of rows
#undef C3_INSTANTIATE

}  // namespace kernels::cpu
