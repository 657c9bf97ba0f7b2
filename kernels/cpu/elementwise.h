// CPU elementwise kernels (f32 and f64; fill and cast also other dtypes). All write their
// output (never accumulate), except axpy, which updates y in place.
#pragma once
#include <cstdint>

#include "kernels/elementwise_math.h"

namespace kernels::cpu {

template <class T>
void binary(Binary op, const T* a, const T* b, T* out, int64_t n, Bcast bc, int64_t inner);
template <class T> void unary(Unary op, const T* x, T* y, int64_t n, T p0, T p1);
template <class T>
void unary_backward(Unary op, const T* x, const T* y, const T* g, T* gx, int64_t n, T p0, T p1);
// out[i] = mask[i] ? a[i] : b[i]
template <class T> void select(const uint8_t* mask, const T* a, const T* b, T* out, int64_t n);
template <class T> void fill(T* out, int64_t n, T value);
template <class T> void axpy(T alpha, const T* x, T* y, int64_t n);  // y += alpha * x
// Converts between any two of f32, f64, i32, u8, bf16 (dtype codes as c3::DType: 0..4), one
// element as kernels::cast_element (elementwise_math.h).
void cast(const void* src, int src_dtype, void* dst, int dst_dtype, int64_t n);

}  // namespace kernels::cpu
