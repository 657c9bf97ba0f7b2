// Per-element arithmetic shared by the CPU loops and the CUDA kernels (written once).
#pragma once
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "kernels/bf16_math.h"
#include "kernels/hd.h"

namespace kernels {

// Float and double overloads that resolve the same way under nvcc and g++.
C3_HD float c3_exp(float x) { return expf(x); }
C3_HD double c3_exp(double x) { return ::exp(x); }
C3_HD float c3_log(float x) { return logf(x); }
C3_HD double c3_log(double x) { return ::log(x); }
C3_HD float c3_sqrt(float x) { return sqrtf(x); }
C3_HD double c3_sqrt(double x) { return ::sqrt(x); }

enum class Binary : int { add, sub, mul, div, add_relu };  // add_relu: relu(a + b), a residual's end
// How the second operand of a binary op maps onto the first (a has n elements):
//   same: b[i]; scalar: b[0]; channel: b[i % inner] (inner = C, NHWC); sample: b[i / inner].
enum class Bcast : int { same, scalar, channel, sample };
// A few i32 values passed to a kernel by value (kernel arguments: at most 4 KB).
constexpr int kSmallValues = 1000;
struct SmallI32 {
  int32_t n = 0;
  int32_t v[kSmallValues];
};

enum class Unary : int { neg, exp, log, relu, sigmoid, clamp, scale, add_scalar, sqrt, square, abs };

C3_HD int64_t bcast_index(Bcast bc, int64_t i, int64_t inner) {
  switch (bc) {
    case Bcast::same: return i;
    case Bcast::scalar: return 0;
    case Bcast::channel: return i % inner;
    case Bcast::sample: return i / inner;
  }
  return i;
}

template <class T> C3_HD T binary_apply(Binary op, T a, T b) {
  switch (op) {
    case Binary::add: return a + b;
    case Binary::sub: return a - b;
    case Binary::mul: return a * b;
    case Binary::div: return a / b;
    case Binary::add_relu: {
      const T s = a + b;
      return !(s <= T(0)) ? s : T(0);  // NaN stays NaN, as relu
    }
  }
  return a;
}

// p0, p1: clamp bounds; the factor of scale; the addend of add_scalar.
template <class T> C3_HD T unary_apply(Unary op, T x, T p0, T p1) {
  switch (op) {
    case Unary::neg: return -x;
    case Unary::exp: return c3_exp(x);
    case Unary::log: return c3_log(x);
    case Unary::relu: return !(x <= T(0)) ? x : T(0);  // NaN stays NaN (as PyTorch's); no branch
    case Unary::sigmoid: return T(1) / (T(1) + c3_exp(-x));
    case Unary::clamp: return x < p0 ? p0 : (x > p1 ? p1 : x);
    case Unary::scale: return x * p0;
    case Unary::add_scalar: return x + p0;
    case Unary::sqrt: return c3_sqrt(x);
    case Unary::square: return x * x;
    case Unary::abs: return x < T(0) ? -x : x;
  }
  return x;
}

// d(out)/d(x) * g, from the input x and the output y (whichever is cheaper is used).
// relu and clamp pass the gradient where the input is strictly inside the active range.
template <class T> C3_HD T unary_grad(Unary op, T x, T y, T g, T p0, T p1) {
  switch (op) {
    case Unary::neg: return -g;
    case Unary::exp: return g * y;
    case Unary::log: return g / x;
    case Unary::relu: return x > T(0) ? g : T(0);
    case Unary::sigmoid: return g * y * (T(1) - y);
    case Unary::clamp: return (x >= p0 && x <= p1) ? g : T(0);
    case Unary::scale: return g * p0;
    case Unary::add_scalar: return g;
    case Unary::sqrt: return g / (T(2) * y);
    case Unary::square: return g * T(2) * x;
    case Unary::abs: return x < T(0) ? -g : (x > T(0) ? g : T(0));
  }
  return g;
}

// One element of cast: static_cast between the built-in types (as C++: f32 -> u8 truncates);
// into bf16 rounded to nearest even (integers through f64, which holds every i32 exactly);
// out of bf16 through its exact f32 value.
template <class D, class S> C3_HD D cast_element(S s) {
  if constexpr (std::is_same_v<S, D>) {
    return s;
  } else if constexpr (std::is_same_v<D, bf16>) {
    if constexpr (std::is_same_v<S, float>) return to_bf16(s);
    else return to_bf16(static_cast<double>(s));
  } else if constexpr (std::is_same_v<S, bf16>) {
    return static_cast<D>(to_f32(s));
  } else {
    return static_cast<D>(s);
  }
}

}  // namespace kernels
