// Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as 1, 2, 3",
// SC'11) and the conversions from its 32-bit words to floats, normals, integers and masks,
// written once for the CPU loops and the CUDA kernels, so a (seed, offset) pair gives the same
// numbers on both. Checked against the known-answer vectors of Random123 (tests/kat_vectors).
//
// COUNTER CONVENTION (every draw of the engine follows it):
//   key     = { seed & 0xffffffff, seed >> 32 }
//   element i of a draw that starts at block `offset` reads lane i % 4 of
//   counter = { (offset + i/4) & 0xffffffff, (offset + i/4) >> 32, stream, attempt }
//   with attempt = 0. A draw of n elements therefore consumes ceil(n / 4) 128-bit blocks.
//   The Generator (core/rng.h) uses stream 0; other users may pick another stream id to get
//   an independent sequence under the same seed.
//   attempt > 0 is used only by rejection sampling (integers): when lane i%4 of attempt 0 is
//   rejected, the element retries with attempt 1, 2, ... of the SAME counter and lane. So the
//   value of element i depends only on (seed, offset, stream, i), never on thread timing, and
//   retries consume no extra offset.
//
// Normals use Box-Muller on pairs of lanes: lanes (0,1) give elements 4g, 4g+1 (cos, sin),
// lanes (2,3) give 4g+2, 4g+3. Still four outputs per block.
#pragma once
#include <cmath>
#include <cstdint>

#include "kernels/hd.h"

namespace kernels {

constexpr uint32_t kPhiloxM0 = 0xD2511F53u;  // round multipliers
constexpr uint32_t kPhiloxM1 = 0xCD9E8D57u;
constexpr uint32_t kPhiloxW0 = 0x9E3779B9u;  // key schedule (golden ratio, sqrt(3) - 1)
constexpr uint32_t kPhiloxW1 = 0xBB67AE85u;

struct PhiloxBlock {
  uint32_t w[4];
};

// Where a draw starts: see the counter convention above.
struct PhiloxDraw {
  uint64_t seed = 0;
  uint64_t offset = 0;  // in 128-bit blocks
  uint32_t stream = 0;
};

// One Philox round: two 32x32->64 multiplies, the high halves xored with the other words
// and the key, the words permuted.
C3_HD PhiloxBlock philox_round(PhiloxBlock c, uint32_t k0, uint32_t k1) {
  const uint64_t p0 = uint64_t(kPhiloxM0) * c.w[0];
  const uint64_t p1 = uint64_t(kPhiloxM1) * c.w[2];
  PhiloxBlock o;
  o.w[0] = uint32_t(p1 >> 32) ^ c.w[1] ^ k0;
  o.w[1] = uint32_t(p1);
  o.w[2] = uint32_t(p0 >> 32) ^ c.w[3] ^ k1;
  o.w[3] = uint32_t(p0);
  return o;
}

// Ten rounds; the key is bumped by (W0, W1) before every round but the first.
C3_HD PhiloxBlock philox4x32_10(PhiloxBlock ctr, uint32_t k0, uint32_t k1) {
#pragma unroll
  for (int r = 0; r < 10; ++r) {
    if (r > 0) {
      k0 += kPhiloxW0;
      k1 += kPhiloxW1;
    }
    ctr = philox_round(ctr, k0, k1);
  }
  return ctr;
}

// The block of element group g (elements 4g .. 4g+3) of a draw.
C3_HD PhiloxBlock philox_group(const PhiloxDraw& d, uint64_t g, uint32_t attempt = 0) {
  const uint64_t c = d.offset + g;  // wraps modulo 2^64, like the counter itself
  PhiloxBlock ctr;
  ctr.w[0] = uint32_t(c);
  ctr.w[1] = uint32_t(c >> 32);
  ctr.w[2] = d.stream;
  ctr.w[3] = attempt;
  return philox4x32_10(ctr, uint32_t(d.seed), uint32_t(d.seed >> 32));
}

// Uniform float in [0, 1): the top 24 bits times 2^-24. Every value is exact (a float has a
// 24-bit significand), the grid is even, and the largest value is 1 - 2^-24, never 1.
C3_HD float bits_to_unit(uint32_t x) { return float(x >> 8) * 5.9604644775390625e-8f; }

// b + s * a rounded to float, identically on every backend: a and s are floats (24-bit
// significands) so s * a is exact in double, and one double addition then one conversion
// follow. nvcc may contract the expression into an FMA; with an exact product the FMA
// rounds the same way, so the CPU and the GPU agree bit for bit.
C3_HD float affine_exact(float a, float s, float b) { return float(double(b) + double(s) * double(a)); }

// Uniform in [lo, hi). Rounding can carry lo + (hi - lo) * u up to hi (e.g. lo = 1, hi = 2,
// u = 1 - 2^-24: the tie rounds to 2); such a value becomes the float just below hi.
C3_HD float bits_to_uniform(uint32_t x, float lo, float hi) {
  const float v = affine_exact(bits_to_unit(x), hi - lo, lo);
  return v < hi ? v : nextafterf(hi, lo);
}

// Box-Muller: two words -> two independent N(0, 1). u1 = (top24 + 1) * 2^-24 lies in (0, 1],
// so log never sees 0; hence |z| <= sqrt(2 * 24 * ln 2) = 5.77 (the normal's mass beyond is
// 8e-9). logf, sqrtf, cosf, sinf of the GPU are within 1-2 ulp of glibc's, so normals agree
// between CPU and GPU to a few ulp, not bit for bit (the emulator uses glibc: exact there).
C3_HD void box_muller(uint32_t a, uint32_t b, float& z0, float& z1) {
  const float u1 = float((a >> 8) + 1u) * 5.9604644775390625e-8f;
  const float u2 = bits_to_unit(b);
  const float r = sqrtf(-2.0f * logf(u1));
  const float t = 6.28318530717958647692f * u2;
  z0 = r * cosf(t);
  z1 = r * sinf(t);
}

// Lemire's multiply-shift with rejection ("Fast random integer generation in an interval",
// ACM TOMACS 2019): an exactly unbiased integer in [0, range), range in [1, 2^32].
// Returns false when x falls in the short tail that would bias the result (probability
// (2^32 mod range) / 2^32 < range / 2^32); the caller then draws again (see philox_below).
C3_HD bool lemire_below(uint32_t x, uint64_t range, uint32_t& out) {
  if (range >= (uint64_t(1) << 32)) {
    out = x;
    return true;
  }
  const uint32_t s = uint32_t(range);
  const uint64_t m = uint64_t(x) * s;
  const uint32_t low = uint32_t(m);
  if (low < s) {
    const uint32_t threshold = (0u - s) % s;  // 2^32 mod s
    if (low < threshold) return false;
  }
  out = uint32_t(m >> 32);
  return true;
}

// Element i of an integer draw in [0, range): lane i%4 of the group's block, retried with
// attempt 1, 2, ... of the same counter and lane on rejection (deterministic per counter).
// `first` is that lane of attempt 0, already computed by the caller for the whole group.
C3_HD uint32_t philox_below(const PhiloxDraw& d, uint64_t i, uint64_t range, uint32_t first) {
  uint32_t out = 0;
  uint32_t x = first;
  for (uint32_t attempt = 1; !lemire_below(x, range, out); ++attempt) x = philox_group(d, i / 4, attempt).w[i % 4];
  return out;
}
C3_HD uint32_t philox_below(const PhiloxDraw& d, uint64_t i, uint64_t range) {
  return philox_below(d, i, range, philox_group(d, i / 4).w[i % 4]);
}

// P(mask = 1) = threshold / 2^32 for a word x: mask = x < threshold. p = 1 gives 2^32
// (always 1), p = 0 gives 0 (never); in between, p is rounded to a multiple of 2^-32.
inline uint64_t bernoulli_threshold(double p) {
  if (!(p > 0)) return 0;
  if (p >= 1) return uint64_t(1) << 32;
  return uint64_t(std::llround(std::ldexp(p, 32)));
}

// ---- The four outputs of element group g, one functor per distribution. Both backends run
// ---- them over the groups of a buffer and write min(4, n - 4g) of the outputs.

struct BitsGroup {  // raw words (tests, hashing)
  C3_HD void operator()(const PhiloxDraw& d, uint64_t g, uint32_t* o) const {
    const PhiloxBlock b = philox_group(d, g);
    for (int k = 0; k < 4; ++k) o[k] = b.w[k];
  }
};

struct UniformGroup {
  float lo, hi;
  C3_HD void operator()(const PhiloxDraw& d, uint64_t g, float* o) const {
    const PhiloxBlock b = philox_group(d, g);
    for (int k = 0; k < 4; ++k) o[k] = bits_to_uniform(b.w[k], lo, hi);
  }
};

struct NormalGroup {
  float mean, std;
  C3_HD void operator()(const PhiloxDraw& d, uint64_t g, float* o) const {
    const PhiloxBlock b = philox_group(d, g);
    float z[4];
    box_muller(b.w[0], b.w[1], z[0], z[1]);
    box_muller(b.w[2], b.w[3], z[2], z[3]);
    for (int k = 0; k < 4; ++k) o[k] = affine_exact(z[k], std, mean);
  }
};

struct RandintGroup {  // lo + [0, range), range in [1, 2^32]; lo + range - 1 must fit int32
  int64_t lo;
  uint64_t range;
  C3_HD void operator()(const PhiloxDraw& d, uint64_t g, int32_t* o) const {
    const PhiloxBlock b = philox_group(d, g);
    for (int k = 0; k < 4; ++k) o[k] = int32_t(lo + int64_t(philox_below(d, 4 * g + k, range, b.w[k])));
  }
};

struct BernoulliGroup {  // 1 with probability threshold / 2^32 (bernoulli_threshold)
  uint64_t threshold;
  C3_HD void operator()(const PhiloxDraw& d, uint64_t g, uint8_t* o) const {
    const PhiloxBlock b = philox_group(d, g);
    for (int k = 0; k < 4; ++k) o[k] = uint64_t(b.w[k]) < threshold ? 1 : 0;
  }
};

// Groups of 4 a draw of n elements consumes: its offset advance.
C3_HD uint64_t philox_groups(int64_t n) { return n > 0 ? (uint64_t(n) + 3) / 4 : 0; }

}  // namespace kernels
