// Elementwise kernels: grid-stride loops over the shared math of kernels/elementwise_math.h,
// binary, unary and unary backward 16 bytes per access where the buffers allow (memory-bound:
// one 128-bit load or store moves 4 floats or 8 bf16). Every kernel writes its output; axpy
// updates y in place.
#include <algorithm>
#include <cstdint>
#include <initializer_list>

#include "kernels/cuda/check.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/launch_util.h"

namespace kernels::KERNELS_NS {
namespace {
constexpr int kBlock = 256;

#define C3_GRID_STRIDE(i, n) \
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

// Templated over the element type T (float or bf16): each element is widened on load, the
// math runs in acc_t<T> (float for both), and the result is narrowed once on store. For f32,
// widen and narrow are identities: the float kernels are the plain loops they always were.
template <class T>
__global__ void binary_kernel(Binary op, const T* a, const T* b, T* out, int64_t n, Bcast bc, int64_t inner) {
  C3_GRID_STRIDE(i, n) out[i] = narrow<T>(binary_apply(op, widen(a[i]), widen(b[bcast_index(bc, i, inner)])));
}
template <class T> __global__ void unary_kernel(Unary op, const T* x, T* y, int64_t n, float p0, float p1) {
  C3_GRID_STRIDE(i, n) y[i] = narrow<T>(unary_apply(op, widen(x[i]), p0, p1));
}
template <class T>
__global__ void unary_backward_kernel(Unary op, const T* x, const T* y, const T* g, T* gx, int64_t n, float p0,
                                      float p1) {
  C3_GRID_STRIDE(i, n) {
    gx[i] = narrow<T>(unary_grad(op, x ? widen(x[i]) : 0.f, y ? widen(y[i]) : 0.f, widen(g[i]), p0, p1));
  }
}

// The same three kernels 16 bytes at a time (V = lanes16<T>: 4 float, 8 bf16) for buffers that
// are 16-byte aligned (vec16() checks): thread t takes element groups t, t + stride, ...,
// each lane the scalar kernel's function, so the bits are the same; the n % V elements past
// the last whole group go to the first threads of the grid, one each. b is read 16 bytes at a
// time when it has a's shape, else element by element through bcast_index.
#define C3_VEC16_TAIL(i, n, V)                                                                  \
  for (int64_t i = (n) / (V) * (V) + blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (n); \
       i += (int64_t)gridDim.x * blockDim.x)
template <class T>
__global__ void binary16_kernel(Binary op, const T* a, const T* b, T* out, int64_t n, Bcast bc, int64_t inner) {
  constexpr int V = lanes16<T>;
  using Vec = decltype(ld16(a));
  C3_GRID_STRIDE(iv, n / V) {
    const int64_t i0 = V * iv;
    Vec av = ld16(a + i0), bv = bc == Bcast::same ? ld16(b + i0) : Vec{}, ov;
#pragma unroll
    for (int k = 0; k < V; ++k) {
      const acc_t<T> bk = bc == Bcast::same ? widen(lane(bv, k)) : widen(b[bcast_index(bc, i0 + k, inner)]);
      lane(ov, k) = narrow<T>(binary_apply(op, widen(lane(av, k)), bk));
    }
    st16(out + i0, ov);
  }
  C3_VEC16_TAIL(i, n, V) out[i] = narrow<T>(binary_apply(op, widen(a[i]), widen(b[bcast_index(bc, i, inner)])));
}
template <class T> __global__ void unary16_kernel(Unary op, const T* x, T* y, int64_t n, float p0, float p1) {
  constexpr int V = lanes16<T>;
  using Vec = decltype(ld16(x));
  C3_GRID_STRIDE(iv, n / V) {
    Vec xv = ld16(x + V * iv), yv;
#pragma unroll
    for (int k = 0; k < V; ++k) lane(yv, k) = narrow<T>(unary_apply(op, widen(lane(xv, k)), p0, p1));
    st16(y + V * iv, yv);
  }
  C3_VEC16_TAIL(i, n, V) y[i] = narrow<T>(unary_apply(op, widen(x[i]), p0, p1));
}
template <class T>
__global__ void unary_backward16_kernel(Unary op, const T* x, const T* y, const T* g, T* gx, int64_t n, float p0,
                                        float p1) {
  constexpr int V = lanes16<T>;
  using Vec = decltype(ld16(g));
  C3_GRID_STRIDE(iv, n / V) {
    const int64_t i0 = V * iv;
    Vec xv = x ? ld16(x + i0) : Vec{}, yv = y ? ld16(y + i0) : Vec{}, gv = ld16(g + i0), ov;
#pragma unroll
    for (int k = 0; k < V; ++k)
      lane(ov, k) = narrow<T>(unary_grad(op, x ? widen(lane(xv, k)) : 0.f, y ? widen(lane(yv, k)) : 0.f,
                                         widen(lane(gv, k)), p0, p1));
    st16(gx + i0, ov);
  }
  C3_VEC16_TAIL(i, n, V) {
    gx[i] = narrow<T>(unary_grad(op, x ? widen(x[i]) : 0.f, y ? widen(y[i]) : 0.f, widen(g[i]), p0, p1));
  }
}

// A pure copy: the chosen element's bits, whatever the type.
template <class T> __global__ void select_kernel(const uint8_t* mask, const T* a, const T* b, T* out, int64_t n) {
  C3_GRID_STRIDE(i, n) out[i] = mask[i] ? a[i] : b[i];
}
__global__ void fill4_kernel(uint32_t* out, int64_t n, uint32_t bits) { C3_GRID_STRIDE(i, n) out[i] = bits; }
__global__ void fill2_kernel(uint16_t* out, int64_t n, uint16_t bits) { C3_GRID_STRIDE(i, n) out[i] = bits; }
__global__ void fill1_kernel(uint8_t* out, int64_t n, uint8_t v) { C3_GRID_STRIDE(i, n) out[i] = v; }
__global__ void write_small_kernel(int32_t* out, SmallI32 values) {
  for (int i = threadIdx.x; i < values.n; i += blockDim.x) out[i] = values.v[i];
}
// y + alpha * x, rounded once (for bf16, y is read and written as bf16 on every call).
template <class T> __global__ void axpy_kernel(float alpha, const T* x, T* y, int64_t n) {
  C3_GRID_STRIDE(i, n) {
    const acc_t<T> ax = alpha * widen(x[i]);
    y[i] = narrow<T>(widen(y[i]) + ax);
  }
}

template <class S, class D> __global__ void cast_kernel(const S* s, D* d, int64_t n) {
  C3_GRID_STRIDE(i, n) d[i] = cast_element<D>(s[i]);
}
template <class S> void cast_from(const S* s, void* dst, int dt, int64_t n) {
  dim3 g = grid_for(n, kBlock);
  switch (dt) {
    case 0: LAUNCH_CHECK(launch(cast_kernel<S, float>, g, kBlock, 0, nullptr, s, (float*)dst, n)); break;
    case 1: LAUNCH_CHECK(launch(cast_kernel<S, double>, g, kBlock, 0, nullptr, s, (double*)dst, n)); break;
    case 2: LAUNCH_CHECK(launch(cast_kernel<S, int32_t>, g, kBlock, 0, nullptr, s, (int32_t*)dst, n)); break;
    case 3: LAUNCH_CHECK(launch(cast_kernel<S, uint8_t>, g, kBlock, 0, nullptr, s, (uint8_t*)dst, n)); break;
    case 4: LAUNCH_CHECK(launch(cast_kernel<S, bf16>, g, kBlock, 0, nullptr, s, (bf16*)dst, n)); break;
  }
}

// The 16-byte kernels take buffers whose every (non-null) pointer is 16-byte aligned; their grid
// covers the n / V groups and the tail (fewer than V elements).
bool vec16(std::initializer_list<const void*> ps) {
  for (const void* p : ps)
    if (reinterpret_cast<uintptr_t>(p) % 16 != 0) return false;
  return true;
}
template <class T> dim3 grid16(int64_t n) { return grid_for(std::max<int64_t>(n / lanes16<T>, 1), kBlock); }

// The launches, one helper per kernel for both element types.
template <class T> void binary_t(Binary op, const T* a, const T* b, T* out, int64_t n, Bcast bc, int64_t inner) {
  if (n == 0) return;
  if (vec16({a, out, bc == Bcast::same ? b : nullptr})) {
    LAUNCH_CHECK(launch(binary16_kernel<T>, grid16<T>(n), kBlock, 0, nullptr, op, a, b, out, n, bc, inner));
    return;
  }
  LAUNCH_CHECK(launch(binary_kernel<T>, grid_for(n, kBlock), kBlock, 0, nullptr, op, a, b, out, n, bc, inner));
}
template <class T> void unary_t(Unary op, const T* x, T* y, int64_t n, float p0, float p1) {
  if (n == 0) return;
  if (vec16({x, y})) {
    LAUNCH_CHECK(launch(unary16_kernel<T>, grid16<T>(n), kBlock, 0, nullptr, op, x, y, n, p0, p1));
    return;
  }
  LAUNCH_CHECK(launch(unary_kernel<T>, grid_for(n, kBlock), kBlock, 0, nullptr, op, x, y, n, p0, p1));
}
template <class T>
void unary_backward_t(Unary op, const T* x, const T* y, const T* g, T* gx, int64_t n, float p0, float p1) {
  if (n == 0) return;
  if (vec16({x, y, g, gx})) {
    LAUNCH_CHECK(
        launch(unary_backward16_kernel<T>, grid16<T>(n), kBlock, 0, nullptr, op, x, y, g, gx, n, p0, p1));
    return;
  }
  LAUNCH_CHECK(
      launch(unary_backward_kernel<T>, grid_for(n, kBlock), kBlock, 0, nullptr, op, x, y, g, gx, n, p0, p1));
}
template <class T> void select_t(const uint8_t* mask, const T* a, const T* b, T* out, int64_t n) {
  if (n == 0) return;
  LAUNCH_CHECK(launch(select_kernel<T>, grid_for(n, kBlock), kBlock, 0, nullptr, mask, a, b, out, n));
}
template <class T> void axpy_t(float alpha, const T* x, T* y, int64_t n) {
  if (n == 0) return;
  LAUNCH_CHECK(launch(axpy_kernel<T>, grid_for(n, kBlock), kBlock, 0, nullptr, alpha, x, y, n));
}
}  // namespace

void binary_f32(Binary op, const float* a, const float* b, float* out, int64_t n, Bcast bc, int64_t inner) {
  binary_t(op, a, b, out, n, bc, inner);
}
void binary_bf16(Binary op, const bf16* a, const bf16* b, bf16* out, int64_t n, Bcast bc, int64_t inner) {
  binary_t(op, a, b, out, n, bc, inner);
}
void unary_f32(Unary op, const float* x, float* y, int64_t n, float p0, float p1) { unary_t(op, x, y, n, p0, p1); }
void unary_bf16(Unary op, const bf16* x, bf16* y, int64_t n, float p0, float p1) { unary_t(op, x, y, n, p0, p1); }
void unary_backward_f32(Unary op, const float* x, const float* y, const float* g, float* gx, int64_t n, float p0,
                        float p1) {
  unary_backward_t(op, x, y, g, gx, n, p0, p1);
}
void unary_backward_bf16(Unary op, const bf16* x, const bf16* y, const bf16* g, bf16* gx, int64_t n, float p0,
                         float p1) {
  unary_backward_t(op, x, y, g, gx, n, p0, p1);
}
void select_f32(const uint8_t* mask, const float* a, const float* b, float* out, int64_t n) {
  select_t(mask, a, b, out, n);
}
void fill_bytes4(void* out, int64_t n, uint32_t bits) {
  if (n == 0) return;
  LAUNCH_CHECK(launch(fill4_kernel, grid_for(n, kBlock), kBlock, 0, nullptr, (uint32_t*)out, n, bits));
}
void fill_bytes2(void* out, int64_t n, uint16_t bits) {
  if (n == 0) return;
  LAUNCH_CHECK(launch(fill2_kernel, grid_for(n, kBlock), kBlock, 0, nullptr, (uint16_t*)out, n, bits));
}
void write_small_i32(int32_t* out, const SmallI32& values) {
  if (values.n <= 0) return;
  LAUNCH_CHECK(launch(write_small_kernel, dim3(1), dim3(kBlock), 0, nullptr, out, values));
}
void fill_u8(uint8_t* out, int64_t n, uint8_t v) {
  if (n == 0) return;
  LAUNCH_CHECK(launch(fill1_kernel, grid_for(n, kBlock), kBlock, 0, nullptr, out, n, v));
}
void axpy_f32(float alpha, const float* x, float* y, int64_t n) { axpy_t(alpha, x, y, n); }
void cast(const void* src, int st, void* dst, int dt, int64_t n) {
  if (n == 0) return;
  switch (st) {
    case 0: cast_from((const float*)src, dst, dt, n); break;
    case 1: cast_from((const double*)src, dst, dt, n); break;
    case 2: cast_from((const int32_t*)src, dst, dt, n); break;
    case 3: cast_from((const uint8_t*)src, dst, dt, n); break;
    case 4: cast_from((const bf16*)src, dst, dt, n); break;
  }
}

}  // namespace kernels::KERNELS_NS
