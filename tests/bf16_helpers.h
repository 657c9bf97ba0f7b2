// bf16 kernel tests: the reference is the CPU f32 kernel run on the widened inputs, its outputs
// rounded once to bf16 (kernels::narrow). ref_narrow also checks each rounding against one
// computed here independently (round to nearest even on 8 significant bits, in double), so a
// broken narrow fails the tests even though the reference uses it too.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "kernels/bf16_math.h"
#include "tests/helpers.h"

namespace c3test {
using kernels::bf16;

inline std::vector<float> widened(const std::vector<bf16>& v) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = kernels::widen(v[i]);
  return out;
}

// Random values already on the bf16 grid (f32 draws rounded to nearest).
inline std::vector<bf16> random_bf16s(int64_t n, uint32_t seed, float lo = -1.f, float hi = 1.f) {
  std::vector<bf16> out;
  for (float f : random_floats(n, seed, lo, hi)) out.push_back(kernels::narrow<bf16>(f));
  return out;
}

// f rounded to the nearest bf16 (ties to even), without bf16_math.h: 8 significant bits, so the
// spacing in [2^(e-1), 2^e) is 2^(e-8), and 2^-133 below the normal range (e = -125). Exact in
// double; past the largest bf16 the float conversion gives the infinity.
inline float bf16_rounded_independently(float f) {
  if (!std::isfinite(f) || f == 0.f) return f;
  int e;
  std::frexp(f, &e);
  const double q = std::ldexp(1.0, std::max(e, -125) - 8);
  return float(std::nearbyint(double(f) / q) * q);
}

// The f32 reference outputs rounded once with kernels::narrow; fails the test where that
// disagrees with the rounding above.
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

// Same bits everywhere; prints the first mismatches.
inline bool same_bits(const std::string& what, const bf16* got, const bf16* want, int64_t n) {
  int64_t bad = 0;
  for (int64_t i = 0; i < n; ++i)
    if (got[i].bits != want[i].bits) {
      if (bad < 5)
        std::printf("  %s: mismatch at [%lld]: got %.9g (0x%04x), want %.9g (0x%04x)\n", what.c_str(), (long long)i,
                    kernels::widen(got[i]), got[i].bits, kernels::widen(want[i]), want[i].bits);
      ++bad;
    }
  if (bad) std::printf("  %s: %lld of %lld elements differ\n", what.c_str(), (long long)bad, (long long)n);
  return bad == 0;
}
inline bool same_bits(const std::string& what, const std::vector<bf16>& got, const std::vector<bf16>& want) {
  return got.size() == want.size() && same_bits(what, got.data(), want.data(), int64_t(got.size()));
}

// Position of a bf16 on the number line in ulps (+0 and -0 both 0).
inline int bf16_ordinal(bf16 h) { return h.bits & 0x8000 ? -int(h.bits & 0x7fff) : int(h.bits); }

// got within max_ulps bf16 ulps of want (the rounded reference), or within atol of the f32
// reference before rounding (near zero, where an f32 difference of atol spans many bf16 ulps).
inline bool within_bf16_ulps(const std::string& what, const std::vector<bf16>& got, const std::vector<bf16>& want,
                             const std::vector<float>& want_f32, int max_ulps, double atol) {
  int64_t bad = 0;
  int worst = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const int d = std::abs(bf16_ordinal(got[i]) - bf16_ordinal(want[i]));
    const double g = kernels::widen(got[i]);
    if (d <= max_ulps || std::abs(g - double(want_f32[i])) <= atol) continue;
    if (bad < 5)
      std::printf("  %s: mismatch at [%zu]: got %.9g, want %.9g (%d ulps; f32 reference %.9g)\n", what.c_str(), i, g,
                  kernels::widen(want[i]), d, want_f32[i]);
    ++bad;
    worst = std::max(worst, d);
  }
  if (bad)
    std::printf("  %s: %lld of %zu elements beyond %d ulps and atol %g (worst %d ulps)\n", what.c_str(),
                (long long)bad, got.size(), max_ulps, atol, worst);
  return bad == 0 && got.size() == want.size();
}

}  // namespace c3test
