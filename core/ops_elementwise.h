// Elementwise ops, differentiable. Binary ops broadcast their second operand in four ways
// (NHWC): same shape; one element; per channel ([C] or [1,..,1,C], the last dim); per sample
// ([N,1,..,1], the first dim). Anything else is an error naming both shapes.
#pragma once
#include "core/tensor.h"

namespace c3 {

Tensor add(const Tensor& a, const Tensor& b);
// relu(a + b) in one pass (a residual block's end); backward reads only the output.
Tensor add_relu(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor add(const Tensor& a, double s);
Tensor mul(const Tensor& a, double s);
inline Tensor sub(const Tensor& a, double s) { return add(a, -s); }
inline Tensor div(const Tensor& a, double s) { return mul(a, 1.0 / s); }

Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor relu(const Tensor& x);
// relu's gradient read from its output: g where y > 0, else 0 (y > 0 exactly where relu's input
// was; a NaN passes nothing). Records nothing: the backward of ops with a fused ReLU.
Tensor relu_grad_from_output(const Tensor& g, const Tensor& y);
Tensor sigmoid(const Tensor& x);
Tensor clamp(const Tensor& x, double lo, double hi);
Tensor sqrt(const Tensor& x);
Tensor square(const Tensor& x);
Tensor abs(const Tensor& x);

// out = mask ? a : b, mask u8 of the same shape (or broadcast like b above).
Tensor where(const Tensor& mask, const Tensor& a, const Tensor& b);

// In place, no autograd (the tensor must not require grad). bf16 tensors: CPU only.
void fill_(const Tensor& t, double value);
void axpy_(const Tensor& y, double alpha, const Tensor& x);  // y += alpha * x
// Between any two dtypes (f64 on the CPU only). Into bf16: rounded to nearest even, overflow
// to +-Inf, NaN stays NaN; out of bf16: exact (to f32 and f64). To i32 and u8: truncated
// towards zero (the value must fit). Differentiable between floating dtypes (f32, f64, bf16:
// the gradient is cast back); cast_raw records nothing.
Tensor cast(const Tensor& x, DType to);
Tensor cast_raw(const Tensor& x, DType to);
// A 1-D i32 tensor of a few host values (up to 1000) on `device`, carried to a GPU in a
// kernel's arguments: no wait for the device, no page-locked memory, not a host sync. More
// values go as an ordinary upload (counted in host_syncs()).
Tensor small_i32(const std::vector<int32_t>& values, Device device);

inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator-(const Tensor& a) { return neg(a); }
inline Tensor operator*(const Tensor& a, double s) { return mul(a, s); }
inline Tensor operator*(double s, const Tensor& a) { return mul(a, s); }
inline Tensor operator+(const Tensor& a, double s) { return add(a, s); }
inline Tensor operator-(const Tensor& a, double s) { return add(a, -s); }

}  // namespace c3
