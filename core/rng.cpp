#include "core/rng.h"

#include <cmath>
#include <limits>

#include "core/dispatch.h"
#include "kernels/cpu/random.h"
#include "kernels/cuda/random.h"

namespace c3 {
using kernels::PhiloxDraw;

uint64_t Generator::take(uint64_t blocks) {
  const uint64_t at = offset_;
  offset_ += blocks;
  return at;
}

namespace {
constexpr uint64_t k2p32 = uint64_t(1) << 32;

bool finite_float(double v) { return std::isfinite(v) && std::abs(v) <= std::numeric_limits<float>::max(); }
}  // namespace

Tensor Generator::uniform(const Shape& shape, double lo, double hi, Device device) {
  C3_CHECK(finite_float(lo) && finite_float(hi) && float(lo) < float(hi), "uniform: needs lo < hi, finite as f32; got [",
           lo, ", ", hi, ") for shape ", shape_str(shape));
  C3_CHECK(std::isfinite(double(float(hi) - float(lo))), "uniform: hi - lo overflows f32: [", lo, ", ", hi, ")");
  Tensor out = Tensor::empty(shape, DType::f32, device);
  const int64_t n = out.numel();
  const PhiloxDraw d{seed_, offset_, 0};
  if (out.is_cuda())
    C3_CUDA("uniform", kernels::cuda::random_uniform(out.data<float>(), n, d, float(lo), float(hi)));
  else
    kernels::cpu::random_uniform(out.data<float>(), n, d, float(lo), float(hi));
  take(kernels::philox_groups(n));  // only after the fill succeeded
  return out;
}

Tensor Generator::normal(const Shape& shape, double mean, double std, Device device) {
  C3_CHECK(finite_float(mean) && finite_float(std) && std >= 0, "normal: needs a finite mean and std >= 0; got mean ",
           mean, ", std ", std, " for shape ", shape_str(shape));
  Tensor out = Tensor::empty(shape, DType::f32, device);
  const int64_t n = out.numel();
  const PhiloxDraw d{seed_, offset_, 0};
  if (out.is_cuda())
    C3_CUDA("normal", kernels::cuda::random_normal(out.data<float>(), n, d, float(mean), float(std)));
  else
    kernels::cpu::random_normal(out.data<float>(), n, d, float(mean), float(std));
  take(kernels::philox_groups(n));
  return out;
}

Tensor Generator::randint(const Shape& shape, int64_t lo, int64_t hi, Device device) {
  constexpr int64_t kMin = std::numeric_limits<int32_t>::min(), kMax = std::numeric_limits<int32_t>::max();
  C3_CHECK(lo < hi && lo >= kMin && hi - 1 <= kMax, "randint: needs lo < hi with lo .. hi-1 in int32; got [", lo, ", ",
           hi, ") for shape ", shape_str(shape));
  const uint64_t range = uint64_t(hi - lo);  // <= 2^32
  Tensor out = Tensor::empty(shape, DType::i32, device);
  const int64_t n = out.numel();
  const PhiloxDraw d{seed_, offset_, 0};
  if (out.is_cuda())
    C3_CUDA("randint", kernels::cuda::random_int(out.data<int32_t>(), n, d, lo, range));
  else
    kernels::cpu::random_int(out.data<int32_t>(), n, d, lo, range);
  take(kernels::philox_groups(n));
  return out;
}

Tensor Generator::bernoulli_mask(const Shape& shape, double p, Device device) {
  C3_CHECK(p >= 0 && p <= 1, "bernoulli_mask: p must be in [0, 1], got ", p, " for shape ", shape_str(shape));
  Tensor out = Tensor::empty(shape, DType::u8, device);
  const int64_t n = out.numel();
  const PhiloxDraw d{seed_, offset_, 0};
  const uint64_t threshold = kernels::bernoulli_threshold(p);
  if (out.is_cuda())
    C3_CUDA("bernoulli_mask", kernels::cuda::random_bernoulli(out.data<uint8_t>(), n, d, threshold));
  else
    kernels::cpu::random_bernoulli(out.data<uint8_t>(), n, d, threshold);
  take(kernels::philox_groups(n));
  return out;
}

std::vector<int64_t> Generator::permutation(int64_t n) {
  C3_CHECK(n >= 0 && uint64_t(n) <= k2p32, "permutation: n must be in [0, 2^32], got ", n);
  std::vector<int64_t> p(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) p[i] = i;
  if (n < 2) return p;
  const PhiloxDraw d{seed_, take(kernels::philox_groups(n - 1)), 0};
  // Swap k places position i = n-1-k: it takes an element drawn uniformly from 0 .. i.
  for (int64_t k = 0; k < n - 1; ++k) {
    const int64_t i = n - 1 - k;
    const int64_t j = int64_t(kernels::philox_below(d, uint64_t(k), uint64_t(i) + 1));
    std::swap(p[i], p[j]);
  }
  return p;
}

double Generator::uniform_scalar() {
  const kernels::PhiloxBlock b = kernels::philox_group(PhiloxDraw{seed_, take(1), 0}, 0);
  const uint64_t bits53 = (uint64_t(b.w[0] >> 5) << 26) | (b.w[1] >> 6);  // 27 + 26 bits
  return std::ldexp(double(bits53), -53);
}

int64_t Generator::randint_scalar(int64_t lo, int64_t hi) {
  C3_CHECK(lo < hi, "randint_scalar: needs lo < hi, got [", lo, ", ", hi, ")");
  const uint64_t range = uint64_t(hi) - uint64_t(lo);  // exact modulo 2^64, and >= 1
  const PhiloxDraw d{seed_, take(1), 0};
  if (range <= k2p32) return int64_t(uint64_t(lo) + kernels::philox_below(d, 0, range));
  // Wider ranges: Lemire's method on 64 bits (lanes 0 and 1), retried like philox_below.
  for (uint32_t attempt = 0;; ++attempt) {
    const kernels::PhiloxBlock b = kernels::philox_group(d, 0, attempt);
    const uint64_t x = (uint64_t(b.w[1]) << 32) | b.w[0];
    const unsigned __int128 m = (unsigned __int128)x * range;
    const uint64_t low = uint64_t(m);
    if (low < range && low < (0 - range) % range) continue;  // (0 - range) % range = 2^64 mod range
    return int64_t(uint64_t(lo) + uint64_t(m >> 64));
  }
}

}  // namespace c3
