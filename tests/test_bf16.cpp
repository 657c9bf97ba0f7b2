// The bf16 dtype: storage, casts to and from it (rounding computed by hand: ties, overflow,
// NaN, denormals; f64 without double rounding), the emulated CUDA cast kernel against the CPU
// kernel, and the ops that refuse it naming themselves and the dtype.
//
// CUDA kernels run here in emulation, through kernels::emu::cast: cast_kernel (its bf16
// instantiations).
#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "kernels/cpu/elementwise.h"
#include "kernels/cuda/elementwise.h"
#include "semiseg/ops_cutmix.h"
#include "tests/emu_helpers.h"
#include "tests/helpers.h"

using namespace c3;
using namespace c3test;

namespace {

float f32_of(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
std::vector<uint16_t> bits_of(const std::vector<bf16>& v) {
  std::vector<uint16_t> out;
  for (bf16 h : v) out.push_back(h.bits);
  return out;
}
std::vector<bf16> bf16s(const std::vector<uint16_t>& bits) {
  std::vector<bf16> out;
  for (uint16_t b : bits) out.push_back(bf16{b});
  return out;
}

// f32 bit patterns and the bf16 each rounds to (nearest, ties to even), worked out by hand:
// the upper 16 bits, plus one where the lower 16 are above 0x8000, or equal to it and the
// upper half is odd.
struct Rounding {
  uint32_t f32;
  uint16_t bf16;
  const char* what;
};
const Rounding kRoundings[] = {
    {0x3F800000, 0x3F80, "1.0 exact"},
    {0xC0200000, 0xC020, "-2.5 exact"},
    {0x40490FD0, 0x4049, "3.14159 (0x40490FD0) rounds down to 3.140625"},
    {0x3F808000, 0x3F80, "tie between 0x3F80 and 0x3F81: to even, down"},
    {0x3F818000, 0x3F82, "tie between 0x3F81 and 0x3F82: to even, up"},
    {0x3F808001, 0x3F81, "just above a tie: up"},
    {0x3F807FFF, 0x3F80, "just below a tie: down"},
    {0xBF818000, 0xBF82, "negative tie: to even, away from zero here"},
    {0x3FFF8000, 0x4000, "tie at the top of a binade: carries into the exponent (2.0)"},
    {0x7F7F0000, 0x7F7F, "largest finite bf16, exact"},
    {0x7F7F7FFF, 0x7F7F, "below the overflow threshold: largest finite"},
    {0x7F7F8000, 0x7F80, "the overflow threshold (a tie, odd below): +Inf"},
    {0x7F7FFFFF, 0x7F80, "largest finite f32 overflows to +Inf"},
    {0xFF7FFFFF, 0xFF80, "most negative finite f32 overflows to -Inf"},
    {0x7F800000, 0x7F80, "+Inf"},
    {0xFF800000, 0xFF80, "-Inf"},
    {0x00000000, 0x0000, "+0"},
    {0x80000000, 0x8000, "-0"},
    {0x00010000, 0x0001, "smallest bf16 denormal, exact"},
    {0x00008000, 0x0000, "half the smallest denormal: tie to even, +0"},
    {0x00018000, 0x0002, "denormal tie, odd below: up"},
    {0x00000001, 0x0000, "smallest f32 denormal: +0"},
    {0x80008001, 0x8001, "negative denormal above a tie: -smallest denormal"},
    {0x007FFFFF, 0x0080, "largest f32 denormal rounds up to the smallest normal"},
};
// NaNs: each stays a NaN of its sign, quiet, with its upper payload.
const Rounding kNaNs[] = {
    {0x7FC00000, 0x7FC0, "quiet NaN"},
    {0xFFC00000, 0xFFC0, "negative quiet NaN"},
    {0x7F800001, 0x7FC0, "signalling NaN, payload in the low bits only (truncation gives +Inf)"},
    {0x7F812345, 0x7FC1, "signalling NaN: quiet bit set, upper payload kept"},
    {0xFFFFFFFF, 0xFFFF, "all ones"},
};

std::vector<float> inputs_of(const Rounding* r, size_t n) {
  std::vector<float> v;
  for (size_t i = 0; i < n; ++i) v.push_back(f32_of(r[i].f32));
  return v;
}

}  // namespace

TEST_CASE("bf16: a 2-byte dtype; storage, views and host copies keep its bits") {
  CHECK(dtype_size(DType::bf16) == 2);
  CHECK(std::string(dtype_name(DType::bf16)) == "bf16");
  CHECK(dtype_of<bf16>() == DType::bf16);
  const std::vector<uint16_t> bits = {0x3F80, 0xC020, 0x7F80, 0x7FC1, 0x8000, 0x0001};
  Tensor t = Tensor::from_vector(bf16s(bits), {2, 3});
  CHECK(t.dtype() == DType::bf16);
  CHECK(t.nbytes() == 12);
  CHECK(t.desc() == "bf16[2,3] cpu");
  CHECK(bits_of(t.to_vector<bf16>()) == bits);
  CHECK(bits_of(t.select0(1).to_vector<bf16>()) == std::vector<uint16_t>{0x7FC1, 0x8000, 0x0001});
  CHECK(bits_of(t.reshape({3, 2}).narrow0(1, 1).to_vector<bf16>()) == std::vector<uint16_t>{0x7F80, 0x7FC1});
  CHECK(bits_of(t.clone().to_vector<bf16>()) == bits);
  CHECK(bits_of(t.cpu().to_vector<bf16>()) == bits);
  Tensor u = Tensor::zeros({2, 3}, DType::bf16);
  CHECK(bits_of(u.to_vector<bf16>()) == std::vector<uint16_t>(6, 0));
  u.copy_(t);
  CHECK(bits_of(u.to_vector<bf16>()) == bits);
  CHECK(t.select0(0).narrow0(1, 1).item() == -2.5);
  CHECK(Tensor::full({2}, 3.14159, DType::bf16).to_vector<bf16>()[1].bits == 0x4049);
  CHECK(Tensor::scalar(-2.5, DType::bf16).item() == -2.5);
  // concat and slice take any dtype on the CPU
  CHECK(bits_of(concat({t, t.select0(0).reshape({1, 3})}, 0).to_vector<bf16>()) ==
        std::vector<uint16_t>{0x3F80, 0xC020, 0x7F80, 0x7FC1, 0x8000, 0x0001, 0x3F80, 0xC020, 0x7F80});
  CHECK(bits_of(slice(t, 1, 1, 2).to_vector<bf16>()) == std::vector<uint16_t>{0xC020, 0x7F80, 0x8000, 0x0001});
  CHECK_THROWS_WITH_AS(t.data<float>(), doctest::Contains("tensor data<f32>() on bf16[2,3] cpu"), Error);
  CHECK_THROWS_WITH_AS(t.to_vector<float>(), doctest::Contains("to_vector<f32>() on bf16[2,3] cpu"), Error);
}

TEST_CASE("bf16: cast from f32 rounds to nearest even (hand-computed ties, overflow, denormals), back is exact") {
  const size_t n = std::size(kRoundings);
  Tensor x = Tensor::from_vector(inputs_of(kRoundings, n), {int64_t(n)});
  Tensor h = cast(x, DType::bf16);
  REQUIRE(h.dtype() == DType::bf16);
  const std::vector<bf16> got = h.to_vector<bf16>();
  const std::vector<float> back = cast(h, DType::f32).to_vector<float>();
  const std::vector<double> back64 = cast(h, DType::f64).to_vector<double>();
  for (size_t i = 0; i < n; ++i) {
    CAPTURE(kRoundings[i].what);
    CHECK(got[i].bits == kRoundings[i].bf16);
    CHECK(bits_of(back[i]) == uint32_t(kRoundings[i].bf16) << 16);  // widening appends zero bits
    CHECK(back64[i] == double(back[i]));
    CHECK(kernels::bf16_bits_from_f32(f32_of(kRoundings[i].f32)) == kRoundings[i].bf16);
  }
  CHECK(back[0] == 1.0f);
  CHECK(back[1] == -2.5f);
  CHECK(back[2] == 3.140625f);
  CHECK(back[9] == 0x1.fep127f);  // the largest finite bf16, (2 - 2^-7) * 2^127
  CHECK(back[18] == 0x1p-133f);   // its smallest denormal, 2^-133
  CHECK(std::signbit(back[17]));  // -0 stays -0

  const size_t m = std::size(kNaNs);
  Tensor nans = cast(Tensor::from_vector(inputs_of(kNaNs, m), {int64_t(m)}), DType::bf16);
  const std::vector<bf16> hn = nans.to_vector<bf16>();
  const std::vector<float> fn = cast(nans, DType::f32).to_vector<float>();
  for (size_t i = 0; i < m; ++i) {
    CAPTURE(kNaNs[i].what);
    CHECK(hn[i].bits == kNaNs[i].bf16);
    CHECK(std::isnan(fn[i]));
    CHECK(std::signbit(fn[i]) == bool(kNaNs[i].f32 >> 31));
  }
}

TEST_CASE("bf16: casts from f64 and integers are rounded once (no double rounding through f32)") {
  const double tie = 1 + 0x1p-8;  // halfway between bf16 1.0 (0x3F80) and 1.0078125 (0x3F81)
  // 2^-30 is below half an f32 ulp at 1: through f32 both would land on a tie and round to
  // even, the wrong way.
  const std::vector<double> x = {tie,
                                 tie + 0x1p-30,
                                 -(tie + 0x1p-30),
                                 1 + 0x1p-7 + 0x1p-8 - 0x1p-30,  // below the tie of 0x3F81 / 0x3F82
                                 1 + 0x1p-7 + 0x1p-8,            // that tie: to even, up
                                 3.14159,
                                 1e300,
                                 -1e300,
                                 1e-300,
                                 -1e-300,
                                 double(std::numeric_limits<float>::max()),
                                 std::numeric_limits<double>::infinity(),
                                 0x1p-133,
                                 0x1p-134 + 0x1p-160};  // above half the smallest denormal
  const std::vector<uint16_t> want = {0x3F80, 0x3F81, 0xBF81, 0x3F81, 0x3F82, 0x4049, 0x7F80,
                                      0xFF80, 0x0000, 0x8000, 0x7F80, 0x7F80, 0x0001, 0x0001};
  Tensor h = cast(Tensor::from_vector(x, {int64_t(x.size())}), DType::bf16);
  CHECK(bits_of(h.to_vector<bf16>()) == want);
  for (size_t i = 0; i < x.size(); ++i) CHECK(kernels::bf16_bits_from_f64(x[i]) == want[i]);
  CHECK(kernels::bf16_bits_from_f32(float(tie + 0x1p-30)) == 0x3F80);  // the double rounding avoided above
  CHECK(std::isnan(cast(Tensor::from_vector<double>({NAN}, {1}), DType::bf16).item()));
  CHECK(cast(h, DType::f64).to_vector<double>()[5] == 3.140625);

  // Integers: i32 through f64 (exact), so 2^24 + 2^16 + 1 rounds up past the tie 2^24 + 2^16 to
  // 2^24 + 2^17 (0x4B81); through f32 it would become the tie and round to even, 2^24 (0x4B80).
  Tensor i = Tensor::from_vector<int32_t>({0, -3, 255, (1 << 24) + (1 << 16) + 1, INT32_MAX}, {5});
  CHECK(bits_of(cast(i, DType::bf16).to_vector<bf16>()) ==
        std::vector<uint16_t>{0x0000, 0xC040, 0x437F, 0x4B81, 0x4F00});
  CHECK(bits_of(cast(Tensor::from_vector<uint8_t>({0, 1, 255}, {3}), DType::bf16).to_vector<bf16>()) ==
        std::vector<uint16_t>{0x0000, 0x3F80, 0x437F});
  Tensor b = Tensor::from_vector(bf16s({0x3F80, 0xC020, 0x437F, 0x4049}), {4});  // 1, -2.5, 255, 3.140625
  CHECK(cast(b, DType::i32).to_vector<int32_t>() == std::vector<int32_t>{1, -2, 255, 3});
  CHECK(cast(b.narrow0(2, 2), DType::u8).to_vector<uint8_t>() == std::vector<uint8_t>{255, 3});
  CHECK(b.cast(DType::bf16).same_storage(b));  // same dtype: the tensor itself
}

TEST_CASE("bf16: f32 -> bf16 -> f32 of random values is the nearest bf16, within 2^-8 relative") {
  std::mt19937 rng(17);
  std::uniform_real_distribution<float> mant(1.f, 2.f);
  std::uniform_int_distribution<int> expo(-126, 126);
  const int64_t n = 20000;
  std::vector<float> x(static_cast<size_t>(n));
  for (float& v : x) v = std::ldexp(mant(rng), expo(rng)) * (rng() & 1 ? -1.f : 1.f);
  const std::vector<bf16> h = cast(Tensor::from_vector(x, {n}), DType::bf16).to_vector<bf16>();
  const std::vector<float> y = cast(Tensor::from_vector(h, {n}), DType::f32).to_vector<float>();
  int64_t worse = 0, not_nearest = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double xi = x[size_t(i)], yi = y[size_t(i)];
    if (std::abs(yi - xi) > std::ldexp(std::abs(xi), -8)) ++worse;
    // No neighbour of the result (one bf16 ulp either way) is closer.
    for (int d : {-1, 1}) {
      const double other = kernels::bf16_bits_to_f32(uint16_t(h[size_t(i)].bits + d));
      if (std::abs(other - xi) < std::abs(yi - xi)) ++not_nearest;
    }
  }
  CHECK(worse == 0);
  CHECK(not_nearest == 0);
}

TEST_CASE("bf16: emulated CUDA cast kernel matches the CPU kernel bit for bit, both directions") {
  // dtype codes as c3::DType
  const int f32 = int(DType::f32), i32 = int(DType::i32), u8 = int(DType::u8), b16 = int(DType::bf16);
  for_each_fiber_order([&](const char* order) {
    for (int64_t n : {int64_t(1), int64_t(255), int64_t(257), int64_t(4097)}) {
      CAPTURE(order);
      CAPTURE(n);
      std::vector<float> x = random_floats(n, uint32_t(n), -300.f, 300.f);
      // the hand-computed cases (ties, overflow, NaN, denormals) at the front
      const std::vector<float> special = inputs_of(kRoundings, std::size(kRoundings));
      const std::vector<float> nan = inputs_of(kNaNs, std::size(kNaNs));
      std::vector<float> all = special;
      all.insert(all.end(), nan.begin(), nan.end());
      for (size_t i = 0; i < all.size() && i < x.size(); ++i) x[i] = all[i];
      std::vector<bf16> hw(size_t(n), bf16{0x1234}), hg(size_t(n), bf16{0x4321});
      kernels::cpu::cast(x.data(), f32, hw.data(), b16, n);
      kernels::emu::cast(x.data(), f32, hg.data(), b16, n);
      CHECK(bits_of(hg) == bits_of(hw));
      std::vector<float> fw(size_t(n), 1.f), fg(size_t(n), 2.f);
      kernels::cpu::cast(hw.data(), b16, fw.data(), f32, n);
      kernels::emu::cast(hw.data(), b16, fg.data(), f32, n);
      CHECK(std::memcmp(fw.data(), fg.data(), size_t(n) * 4) == 0);
      for (int64_t i = 0; i < n; ++i) REQUIRE(bits_of(fw[size_t(i)]) == uint32_t(hw[size_t(i)].bits) << 16);
      // integers both ways (all in range of the target), first the ones that f32 would round twice
      std::vector<int32_t> iv(static_cast<size_t>(n));
      for (int64_t k = 0; k < n; ++k) iv[size_t(k)] = int32_t(k * 7919 - 300000);
      const int32_t twice[] = {(1 << 24) + (1 << 16) + 1, -((1 << 24) + (1 << 16) + 1), INT32_MIN};
      for (size_t k = 0; k < std::size(twice) && k < iv.size(); ++k) iv[k] = twice[k];
      kernels::cpu::cast(iv.data(), i32, hw.data(), b16, n);
      kernels::emu::cast(iv.data(), i32, hg.data(), b16, n);
      CHECK(bits_of(hg) == bits_of(hw));
      std::vector<int32_t> iw(static_cast<size_t>(n)), ig(size_t(n), -1);
      kernels::cpu::cast(hw.data(), b16, iw.data(), i32, n);
      kernels::emu::cast(hw.data(), b16, ig.data(), i32, n);
      CHECK(iw == ig);
      std::vector<uint8_t> uv(static_cast<size_t>(n)), uw(static_cast<size_t>(n)), ug(size_t(n), 7);
      for (int64_t k = 0; k < n; ++k) uv[size_t(k)] = uint8_t(k * 31);
      kernels::cpu::cast(uv.data(), u8, hw.data(), b16, n);
      kernels::emu::cast(uv.data(), u8, hg.data(), b16, n);
      CHECK(bits_of(hg) == bits_of(hw));
      kernels::cpu::cast(hw.data(), b16, uw.data(), u8, n);
      kernels::emu::cast(hw.data(), b16, ug.data(), u8, n);
      CHECK(uw == uv);
      CHECK(ug == uv);
    }
  });
}

TEST_CASE("bf16: ops without bf16 support refuse it, naming the op and the dtype") {
  Tensor h = cast(Tensor::from_vector<float>({1, -2, 3, 4}, {1, 2, 2, 1}), DType::bf16);
  const char* got = "got bf16[1,2,2,1] cpu";
  CHECK_THROWS_WITH_AS(axpy_(h, 1.0, h), doctest::Contains("axpy_: expected a float"), Error);
  CHECK_THROWS_WITH_AS(max_channels(h), doctest::Contains("max_channels: expected a float tensor"), Error);
  CHECK_THROWS_WITH_AS(resize_nearest(h, 4, 4), doctest::Contains("resize_nearest: bf16 tensors are not supported"),
                       Error);
  CHECK_THROWS_WITH_AS(resize_nearest(h, 4, 4), doctest::Contains(got), Error);
  CHECK_THROWS_WITH_AS(Tensor(h).set_requires_grad(), doctest::Contains("non-float tensor bf16"), Error);
}

GPU_TEST_CASE("gpu: bf16 tensors copy between devices as bytes; the CUDA cast matches the CPU's") {
  std::vector<float> x = random_floats(3001, 5, -1e3f, 1e3f);
  x[0] = f32_of(0x3F818000);
  x[1] = f32_of(0x7F7FFFFF);
  x[2] = NAN;
  Tensor xc = Tensor::from_vector(x, {3001});
  Tensor want = cast(xc, DType::bf16);
  Tensor moved = want.cuda();
  CHECK(moved.is_cuda());
  CHECK(bits_of(moved.cpu().to_vector<bf16>()) == bits_of(want.to_vector<bf16>()));
  Tensor got = cast(xc.cuda(), DType::bf16);
  CHECK(bits_of(got.to_vector<bf16>()) == bits_of(want.to_vector<bf16>()));
  Tensor back = cast(got, DType::f32).cpu();
  Tensor back_cpu = cast(want, DType::f32);
  CHECK(std::memcmp(back.raw(), back_cpu.raw(), back.nbytes()) == 0);
  CHECK_THROWS_WITH_AS(fill_(moved, 1.0), doctest::Contains("fill: bf16"), Error);
  CHECK_THROWS_WITH_AS(cast(moved, DType::f64), doctest::Contains("cast: f64 tensors are CPU-only"), Error);
}
