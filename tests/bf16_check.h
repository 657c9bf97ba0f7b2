// Checks of bf16 kernels: inputs on the bf16 grid, the reference of a bf16 kernel (the CPU f32
// kernel run on the widened inputs, each output narrowed once with kernels::narrow), and a
// comparison of bf16 arrays in bf16 steps that prints the first mismatches.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "kernels/bf16_math.h"
#include "tests/helpers.h"

namespace c3test {

// Each value rounded to the nearest bf16 (ties to even).
inline std::vector<kernels::bf16> narrow_all(const std::vector<float>& v) {
  std::vector<kernels::bf16> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = kernels::narrow<kernels::bf16>(v[i]);
  return out;
}
// Each bf16 value as its (exact) f32 value.
inline std::vector<float> widen_all(const std::vector<kernels::bf16>& v) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = kernels::widen(v[i]);
  return out;
}

inline bool bf16_is_nan(kernels::bf16 h) { return (h.bits & 0x7fff) > 0x7f80; }

// Steps between two non-NaN bf16 values on the ordered line of bf16 values (+0 and -0 are
// one value; from the largest negative denormal to the smallest positive one is 2 steps).
inline int64_t bf16_steps(kernels::bf16 a, kernels::bf16 b) {
  auto key = [](kernels::bf16 h) { return (h.bits & 0x8000) ? -int64_t(h.bits & 0x7fff) : int64_t(h.bits); };
  const int64_t d = key(a) - key(b);
  return d < 0 ? -d : d;
}

// got[i] == want[i] for every element: the same bits (max_steps = 0), or at most max_steps
// bf16 steps apart; a NaN matches any NaN and nothing else. Prints the first 5 mismatches.
inline bool same_bf16(const std::string& what, const kernels::bf16* got, const kernels::bf16* want, int64_t n,
                      int64_t max_steps = 0) {
  int64_t bad = 0;
  for (int64_t i = 0; i < n; ++i) {
    const bool gn = bf16_is_nan(got[i]), wn = bf16_is_nan(want[i]);
    const bool ok = (gn || wn)        ? (gn && wn)
                    : max_steps == 0 ? got[i].bits == want[i].bits
                                     : bf16_steps(got[i], want[i]) <= max_steps;
    if (!ok) {
      if (bad < 5)
        std::printf("  %s: mismatch at [%lld]: got %.9g (0x%04x), want %.9g (0x%04x)\n", what.c_str(), (long long)i,
                    double(kernels::widen(got[i])), got[i].bits, double(kernels::widen(want[i])), want[i].bits);
      ++bad;
    }
  }
  if (bad)
    std::printf("  %s: %lld of %lld bf16 elements differ (%s)\n", what.c_str(), (long long)bad, (long long)n,
                max_steps == 0 ? "bit for bit" : ("more than " + std::to_string(max_steps) + " steps").c_str());
  return bad == 0;
}
inline bool same_bf16(const std::string& what, const std::vector<kernels::bf16>& got,
                      const std::vector<kernels::bf16>& want, int64_t max_steps = 0) {
  if (got.size() != want.size()) {
    std::printf("  %s: %zu elements, want %zu\n", what.c_str(), got.size(), want.size());
    return false;
  }
  return same_bf16(what, got.data(), want.data(), int64_t(got.size()), max_steps);
}

// Random values in [lo, hi] rounded to bf16, with specials sprinkled in at fixed positions
// when `specials` (one element in 31 each): quiet NaN, -NaN, -0, +0, +-Inf, a tiny negative.
inline std::vector<kernels::bf16> random_bf16s(int64_t n, uint32_t seed, float lo, float hi, bool specials) {
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
  return narrow_all(v);
}

}  // namespace c3test
