// A small deterministic RNG for data loading and augmentation.
//
// Why not core's Philox: augmentation runs on loader threads and must give the same numbers
// whatever thread handles a sample, so every sample gets its OWN generator, seeded by
// hashing (run seed, stream, epoch, position, dataset index). Nothing is shared between
// threads, so the batch sequence cannot depend on thread timing or on the number of workers.
//
// - seed_hash(a, b, ...): order-sensitive hash of 64-bit words; each word goes through the
//   splitmix64 finalizer (Steele, Lea, Flood 2014), so nearby seeds (epoch 3 vs 4) give
//   unrelated streams.
// - Rng: xoshiro256** (Blackman, Vigna 2018), its 256-bit state filled from the hash by
//   splitmix64, as its authors recommend. Period 2^256 - 1; fine for a few thousand draws
//   per sample.
// - uniform(): 53 random bits -> double in [0, 1). uniform_int(lo, hi): inclusive,
//   unbiased (Lemire's multiply-and-reject). normal(): Box-Muller, two uniforms per call and
//   no cached second value, so each call consumes a fixed number of draws.
#pragma once
#include <cmath>
#include <cstdint>
#include <initializer_list>

namespace c3::data {

// The splitmix64 output function: a bijective 64-bit mixer.
inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// splitmix64 as a generator: advances the state by the golden-ratio increment.
inline uint64_t splitmix64_next(uint64_t& state) {
  state += 0x9e3779b97f4a7c15ULL;
  return mix64(state);
}

// Order-sensitive hash of a list of words: seed_hash({1, 2}) != seed_hash({2, 1}).
inline uint64_t seed_hash(std::initializer_list<uint64_t> words) {
  uint64_t h = 0x6a09e667f3bcc909ULL;  // any odd constant; sqrt(2) fraction bits
  uint64_t i = 0;
  for (uint64_t w : words) h = mix64(h ^ mix64(w + 0x9e3779b97f4a7c15ULL * ++i));
  return h;
}

class Rng {
 public:
  explicit Rng(uint64_t seed) {
    uint64_t sm = seed;
    for (auto& w : s_) w = splitmix64_next(sm);
  }

  uint64_t next() {  // xoshiro256**
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  double uniform() { return double(next() >> 11) * 0x1.0p-53; }  // [0, 1)
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }

  // Uniform integer in [lo, hi], both inclusive; hi < lo returns lo.
  int64_t uniform_int(int64_t lo, int64_t hi) {
    if (hi <= lo) {
      next();  // consume one draw anyway, so the stream's layout does not depend on the range
      return lo;
    }
    const uint64_t range = uint64_t(hi - lo) + 1;  // 0 means the full 2^64 range
    if (range == 0) return int64_t(next());
    unsigned __int128 m = (unsigned __int128)next() * range;
    uint64_t low = uint64_t(m);
    if (low < range) {
      const uint64_t threshold = (0 - range) % range;
      while (low < threshold) {
        m = (unsigned __int128)next() * range;
        low = uint64_t(m);
      }
    }
    return lo + int64_t(m >> 64);
  }

  bool bernoulli(double p) { return uniform() < p; }

  double normal(double mean, double std) {
    const double u1 = 1.0 - uniform();  // (0, 1]: log is finite
    const double u2 = uniform();
    return mean + std * std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

}  // namespace c3::data
