// Philox RNG: the Random123 known-answer vectors, hand-computed conversions, statistics of
// the distributions with stated bounds, offset bookkeeping, emulated CUDA kernels against
// the CPU kernels, and the GPU against the CPU.
//
// Statistical bounds are 6 standard errors of the statistic (a false failure has
// probability ~2e-9 per check for a normal statistic); the data are a fixed function of the
// seed, so a test that passes once passes always.
//
// CUDA kernels run here in emulation, through their kernels::emu entry points, against
// the CPU kernels:
//   groups_kernel.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <numeric>

#include "core/rng.h"
#include "kernels/cpu/random.h"
#include "kernels/cuda/random.h"
#include "tests/emu_helpers.h"
#include "tests/helpers.h"

using namespace c3;
using namespace c3test;
using kernels::PhiloxBlock;
using kernels::PhiloxDraw;

namespace {
struct Stats {
  double mean = 0, var = 0;
};
Stats stats_of(const std::vector<float>& v) {
  double s = 0, s2 = 0;
  for (float x : v) s += x;
  const double m = s / double(v.size());
  for (float x : v) s2 += (x - m) * (x - m);
  return {m, s2 / double(v.size() - 1)};
}
bool same_blocks(const PhiloxBlock& a, const PhiloxBlock& b) { return std::memcmp(a.w, b.w, sizeof a.w) == 0; }
}  // namespace

// Random123 tests/kat_vectors, lines "philox4x32 10 <ctr[4]> <key[2]> <out[4]>".
TEST_CASE("rng: philox4x32-10 reproduces the Random123 known-answer vectors") {
  struct Kat {
    PhiloxBlock ctr;
    uint32_t k0, k1;
    PhiloxBlock want;
  };
  const Kat kats[] = {
      {{{0, 0, 0, 0}}, 0, 0, {{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}}},
      {{{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}}, 0xffffffff, 0xffffffff,
       {{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}}},
      {{{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}}, 0xa4093822, 0x299f31d0,
       {{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}}},
  };
  for (const Kat& k : kats) CHECK(same_blocks(kernels::philox4x32_10(k.ctr, k.k0, k.k1), k.want));

  // The counter convention maps (seed, offset, stream, attempt) onto the same words:
  // offset -> words 0 (low) and 1 (high), stream -> word 2, attempt -> word 3, seed -> key.
  const PhiloxDraw pi{0x299f31d0a4093822ull, 0x85a308d3243f6a88ull - 5, 0x13198a2e};
  CHECK(same_blocks(kernels::philox_group(pi, 5, 0x03707344), kats[2].want));
  std::vector<uint32_t> bits(8);
  kernels::cpu::random_bits(bits.data(), 8, PhiloxDraw{0, 0, 0});
  CHECK(std::vector<uint32_t>(bits.begin(), bits.begin() + 4) ==
        std::vector<uint32_t>{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8});
}

TEST_CASE("rng: conversions computed by hand") {
  using kernels::bits_to_uniform;
  using kernels::bits_to_unit;
  CHECK(bits_to_unit(0) == 0.f);
  CHECK(bits_to_unit(0x000000ff) == 0.f);                 // the low 8 bits are dropped
  CHECK(bits_to_unit(0x80000000) == 0.5f);
  CHECK(bits_to_unit(0xffffffff) == 1.f - 0x1p-24f);      // largest value, below 1
  CHECK(bits_to_uniform(0x80000000, -2.f, 2.f) == 0.f);
  CHECK(bits_to_uniform(0x40000000, 10.f, 14.f) == 11.f);
  // 1 + (1 - 2^-24) is a tie between 2 - 2^-23 and 2 and rounds to 2: it must become 2 - 2^-23.
  CHECK(bits_to_uniform(0xffffffff, 1.f, 2.f) == 2.f - 0x1p-23f);

  float z0, z1;
  kernels::box_muller(0xffffff00, 0x12345678, z0, z1);  // u1 = 1: radius 0
  CHECK(z0 == 0.f);
  CHECK(z1 == 0.f);
  kernels::box_muller(0x7fffff00, 0, z0, z1);  // u1 = 1/2, u2 = 0: z = (sqrt(2 ln 2), 0)
  CHECK(z0 == doctest::Approx(1.1774100225154747).epsilon(1e-6));
  CHECK(z1 == 0.f);
  kernels::box_muller(0x7fffff00, 0x40000000, z0, z1);  // u2 = 1/4: angle pi/2
  CHECK(std::abs(z0) < 1e-6);
  CHECK(z1 == doctest::Approx(1.1774100225154747).epsilon(1e-6));
  kernels::box_muller(0, 0, z0, z1);  // smallest u1 = 2^-24: finite, the largest radius
  CHECK(z0 == doctest::Approx(std::sqrt(48 * std::log(2.0))).epsilon(1e-6));

  uint32_t v = 0;
  // range 10: x = 0 gives m = 0, low 0 < 2^32 mod 10 = 6: rejected.
  CHECK_FALSE(kernels::lemire_below(0, 10, v));
  CHECK(kernels::lemire_below(0xffffffff, 10, v));  // m = 10 (2^32 - 1): high word 9
  CHECK(v == 9);
  CHECK(kernels::lemire_below(0x80000000, 3, v));  // m = 3 * 2^31: high word 1
  CHECK(v == 1);
  CHECK(kernels::lemire_below(0xdeadbeef, uint64_t(1) << 32, v));  // full range: the word itself
  CHECK(v == 0xdeadbeef);

  CHECK(kernels::bernoulli_threshold(0) == 0);
  CHECK(kernels::bernoulli_threshold(0.5) == 0x80000000ull);
  CHECK(kernels::bernoulli_threshold(1) == 0x100000000ull);
  CHECK(kernels::philox_groups(0) == 0);
  CHECK(kernels::philox_groups(1) == 1);
  CHECK(kernels::philox_groups(8) == 2);
  CHECK(kernels::philox_groups(9) == 3);
}

TEST_CASE("rng: uniform values lie in [lo, hi), mean, variance and histogram within 6 sigma") {
  Generator g(1234);
  const int64_t n = 1000000;
  auto v = g.uniform({n}, 0, 1).to_vector<float>();
  CHECK(g.offset() == uint64_t(n / 4));
  CHECK(*std::min_element(v.begin(), v.end()) >= 0.f);
  CHECK(*std::max_element(v.begin(), v.end()) < 1.f);
  // U(0,1): mean 1/2, variance 1/12; SE(mean) = sqrt(1/12/n) = 2.9e-4, SE(var) =
  // sqrt((mu4 - sigma^4)/n) = sqrt((1/80 - 1/144)/n) = 7.5e-5.
  const Stats s = stats_of(v);
  CHECK(std::abs(s.mean - 0.5) < 6 * 2.887e-4);
  CHECK(std::abs(s.var - 1.0 / 12) < 6 * 7.454e-5);
  // Chi-square over 100 equal bins: 99 degrees of freedom, mean 99, sd sqrt(198) = 14.1.
  std::vector<int64_t> bins(100, 0);
  for (float x : v) ++bins[std::min<int64_t>(99, int64_t(x * 100))];
  double chi2 = 0;
  for (int64_t b : bins) chi2 += (b - n / 100.0) * (b - n / 100.0) / (n / 100.0);
  CHECK(chi2 < 99 + 6 * 14.07);
  // Another interval: an affine image of the same grid.
  auto w = g.uniform({3, 1000}, -2, 3).to_vector<float>();
  CHECK(*std::min_element(w.begin(), w.end()) >= -2.f);
  CHECK(*std::max_element(w.begin(), w.end()) < 3.f);
}

TEST_CASE("rng: normal mean and std within 6 sigma, values finite") {
  Generator g(99);
  const int64_t n = 1000000;
  auto v = g.normal({n}, 0, 1).to_vector<float>();
  // N(0,1): SE(mean) = 1/sqrt(n) = 1e-3; SE(var) = sqrt(2/n) = 1.414e-3.
  const Stats s = stats_of(v);
  CHECK(std::abs(s.mean) < 6e-3);
  CHECK(std::abs(s.var - 1) < 6 * 1.414e-3);
  CHECK(std::all_of(v.begin(), v.end(), [](float x) { return std::isfinite(x) && std::abs(x) <= 5.78f; }));
  // Tail mass: P(|z| > 2) = 0.0455003; SE = sqrt(p(1-p)/n) = 2.08e-4.
  const double tail = double(std::count_if(v.begin(), v.end(), [](float x) { return std::abs(x) > 2; })) / double(n);
  CHECK(std::abs(tail - 0.0455003) < 6 * 2.084e-4);
  // mean 2, std 3 on 250k draws: SE(mean) = 3/500 = 6e-3, SE(var) = 9 * sqrt(2/250000) = 0.0255.
  const Stats t = stats_of(g.normal({250000}, 2, 3).to_vector<float>());
  CHECK(std::abs(t.mean - 2) < 6 * 6e-3);
  CHECK(std::abs(t.var - 9) < 6 * 0.02546);
}

TEST_CASE("rng: randint covers [lo, hi), never leaves it, unbiased within 6 sigma") {
  Generator g(7);
  const int64_t n = 700000;
  auto v = g.randint({n}, -3, 4).to_vector<int32_t>();
  std::map<int32_t, int64_t> count;
  for (int32_t x : v) ++count[x];
  CHECK(count.size() == 7);
  CHECK(count.begin()->first == -3);
  CHECK(count.rbegin()->first == 3);
  // Each value: binomial(n, 1/7), mean 1e5, sd sqrt(n/7 * 6/7) = 292.8.
  for (auto [value, c] : count) CHECK_MESSAGE(std::abs(c - 100000) < 6 * 292.8, "value ", value, " count ", c);
  // A range of 3 * 2^30: a modulo reduction would put half the values in the lowest third;
  // unbiased, the fraction is 1/3 with SE sqrt(2/9/n) = 5.6e-4.
  auto w = g.randint({n}, -(int64_t(1) << 31), int64_t(1) << 30).to_vector<int32_t>();
  const double low = double(std::count_if(w.begin(), w.end(), [](int32_t x) { return x < -(1 << 30); })) / double(n);
  CHECK(std::abs(low - 1.0 / 3) < 6 * 5.634e-4);
  // Degenerate range and the full int32 range.
  auto one = g.randint({5}, 42, 43).to_vector<int32_t>();
  CHECK(std::all_of(one.begin(), one.end(), [](int32_t x) { return x == 42; }));
  auto full = g.randint({1000}, INT32_MIN, int64_t(INT32_MAX) + 1).to_vector<int32_t>();
  CHECK(std::count_if(full.begin(), full.end(), [](int32_t x) { return x < 0; }) > 400);  // ~500, sd 16
  CHECK_THROWS_WITH_AS(g.randint({2}, 5, 5), doctest::Contains("randint: needs lo < hi"), Error);
  CHECK_THROWS_WITH_AS(g.randint({2}, 0, int64_t(1) << 32), doctest::Contains("int32"), Error);
}

TEST_CASE("rng: bernoulli mask frequency within 6 sigma; p = 0 and p = 1 are exact") {
  Generator g(5);
  const int64_t n = 1000000;
  auto m = g.bernoulli_mask({n}, 0.3).to_vector<uint8_t>();
  CHECK(std::all_of(m.begin(), m.end(), [](uint8_t x) { return x <= 1; }));
  // SE = sqrt(0.3 * 0.7 / n) = 4.58e-4.
  CHECK(std::abs(std::count(m.begin(), m.end(), 1) / double(n) - 0.3) < 6 * 4.583e-4);
  auto zeros = g.bernoulli_mask({1000}, 0).to_vector<uint8_t>();
  auto ones = g.bernoulli_mask({1000}, 1).to_vector<uint8_t>();
  CHECK(std::count(zeros.begin(), zeros.end(), 0) == 1000);
  CHECK(std::count(ones.begin(), ones.end(), 1) == 1000);
  CHECK_THROWS_WITH_AS(g.bernoulli_mask({2}, 1.5), doctest::Contains("bernoulli_mask: p must be in [0, 1]"), Error);
}

TEST_CASE("rng: permutation is a permutation, uniform over orders, seed-dependent") {
  Generator a(1), b(2);
  auto pa = a.permutation(1000), pb = b.permutation(1000);
  CHECK(a.offset() == 250);  // ceil(999 / 4)
  auto sorted = pa;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int64_t> iota(1000);
  std::iota(iota.begin(), iota.end(), 0);
  CHECK(sorted == iota);
  CHECK(pa != iota);
  CHECK(pa != pb);
  CHECK(Generator(1).permutation(1000) == pa);
  CHECK(a.permutation(0).empty());
  CHECK(a.permutation(1) == std::vector<int64_t>{0});
  // All 6 orders of 3 elements equally likely: 6000 draws, each order binomial(6000, 1/6),
  // sd 28.9. (A range off by one, e.g. Sattolo's [0, i), produces only 2 of the 6.)
  std::map<std::vector<int64_t>, int> orders;
  for (int r = 0; r < 6000; ++r) ++orders[a.permutation(3)];
  CHECK(orders.size() == 6);
  for (auto& [order, c] : orders) CHECK(std::abs(c - 1000) < 6 * 28.87);
}

TEST_CASE("rng: same seed and offset give identical draws; consecutive draws do not repeat") {
  Generator a(42), b(42), c(43);
  auto x = a.uniform({5}, 0, 1).to_vector<float>();
  CHECK(a.offset() == 2);
  CHECK(b.uniform({5}, 0, 1).to_vector<float>() == x);
  CHECK(c.uniform({5}, 0, 1).to_vector<float>() != x);
  auto y = a.uniform({5}, 0, 1).to_vector<float>();
  CHECK(a.offset() == 4);
  CHECK(y != x);
  // The second draw starts at block 2, i.e. at element 8 of one long draw.
  auto whole = Generator(42).uniform({13}, 0, 1).to_vector<float>();
  CHECK(std::vector<float>(whole.begin(), whole.begin() + 5) == x);
  CHECK(std::vector<float>(whole.begin() + 8, whole.end()) == y);

  // Checkpoint and resume: a mix of calls replays exactly from the saved state.
  Generator g(2024);
  g.normal({7}, 0, 1);
  const RngState saved = g.get_state();
  auto run = [](Generator& r) {
    std::vector<double> out;
    for (float f : r.normal({9}, 1, 2).to_vector<float>()) out.push_back(f);
    for (int32_t i : r.randint({6}, 0, 10).to_vector<int32_t>()) out.push_back(i);
    for (uint8_t m : r.bernoulli_mask({5}, 0.5).to_vector<uint8_t>()) out.push_back(m);
    for (int64_t p : r.permutation(11)) out.push_back(double(p));
    out.push_back(r.uniform_scalar());
    out.push_back(double(r.randint_scalar(-5, 5)));
    return out;
  };
  const auto first = run(g);
  const uint64_t end = g.offset();
  CHECK(end == saved.offset + 3 + 2 + 2 + 3 + 1 + 1);
  Generator h(1);
  h.set_state(saved);
  CHECK(h.seed() == 2024);
  CHECK(run(h) == first);
  CHECK(h.offset() == end);
  g.set_offset(saved.offset);
  CHECK(run(g) == first);
}

TEST_CASE("rng: scalars lie in range; randint_scalar matches randint at the same offset") {
  Generator g(11);
  double lo = 1, hi = 0, sum = 0;
  for (int i = 0; i < 10000; ++i) {
    const double u = g.uniform_scalar();
    lo = std::min(lo, u), hi = std::max(hi, u), sum += u;
  }
  CHECK(lo >= 0);
  CHECK(hi < 1);
  CHECK(std::abs(sum / 10000 - 0.5) < 6 * 2.887e-3);  // SE = sqrt(1/12/1e4)
  CHECK(g.offset() == 10000);
  const uint64_t at = g.offset();
  const int64_t s = g.randint_scalar(-100, 100);
  g.set_offset(at);
  CHECK(g.randint({1}, -100, 100).to_vector<int32_t>()[0] == s);
  // Ranges beyond 2^32 (64-bit Lemire) and the whole int64 range.
  bool above = false, below = false;
  for (int i = 0; i < 200; ++i) {
    const int64_t big = g.randint_scalar(-(int64_t(1) << 40), int64_t(1) << 40);
    CHECK(big >= -(int64_t(1) << 40));
    CHECK(big < (int64_t(1) << 40));
    above |= big > (int64_t(1) << 32), below |= big < -(int64_t(1) << 32);
    (void)g.randint_scalar(INT64_MIN, INT64_MAX);
  }
  CHECK(above);
  CHECK(below);
  CHECK_THROWS_WITH_AS(g.randint_scalar(3, 3), doctest::Contains("randint_scalar: needs lo < hi"), Error);
  CHECK_THROWS_WITH_AS(g.uniform({2}, 1, 1), doctest::Contains("uniform: needs lo < hi"), Error);
  CHECK_THROWS_WITH_AS(g.normal({2}, 0, -1), doctest::Contains("normal: needs a finite mean and std >= 0"), Error);
}

TEST_CASE("rng kernels: emulated CUDA edge cases match the CPU kernels bit for bit (n < 4, counter carry, stream, wide ranges)") {
  // The lab's rng entries (bench/lab/k_rng.cpp) fill hundreds to hundreds of thousands of
  // values from a mid-run offset on stream 0, integers in [0, classes). Left here: fills
  // shorter than one Philox block (1 and 3 values) from offset 0; a draw on stream 3 that
  // starts just below 2^32 blocks, so the group counter carries into word 1 inside it (n = 257
  // crosses the carry); integer ranges where rejection retries often (3 * 2^30) and the full
  // 2^32 range from INT32_MIN.
  struct Case {
    PhiloxDraw d;
    int64_t n;
  };
  const PhiloxDraw plain{12345, 0, 0}, carry{0xfeedfacecafebeefull, 0xffffffffull - 7, 3};
  const Case cases[] = {{plain, 1}, {plain, 3}, {carry, 1}, {carry, 3}, {carry, 257}};
  for_each_fiber_order([&](const char* order) {
    for (const Case& c : cases) {
      const PhiloxDraw& d = c.d;
      const int64_t n = c.n;
      const std::string tag = std::string(order) + " n=" + std::to_string(n) + " offset=" + std::to_string(d.offset);
      std::vector<uint32_t> bw(n), bg(n, 7);
      kernels::cpu::random_bits(bw.data(), n, d);
      kernels::emu::random_bits(bg.data(), n, d);
      CHECK_MESSAGE(bw == bg, "bits ", tag);
      std::vector<float> fw(n), fg(n, -99.f);
      kernels::cpu::random_uniform(fw.data(), n, d, -1.5f, 2.5f);
      kernels::emu::random_uniform(fg.data(), n, d, -1.5f, 2.5f);
      CHECK(close_arrays("uniform " + tag, fg.data(), fw.data(), n, 0, 0));
      kernels::cpu::random_normal(fw.data(), n, d, 0.5f, 2.f);
      kernels::emu::random_normal(fg.data(), n, d, 0.5f, 2.f);
      CHECK(close_arrays("normal " + tag, fg.data(), fw.data(), n, 0, 0));
      std::vector<int32_t> iw(n), ig(n, -99);
      // 3 * 2^30 rejects a quarter of the first attempts: the retry path runs often.
      const std::vector<std::pair<int64_t, uint64_t>> ranges{{-5, 19}, {INT32_MIN, 3ull << 30}, {INT32_MIN, 1ull << 32}};
      for (auto [lo, range] : ranges) {
        kernels::cpu::random_int(iw.data(), n, d, lo, range);
        kernels::emu::random_int(ig.data(), n, d, lo, range);
        CHECK_MESSAGE(iw == ig, "randint ", tag, " range ", range);
      }
      std::vector<uint8_t> mw(n), mg(n, 9);
      kernels::cpu::random_bernoulli(mw.data(), n, d, kernels::bernoulli_threshold(0.3));
      kernels::emu::random_bernoulli(mg.data(), n, d, kernels::bernoulli_threshold(0.3));
      CHECK_MESSAGE(mw == mg, "bernoulli ", tag);
    }
  });
}

TEST_CASE("rng kernels: lane i of a fill is lane i%4 of block offset + i/4 (tail groups too)") {
  const PhiloxDraw d{77, 1000, 2};
  std::vector<uint32_t> bits(11);
  kernels::cpu::random_bits(bits.data(), 11, d);
  for (int64_t i = 0; i < 11; ++i) {
    PhiloxBlock ctr{{uint32_t(1000 + i / 4), 0, 2, 0}};
    CHECK(bits[i] == kernels::philox4x32_10(ctr, 77, 0).w[i % 4]);
  }
  // A fill of 5 values equals the first 5 of a fill of 11 (no dependence on n).
  std::vector<float> a(5), b(11);
  kernels::cpu::random_normal(a.data(), 5, d, 0, 1);
  kernels::cpu::random_normal(b.data(), 11, d, 0, 1);
  CHECK(std::equal(a.begin(), a.end(), b.begin()));
}

GPU_TEST_CASE("rng kernels: GPU draws equal the CPU draws") {
  const Shape s{2, 33, 65, 19};  // 81510 elements, not a multiple of 4 x 256
  Generator gc(31), gg(31);
  gc.set_offset(0xffffffffull - 100);
  gg.set_offset(0xffffffffull - 100);
  CHECK(close_tensors("uniform", gg.uniform(s, -1, 3, Device::cuda), gc.uniform(s, -1, 3), 0, 0));
  // Device logf/sinf/cosf are within 1-2 ulp of glibc's; |z| <= 5.77 and std = 2: a few ulp
  // of 12, with margin: atol 1e-5 + rtol 4e-6.
  CHECK(close_tensors("normal", gg.normal(s, 0.5, 2, Device::cuda), gc.normal(s, 0.5, 2), 1e-5, 4e-6));
  CHECK(close_tensors("randint", gg.randint(s, INT32_MIN, 1ll << 30, Device::cuda), gc.randint(s, INT32_MIN, 1ll << 30),
                      0, 0));
  CHECK(close_tensors("randint small", gg.randint(s, 0, 19, Device::cuda), gc.randint(s, 0, 19), 0, 0));
  CHECK(close_tensors("bernoulli", gg.bernoulli_mask(s, 0.9, Device::cuda), gc.bernoulli_mask(s, 0.9), 0, 0));
  CHECK(gg.offset() == gc.offset());
}
