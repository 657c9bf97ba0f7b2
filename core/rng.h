// Generator: the engine's random numbers, counter-based (Philox4x32-10), so that a (seed,
// offset) pair gives the same numbers on the CPU and on the GPU, and a run that saves
// RngState in its checkpoint resumes with exactly the numbers it would have drawn.
//
// Every call draws from the current offset and advances it by the number of 128-bit Philox
// blocks it consumed: ceil(n / 4) for a draw of n elements, ceil((n - 1) / 4) for a
// permutation of n, 1 for a scalar. Consecutive draws never overlap. Element i of a tensor
// draw reads lane i % 4 of counter (offset + i / 4, stream 0); kernels/philox_math.h states
// the convention exactly. Values do not depend on the device (see kernels/cuda/random.h for
// the one exception, normals on a real GPU, which agree to a few ulp).
//
// A Generator is not thread-safe: give each thread its own (e.g. seeded from the run seed
// and the thread's or the sample's index).
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace c3 {

struct RngState {
  uint64_t seed = 0;
  uint64_t offset = 0;  // in 128-bit Philox blocks
};

class Generator {
 public:
  explicit Generator(uint64_t seed) : seed_(seed) {}

  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }
  void set_offset(uint64_t offset) { offset_ = offset; }
  RngState get_state() const { return {seed_, offset_}; }
  void set_state(const RngState& s) {
    seed_ = s.seed;
    offset_ = s.offset;
  }

  // f32, uniform in [lo, hi) (never hi); needs lo < hi, both finite as floats.
  Tensor uniform(const Shape& shape, double lo, double hi, Device device = Device::cpu);
  // f32, normal(mean, std) by Box-Muller (|z| <= 5.77); needs std >= 0.
  Tensor normal(const Shape& shape, double mean, double std, Device device = Device::cpu);
  // i32, uniform over the integers lo .. hi-1, exactly unbiased; needs lo < hi, values in int32.
  Tensor randint(const Shape& shape, int64_t lo, int64_t hi, Device device = Device::cpu);
  // u8, 1 with probability p (rounded to a multiple of 2^-32), else 0; p in [0, 1].
  // For dropout with drop rate q, pass p = 1 - q (the keep probability).
  Tensor bernoulli_mask(const Shape& shape, double p, Device device = Device::cpu);

  // A uniformly random permutation of 0 .. n-1 (Fisher-Yates; swap k picks from lane k's
  // integer draw), on the CPU. n <= 2^32.
  std::vector<int64_t> permutation(int64_t n);
  // Uniform double in [0, 1) with 53 random bits (lanes 0 and 1 of one block).
  double uniform_scalar();
  // Uniform integer in [lo, hi), unbiased, any int64 range. For hi - lo <= 2^32 it equals
  // element 0 of randint({1}, lo, hi) at the same offset.
  int64_t randint_scalar(int64_t lo, int64_t hi);

 private:
  uint64_t take(uint64_t blocks);  // returns the offset to draw from, then advances it
  uint64_t seed_;
  uint64_t offset_ = 0;
};

}  // namespace c3
