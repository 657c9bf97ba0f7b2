#include "kernels/cpu/elementwise.h"

#include <cmath>

#include "kernels/launch_counter.h"

namespace kernels::cpu {

// The op (and the broadcast) are chosen once per call, outside the loop: each gets a loop of
// its own that the compiler can vectorize. A switch inside the loop is not hoisted at -O2,
// and made relu's backward 4x slower than its forward.
namespace {

template <Binary OP, Bcast BC, class T>
void binary_loop(const T* a, const T* b, T* out, int64_t n, int64_t inner) {
  if constexpr (BC == Bcast::channel || BC == Bcast::sample) {
    // rows of `inner` elements: b[c] (channel) or b[row] (sample), no division per element
    const int64_t rows = n / inner;
#pragma omp parallel for schedule(static) if (n > 32768)
    for (int64_t r = 0; r < rows; ++r) {
      const T* ar = a + r * inner;
      T* o = out + r * inner;
      if constexpr (BC == Bcast::channel) {
        for (int64_t c = 0; c < inner; ++c) o[c] = binary_apply(OP, ar[c], b[c]);
      } else {
        const T br = b[r];
        for (int64_t c = 0; c < inner; ++c) o[c] = binary_apply(OP, ar[c], br);
      }
    }
  } else {
#pragma omp parallel for schedule(static) if (n > 32768)
    for (int64_t i = 0; i < n; ++i) out[i] = binary_apply(OP, a[i], BC == Bcast::scalar ? b[0] : b[i]);
  }
}

template <Binary OP, class T>
void binary_bcast(const T* a, const T* b, T* out, int64_t n, Bcast bc, int64_t inner) {
  switch (bc) {
    case Bcast::same: return binary_loop<OP, Bcast::same>(a, b, out, n, inner);
    case Bcast::scalar: return binary_loop<OP, Bcast::scalar>(a, b, out, n, inner);
    case Bcast::channel: return binary_loop<OP, Bcast::channel>(a, b, out, n, inner);
    case Bcast::sample: return binary_loop<OP, Bcast::sample>(a, b, out, n, inner);
  }
}

template <Unary OP, class T> void unary_loop(const T* x, T* y, int64_t n, T p0, T p1) {
#pragma omp parallel for schedule(static) if (n > 32768)
  for (int64_t i = 0; i < n; ++i) y[i] = unary_apply(OP, x[i], p0, p1);
}

// x or y may be null when the op's gradient does not read it (a null one reads as 0).
template <Unary OP, bool HAS_X, bool HAS_Y, class T>
void unary_grad_loop(const T* x, const T* y, const T* g, T* gx, int64_t n, T p0, T p1) {
#pragma omp parallel for schedule(static) if (n > 32768)
  for (int64_t i = 0; i < n; ++i) gx[i] = unary_grad(OP, HAS_X ? x[i] : T(0), HAS_Y ? y[i] : T(0), g[i], p0, p1);
}

template <Unary OP, class T>
void unary_grad_op(const T* x, const T* y, const T* g, T* gx, int64_t n, T p0, T p1) {
  if (x && y) unary_grad_loop<OP, true, true>(x, y, g, gx, n, p0, p1);
  else if (x) unary_grad_loop<OP, true, false>(x, y, g, gx, n, p0, p1);
  else if (y) unary_grad_loop<OP, false, true>(x, y, g, gx, n, p0, p1);
  else unary_grad_loop<OP, false, false>(x, y, g, gx, n, p0, p1);
}

// Calls F<op>() with the op as a compile-time constant.
template <class F> void with_unary(Unary op, F&& f) {
  switch (op) {
    case Unary::neg: return f.template operator()<Unary::neg>();
    case Unary::exp: return f.template operator()<Unary::exp>();
    case Unary::log: return f.template operator()<Unary::log>();
    case Unary::relu: return f.template operator()<Unary::relu>();
    case Unary::sigmoid: return f.template operator()<Unary::sigmoid>();
    case Unary::clamp: return f.template operator()<Unary::clamp>();
    case Unary::scale: return f.template operator()<Unary::scale>();
    case Unary::add_scalar: return f.template operator()<Unary::add_scalar>();
    case Unary::sqrt: return f.template operator()<Unary::sqrt>();
    case Unary::square: return f.template operator()<Unary::square>();
    case Unary::abs: return f.template operator()<Unary::abs>();
  }
}

}  // namespace

template <class T>
void binary(Binary op, const T* a, const T* b, T* out, int64_t n, Bcast bc, int64_t inner) {
  count_launch();
  if ((bc == Bcast::channel || bc == Bcast::sample) && (inner <= 0 || n % inner != 0)) {
#pragma omp parallel for schedule(static) if (n > 32768)
    for (int64_t i = 0; i < n; ++i) out[i] = binary_apply(op, a[i], b[bcast_index(bc, i, inner)]);
    return;
  }
  switch (op) {
    case Binary::add: return binary_bcast<Binary::add>(a, b, out, n, bc, inner);
    case Binary::sub: return binary_bcast<Binary::sub>(a, b, out, n, bc, inner);
    case Binary::mul: return binary_bcast<Binary::mul>(a, b, out, n, bc, inner);
    case Binary::div: return binary_bcast<Binary::div>(a, b, out, n, bc, inner);
    case Binary::add_relu: return binary_bcast<Binary::add_relu>(a, b, out, n, bc, inner);
  }
}

template <class T> void unary(Unary op, const T* x, T* y, int64_t n, T p0, T p1) {
  count_launch();
  with_unary(op, [&]<Unary OP>() { unary_loop<OP>(x, y, n, p0, p1); });
}

template <class T>
void unary_backward(Unary op, const T* x, const T* y, const T* g, T* gx, int64_t n, T p0, T p1) {
  count_launch();
  with_unary(op, [&]<Unary OP>() { unary_grad_op<OP>(x, y, g, gx, n, p0, p1); });
}

template <class T> void select(const uint8_t* mask, const T* a, const T* b, T* out, int64_t n) {
  count_launch();
#pragma omp parallel for schedule(static) if (n > 32768)
  for (int64_t i = 0; i < n; ++i) out[i] = mask[i] ? a[i] : b[i];
}

template <class T> void fill(T* out, int64_t n, T v) {
  count_launch();
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) out[i] = v;
}

template <class T> void axpy(T alpha, const T* x, T* y, int64_t n) {
  count_launch();
#pragma omp parallel for schedule(static) if (n > 32768)
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

namespace {
template <class S, class D> void cast_loop(const S* s, D* d, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) d[i] = cast_element<D>(s[i]);
}
template <class S> void cast_from(const S* s, void* dst, int dt, int64_t n) {
  switch (dt) {
    case 0: cast_loop(s, static_cast<float*>(dst), n); break;
    case 1: cast_loop(s, static_cast<double*>(dst), n); break;
    case 2: cast_loop(s, static_cast<int32_t*>(dst), n); break;
    case 3: cast_loop(s, static_cast<uint8_t*>(dst), n); break;
    case 4: cast_loop(s, static_cast<bf16*>(dst), n); break;
  }
}
}  // namespace

void cast(const void* src, int st, void* dst, int dt, int64_t n) {
  count_launch();
  switch (st) {
    case 0: cast_from(static_cast<const float*>(src), dst, dt, n); break;
    case 1: cast_from(static_cast<const double*>(src), dst, dt, n); break;
    case 2: cast_from(static_cast<const int32_t*>(src), dst, dt, n); break;
    case 3: cast_from(static_cast<const uint8_t*>(src), dst, dt, n); break;
    case 4: cast_from(static_cast<const bf16*>(src), dst, dt, n); break;
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
template void fill<bf16>(bf16*, int64_t, bf16);

}  // namespace kernels::cpu
