// bf16 (bfloat16): the upper half of an IEEE f32 (sign, 8 exponent bits, 7 mantissa bits), so
// it covers the f32 range at 8 bits of precision. The element type of DType::bf16 and its
// conversions, shared by the CPU loops and the CUDA kernels (no CUDA header needed).
#pragma once
#include <cstdint>
#include <cstring>

#include "kernels/hd.h"

namespace kernels {

// A plain 2-byte value: the bit pattern, no arithmetic (convert to f32 to compute).
struct bf16 {
  uint16_t bits;
};
static_assert(sizeof(bf16) == 2 && alignof(bf16) == 2, "bf16 must be a 2-byte element");

// f32 -> bf16, rounding to nearest, ties to even (IEEE): values past the largest finite bf16
// by half an ulp or more become +-Inf, +-Inf stay Inf, denormals round like any value. A NaN
// stays a NaN: sign and upper payload kept, quiet bit set (truncating a NaN whose payload
// lies in the lower 16 bits would give Inf).
C3_HD uint16_t bf16_bits_from_f32(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x0040u);
  // Adding 0x7fff rounds up above the halfway point; the kept lowest bit breaks ties to even.
  // A carry into the exponent is the correct next binade (or Inf past the largest finite).
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

// bf16 -> f32 is exact.
C3_HD float bf16_bits_to_f32(uint16_t b) {
  const uint32_t u = uint32_t(b) << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

// f64 -> bf16, correctly rounded (to nearest even). Through f32 rounded to nearest, a value just
// above a bf16 tie could land on the tie and round down; rounding to f32 "to odd" (truncate,
// then set the lowest bit if anything was cut) keeps that information, and with 16 more bits
// than bf16 the second rounding is then exact (Boldo & Melquiond).
C3_HD uint16_t bf16_bits_from_f64(double d) {
  float f = float(d);  // to nearest
  if (f - f == 0.f && double(f) != d) {  // finite and inexact
    uint32_t u;
    memcpy(&u, &f, 4);
    const double af = f < 0.f ? -double(f) : double(f), ad = d < 0 ? -d : d;
    if (af > ad) --u;  // rounded away from zero: step back towards zero (the magnitude bits)
    u |= 1u;           // the cut bits were not zero
    memcpy(&f, &u, 4);
  }
  return bf16_bits_from_f32(f);
}

C3_HD bf16 to_bf16(float f) { return bf16{bf16_bits_from_f32(f)}; }
C3_HD bf16 to_bf16(double d) { return bf16{bf16_bits_from_f64(d)}; }
C3_HD float to_f32(bf16 h) { return bf16_bits_to_f32(h.bits); }

}  // namespace kernels

namespace kernels {

// Kernels written once over their element type T compute in acc_t<T> (f32 for bf16, T itself
// for f32 and f64): widen each element on load, narrow the result once on store. A bf16
// kernel then gives exactly what the f32 kernel gives on the widened inputs, rounded once.
template <class T> struct AccType { using type = T; };
template <> struct AccType<bf16> { using type = float; };
template <class T> using acc_t = typename AccType<T>::type;

template <class T> C3_HD T widen(T v) { return v; }
C3_HD float widen(bf16 v) { return to_f32(v); }
template <class T> C3_HD T narrow(acc_t<T> v) {
  if constexpr (sizeof(T) == 2) return to_bf16(v);  // T is bf16 (the only 2-byte element)
  else return v;
}

}  // namespace kernels
