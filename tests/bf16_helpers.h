// bf16 kernel tests: inputs on the bf16 grid, the reference of a bf16 kernel (the CPU f32 kernel
// run on the widened inputs, each output rounded once to bf16), and comparisons of bf16 arrays
// that print the first mismatches.
//
// The reference rounding (ref_narrow) uses kernels::narrow but checks each rounding against one
// computed here independently of kernels/bf16_math.h (round to nearest even on 8 significant
// bits, in double), so a broken narrow fails the tests even though the reference uses it too.
// Test-only: ref_narrow reports through doctest (tests/helpers.h).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "kernels/bf16_math.h"
#include "tests/helpers.h"

namespace c3test {
using kernels::bf16;

// Each bf16 value as its (exact) f32 value.
inline std::vector<float> widened(const std::vector<bf16>& v) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = kernels::widen(v[i]);
  return out;
}

// f rounded to the nearest bf16 (ties to even), without bf16_math.h: 8 significant bits, so the
// spacing in [2^(e-1), 2^e) is 2^(e-8), and 2^-133 below the normal range (e = -125). Exact in
// double; past the largest bf16 the float conversion gives the infinity. NaN, +-Inf and +-0 are
// returned as they are.
inline float bf16_rounded_independently(float f) {
  if (!std::isfinite(f) || f == 0.f) return f;
  int e;
  std::frexp(f, &e);
  const double q = std::ldexp(1.0, std::max(e, -125) - 8);
  return float(std::nearbyint(double(f) / q) * q);
}

// Each value rounded once to bf16 with kernels::narrow; fails the test (CHECK) where that
// disagrees with bf16_rounded_independently (the same value and sign; any NaN for a NaN).
// For references and for inputs made from f32 values alike.
inline std::vector<bf16> ref_narrow(const std::vector<float>& v) {
  std::vector<bf16> out(v.size());
  int64_t bad = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    out[i] = kernels::narrow<bf16>(v[i]);
    const float n = kernels::widen(out[i]), want = bf16_rounded_independently(v[i]);
    if (!(n == want && std::signbit(n) == std::signbit(want)) && !(std::isnan(n) && std::isnan(want))) {
      if (bad < 5) std::printf("  ref_narrow: %.9g rounds to %.9g, want %.9g\n", v[i], n, want);
      ++bad;
    }
  }
  CHECK_MESSAGE(bad == 0, bad, " of ", v.size(), " values rounded wrongly by kernels::narrow");
  return out;
}

// n random values in [lo, hi] rounded to bf16 (ref_narrow). With `specials`, fixed positions
// (one element in 31 each) hold a tiny negative (-1e-30), quiet NaN, -NaN, -0, +0 and +-Inf.
inline std::vector<bf16> random_bf16s(int64_t n, uint32_t seed, float lo = -1.f, float hi = 1.f,
                                      bool specials = false) {
  std::vector<float> v = random_floats(n, seed, lo, hi);
  if (specials)
    for (int64_t i = 0; i < n; ++i) {
      float& x = v[size_t(i)];
      switch (i % 31) {
        case 3: x = -1e-30f; break;
        case 7: x = NAN; break;
        case 13: x = -NAN; break;
        case 19: x = -0.f; break;
        case 23: x = 0.f; break;
        case 29: x = i % 2 ? INFINITY : -INFINITY; break;
      }
    }
  return ref_narrow(v);
}

inline bool bf16_is_nan(bf16 h) { return (h.bits & 0x7fff) > 0x7f80; }

// Position of a non-NaN bf16 on the ordered line of bf16 values, in ulps (+0 and -0 are both 0;
// from the largest negative denormal to the smallest positive one is 2 ulps).
inline int64_t bf16_ordinal(bf16 h) { return (h.bits & 0x8000) ? -int64_t(h.bits & 0x7fff) : int64_t(h.bits); }

// got[i] against want[i] for every element, printing the first 5 mismatches and a count. A NaN
// matches any NaN (whatever its sign and payload) and nothing else. Otherwise an element matches
// with the same bits; with max_ulps > 0, also at most max_ulps apart on the bf16 line (then +0
// and -0 are one value); with want_f32 (the f32 reference before rounding), also within atol of
// it (near zero, where an f32 difference of atol spans many bf16 ulps).
inline bool within_bf16_ulps(const std::string& what, const bf16* got, const bf16* want, int64_t n, int64_t max_ulps,
                             const float* want_f32 = nullptr, double atol = 0) {
  int64_t bad = 0, worst = 0;
  for (int64_t i = 0; i < n; ++i) {
    const bool gn = bf16_is_nan(got[i]), wn = bf16_is_nan(want[i]);
    const double g = kernels::widen(got[i]);
    const int64_t d = (gn || wn) ? 0 : std::abs(bf16_ordinal(got[i]) - bf16_ordinal(want[i]));
    const bool ok = (gn || wn) ? (gn && wn)
                               : got[i].bits == want[i].bits || (max_ulps > 0 && d <= max_ulps) ||
                                     (want_f32 && std::abs(g - double(want_f32[i])) <= atol);
    if (ok) continue;
    if (bad < 5) {
      std::printf("  %s: mismatch at [%lld]: got %.9g (0x%04x), want %.9g (0x%04x)", what.c_str(), (long long)i, g,
                  got[i].bits, double(kernels::widen(want[i])), want[i].bits);
      if (!gn && !wn) std::printf(", %lld ulps apart", (long long)d);
      if (want_f32) std::printf(", f32 reference %.9g", double(want_f32[i]));
      std::printf("\n");
    }
    ++bad;
    if (!gn && !wn) worst = std::max(worst, d);
  }
  if (bad) {
    std::printf("  %s: %lld of %lld bf16 elements differ (", what.c_str(), (long long)bad, (long long)n);
    if (max_ulps == 0) std::printf("bit for bit, any NaN matching any NaN");
    else std::printf("more than %lld ulps apart", (long long)max_ulps);
    if (want_f32) std::printf(" and beyond atol %g of the f32 reference", atol);
    if (max_ulps > 0 || want_f32) std::printf("; worst %lld ulps", (long long)worst);
    std::printf(")\n");
  }
  return bad == 0;
}
inline bool within_bf16_ulps(const std::string& what, const std::vector<bf16>& got, const std::vector<bf16>& want,
                             int64_t max_ulps, const std::vector<float>* want_f32 = nullptr, double atol = 0) {
  if (got.size() != want.size() || (want_f32 && want_f32->size() != want.size())) {
    std::printf("  %s: %zu elements, want %zu", what.c_str(), got.size(), want.size());
    if (want_f32) std::printf(" (f32 reference: %zu)", want_f32->size());
    std::printf("\n");
    return false;
  }
  return within_bf16_ulps(what, got.data(), want.data(), int64_t(got.size()), max_ulps,
                          want_f32 ? want_f32->data() : nullptr, atol);
}

// The same bits in every element, except that a NaN matches any NaN (whatever its sign and
// payload); prints the first 5 mismatches.
inline bool same_bf16(const std::string& what, const bf16* got, const bf16* want, int64_t n) {
  return within_bf16_ulps(what, got, want, n, 0);
}
inline bool same_bf16(const std::string& what, const std::vector<bf16>& got, const std::vector<bf16>& want) {
  return within_bf16_ulps(what, got, want, 0);
}

}  // namespace c3test
