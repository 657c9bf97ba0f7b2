#include "kernels/cpu/elementwise.h"

#include <cmath>

namespace kernels::cpu {

template <class T>
void binary(Binary op, const T* a, const T* b, T* out, int64_t n, Bcast bc, int64_t inner) {
#pragma omp parallel for schedule(static) if (n > 32768)
  for (int64_t i = 0; i < n; ++i) out[i] = binary_apply(op, a[i], b[bcast_index(bc, i, inner)]);
}

template <class T> void unary(Unary op, const T* x, T* y, int64_t n, T p0, T p1) {
#pragma omp parallel for schedule(static) if (n > 32768)
  for (int64_t i = 0; i < n; ++i) y[i] = unary_apply(op, x[i], p0, p1);
}

template <class T>
void unary_backward(Unary op, const T* x, const T* y, const T* g, T* gx, int64_t n, T p0, T p1) {
#pragma omp parallel for schedule(static) if (n > 32768)
  for (int64_t i = 0; i < n; ++i) gx[i] = unary_grad(op, x ? x[i] : T(0), y ? y[i] : T(0), g[i], p0, p1);
}

template <class T> void select(const uint8_t* mask, const T* a, const T* b, T* out, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 32768)
  for (int64_t i = 0; i < n; ++i) out[i] = mask[i] ? a[i] : b[i];
}

template <class T> void fill(T* out, int64_t n, T v) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) out[i] = v;
}

template <class T> void axpy(T alpha, const T* x, T* y, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 32768)
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

namespace {
template <class S, class D> void cast_loop(const S* s, D* d, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) d[i] = static_cast<D>(s[i]);
}
template <class S> void cast_from(const S* s, void* dst, int dt, int64_t n) {
  switch (dt) {
    case 0: cast_loop(s, static_cast<float*>(dst), n); break;
    case 1: cast_loop(s, static_cast<double*>(dst), n); break;
    case 2: cast_loop(s, static_cast<int32_t*>(dst), n); break;
    case 3: cast_loop(s, static_cast<uint8_t*>(dst), n); break;
  }
}
}  // namespace

void cast(const void* src, int st, void* dst, int dt, int64_t n) {
  switch (st) {
    case 0: cast_from(static_cast<const float*>(src), dst, dt, n); break;
    case 1: cast_from(static_cast<const double*>(src), dst, dt, n); break;
    case 2: cast_from(static_cast<const int32_t*>(src), dst, dt, n); break;
    case 3: cast_from(static_cast<const uint8_t*>(src), dst, dt, n); break;
  }
}

#define C3_INSTANTIATE(T)                                                                       \
  template void binary<T>(Binary, const T*, const T*, T*, int64_t, Bcast, int64_t);           \
  template void unary<T>(Unary, const T*, T*, int64_t, T, T);                                  \
  template void unary_backward<T>(Unary, const T*, const T*, const T*, T*, int64_t, T, T);     \
  template void select<T>(const uint8_t*, const T*, const T*, T*, int64_t);                    \
  template void axpy<T>(T, const T*, T*, int64_t);
C3_INSTANTIATE(float)
C3_INSTANTIATE(double)
#undef C3_INSTANTIATE
template void fill<float>(float*, int64_t, float);
template void fill<double>(double*, int64_t, double);
template void fill<int32_t>(int32_t*, int64_t, int32_t);
template void fill<uint8_t>(uint8_t*, int64_t, uint8_t);

}  // namespace kernels::cpu
