// The anchor sampler of the contrastive loss: hand-made label maps (hard/easy split, filling
// from the other group, the more-than-20 rule, the class-0 quirk, random mode, several
// images), determinism for a seed, uniformity within a group, errors, and CUDA inputs.
#include <algorithm>
#include <cmath>
#include <set>

#include "kernels/cpu/semiseg_sampler.h"
#include "kernels/cuda/semiseg_sampler.h"
#include "semiseg/ops_sampler.h"
#include "tests/emu_helpers.h"
#include "tests/helpers.h"

using namespace c3;
using namespace c3test;
using semiseg::SamplerOptions;

namespace {
template <class T> std::vector<T> vec(const Tensor& t) { return t.cpu().to_vector<T>(); }

// An 8x10 image: positions 0-24 class 0 (0-2 hard), 25-45 class 1 (25-32 hard), 46-65 class 2
// (exactly 20 pixels, all easy), 66-79 ignore. Hard pixels are predicted as class 3.
void image_a(std::vector<int32_t>& y, std::vector<int32_t>& p) {
  for (int i = 0; i < 80; ++i) {
    const int c = i < 25 ? 0 : i < 46 ? 1 : i < 66 ? 2 : 255;
    const bool hard = (i < 3) || (i >= 25 && i <= 32);
    y.push_back(c);
    p.push_back(hard ? 3 : c);
  }
}
// An 8x10 image: positions 0-29 class 1 hard, 30-34 class 1 easy, the rest class 4 easy (45).
void image_b(std::vector<int32_t>& y, std::vector<int32_t>& p) {
  for (int i = 0; i < 80; ++i) {
    const int c = i < 35 ? 1 : 4;
    y.push_back(c);
    p.push_back(i < 30 ? 0 : c);
  }
}
std::vector<int32_t> sorted(std::vector<int32_t> v, size_t from, size_t to) {
  std::vector<int32_t> s(v.begin() + from, v.begin() + to);
  std::sort(s.begin(), s.end());
  return s;
}
std::vector<int32_t> range(int a, int b) {
  std::vector<int32_t> r;
  for (int i = a; i < b; ++i) r.push_back(i);
  return r;
}
bool all_in(const std::vector<int32_t>& v, size_t from, size_t to, int lo, int hi) {
  std::set<int32_t> seen;
  for (size_t k = from; k < to; ++k) {
    if (v[k] < lo || v[k] >= hi || !seen.insert(v[k]).second) return false;
  }
  return true;
}
}  // namespace

TEST_CASE("contrast: sampler on hand-made maps") {
  std::vector<int32_t> y, p;
  image_a(y, p);
  Tensor ly = Tensor::from_vector(y, {1, 8, 10}), lp = Tensor::from_vector(p, {1, 8, 10});
  Generator gen(1);
  // Default: class 0 skipped, class 2 has only 20 pixels; class 1: all 8 hard + 12 of 13 easy.
  auto s = semiseg::sample_anchors(ly, lp, gen);
  auto idx = vec<int32_t>(s.index);
  REQUIRE(idx.size() == 20);
  CHECK(vec<int32_t>(s.label) == std::vector<int32_t>(20, 1));
  CHECK(sorted(idx, 0, 8) == range(25, 33));
  CHECK(all_in(idx, 8, 20, 33, 46));
  // Class 0 allowed: it comes first, 3 hard + 17 of its 22 easy; then class 1 as before.
  SamplerOptions o;
  o.skip_class0 = false;
  s = semiseg::sample_anchors(ly, lp, gen, o);
  idx = vec<int32_t>(s.index);
  REQUIRE(idx.size() == 40);
  CHECK(sorted(idx, 0, 3) == range(0, 3));
  CHECK(all_in(idx, 3, 20, 3, 25));
  auto lab = vec<int32_t>(s.label);
  CHECK(std::count(lab.begin(), lab.begin() + 20, 0) == 20);
  CHECK(std::count(lab.begin() + 20, lab.end(), 1) == 20);
  // More than 19 pixels: class 2 (20 pixels, all easy) gives all of them.
  o = SamplerOptions{};
  o.min_pixels = 19;
  s = semiseg::sample_anchors(ly, lp, gen, o);
  idx = vec<int32_t>(s.index);
  REQUIRE(idx.size() == 40);
  CHECK(sorted(idx, 20, 40) == range(46, 66));
  // Random mode: 20 of the 21 class-1 pixels, whatever their hardness.
  o = SamplerOptions{};
  o.hard_easy = false;
  s = semiseg::sample_anchors(ly, lp, gen, o);
  idx = vec<int32_t>(s.index);
  REQUIRE(idx.size() == 20);
  CHECK(all_in(idx, 0, 20, 25, 46));
}

TEST_CASE("contrast: sampler fills from the other group and offsets images") {
  std::vector<int32_t> y, p;
  image_a(y, p);
  image_b(y, p);
  Tensor ly = Tensor::from_vector(y, {2, 8, 10}).cast(DType::u8), lp = Tensor::from_vector(p, {2, 8, 10});
  Generator gen(2);
  auto s = semiseg::sample_anchors(ly, lp, gen);
  auto idx = vec<int32_t>(s.index), lab = vec<int32_t>(s.label);
  // Image 0: class 1 (20). Image 1 (rows 80..159): class 1 with 30 hard and 5 easy gives
  // 15 hard + 5 easy; class 4 (45 easy) gives 20 easy.
  REQUIRE(idx.size() == 60);
  CHECK(all_in(idx, 0, 20, 25, 46));
  CHECK(all_in(idx, 20, 35, 80, 110));
  CHECK(sorted(idx, 35, 40) == range(110, 115));
  CHECK(all_in(idx, 40, 60, 115, 160));
  CHECK(std::count(lab.begin() + 20, lab.begin() + 40, 1) == 20);
  CHECK(std::count(lab.begin() + 40, lab.end(), 4) == 20);
  // hard = 3 on image 0's class 1 (8 hard, 13 easy): 3 hard, then all 13 easy (only 13 of
  // the 17 wanted), then the hard side fills up to 20: 7 hard + 13 easy.
  SamplerOptions o;
  o.hard = 3;
  s = semiseg::sample_anchors(ly, lp, gen, o);
  idx = vec<int32_t>(s.index);
  CHECK(all_in(idx, 0, 7, 25, 33));
  CHECK(sorted(idx, 7, 20) == range(33, 46));
}

TEST_CASE("contrast: sampler is deterministic for a seed and uniform within a group") {
  std::vector<int32_t> y, p;
  image_b(y, p);
  Tensor ly = Tensor::from_vector(y, {1, 8, 10}), lp = Tensor::from_vector(p, {1, 8, 10});
  Generator a(9), b(9);
  auto sa = semiseg::sample_anchors(ly, lp, a), sb = semiseg::sample_anchors(ly, lp, b);
  CHECK(vec<int32_t>(sa.index) == vec<int32_t>(sb.index));
  CHECK(vec<int32_t>(semiseg::sample_anchors(ly, lp, a).index) != vec<int32_t>(sa.index));
  // 15 of the 30 hard class-1 pixels each time: each is picked with probability 1/2.
  const int draws = 800;
  std::vector<int> hits(30, 0);
  for (int d = 0; d < draws; ++d) {
    auto idx = vec<int32_t>(semiseg::sample_anchors(ly, lp, a).index);
    for (int k = 0; k < 15; ++k) ++hits[idx[k]];
  }
  const double sigma = std::sqrt(draws * 0.25);
  for (int i = 0; i < 30; ++i) CHECK(std::abs(hits[i] - draws / 2.0) < 6 * sigma);
}

// The device sampler's kernels (kernels/semiseg_sampler_math.h; CUDA: sampler_count_kernel,
// sampler_draw_kernel): a fixed number of rows per image, blocks of per_class rows for the
// qualifying classes in order, hard picks then easy ones, empty rows index 0 label -1.
TEST_CASE("sampler kernels: rows per class and side as the recipe says; emulated = CPU, both fiber orders") {
  std::vector<int32_t> y, p;
  image_a(y, p);
  image_b(y, p);
  kernels::SamplerParams sp;
  sp.N = 2, sp.hw = 80, sp.C = 5, sp.per_class = 20, sp.hard = 10, sp.min_pixels = 20, sp.seed = 77;
  const int64_t S = kernels::sampler_slots_per_image(sp);
  REQUIRE(S == 3 * 20);  // 4 classes besides class 0, but at most 80 / 21 = 3 can have > 20 pixels
  std::vector<int32_t> idx(2 * S, 5), lab(2 * S, 5);
  kernels::cpu::sample_anchors(y.data(), p.data(), sp, idx.data(), lab.data());
  // Image a: class 1 (21 pixels, 8 hard): all 8 hard (25-32), 12 of the 13 easy (33-45);
  // class 0 skipped, class 2 has exactly 20 pixels: not sampled.
  CHECK(sorted(idx, 0, 8) == range(25, 33));
  CHECK(all_in(idx, 8, 20, 33, 46));
  for (int64_t k = 0; k < 20; ++k) CHECK(lab[size_t(k)] == 1);
  for (int64_t k = 20; k < S; ++k) CHECK((idx[size_t(k)] == 0 && lab[size_t(k)] == -1));
  // Image b (rows of the batch 80-159): class 1 with 30 hard and 5 easy takes 15 hard (the
  // easy side is short) and all 5 easy; class 4, all easy, takes 20.
  CHECK(all_in(idx, S, S + 15, 80, 110));
  CHECK(sorted(idx, S + 15, S + 20) == range(110, 115));
  CHECK(all_in(idx, S + 20, S + 40, 115, 160));
  for (int64_t k = 0; k < 40; ++k) CHECK(lab[size_t(S + k)] == (k < 20 ? 1 : 4));
  for (int64_t k = 40; k < S; ++k) CHECK((idx[size_t(S + k)] == 0 && lab[size_t(S + k)] == -1));
  // Random mode (hard_easy = false): 20 of class 1's 21 pixels of image a, any side.
  kernels::SamplerParams rnd = sp;
  rnd.hard_easy = false;
  std::vector<int32_t> ri(2 * S), rl(2 * S);
  kernels::cpu::sample_anchors(y.data(), p.data(), rnd, ri.data(), rl.data());
  CHECK(all_in(ri, 0, 20, 25, 46));
  // The emulated kernels draw exactly the CPU's anchors (both fiber orders), in both modes.
  for (const kernels::SamplerParams& q : {sp, rnd}) {
    std::vector<int32_t> want_i(2 * S), want_l(2 * S);
    kernels::cpu::sample_anchors(y.data(), p.data(), q, want_i.data(), want_l.data());
    c3test::for_each_fiber_order([&](const char* order) {
      std::vector<int32_t> gi(2 * S, 9), gl(2 * S, 9), counts(2 * 2 * 5);
      kernels::emu::sample_anchors(y.data(), p.data(), q, gi.data(), gl.data(), counts.data());
      CHECK_MESSAGE(gi == want_i, order);
      CHECK_MESSAGE(gl == want_l, order);
    });
  }
  // No class can qualify (min_pixels >= hw): no rows at all.
  kernels::SamplerParams none = sp;
  none.min_pixels = 80;
  CHECK(kernels::sampler_slots_per_image(none) == 0);
}

TEST_CASE("sampler kernels: another seed draws another subset, each position equally often") {
  std::vector<int32_t> y, p;
  image_b(y, p);
  kernels::SamplerParams sp;
  sp.N = 1, sp.hw = 80, sp.C = 5, sp.per_class = 20, sp.hard = 10, sp.min_pixels = 20;
  const int64_t S = kernels::sampler_slots_per_image(sp);
  std::vector<int32_t> idx(S), lab(S), first;
  // 15 of the 30 hard class-1 pixels each time: each is picked with probability 1/2.
  const int draws = 800;
  std::vector<int> hits(30, 0);
  for (int d = 0; d < draws; ++d) {
    sp.seed = uint64_t(d) * 0x9E3779B97F4A7C15ull + 1;
    kernels::cpu::sample_anchors(y.data(), p.data(), sp, idx.data(), lab.data());
    if (d == 0) first = idx;
    if (d == 1) CHECK(sorted(idx, 0, 15) != sorted(first, 0, 15));
    for (int k = 0; k < 15; ++k) ++hits[size_t(idx[size_t(k)])];
  }
  const double sigma = std::sqrt(draws * 0.25);
  for (int i = 0; i < 30; ++i) CHECK(std::abs(hits[size_t(i)] - draws / 2.0) < 6 * sigma);
}

TEST_CASE("contrast: sampler errors name the op and the shapes") {
  Generator gen(1);
  CHECK_THROWS_WITH_AS(semiseg::sample_anchors(Tensor::zeros({1, 2, 3}, DType::i32), Tensor::zeros({1, 3, 2}, DType::i32), gen),
                       doctest::Contains("sample_anchors: labels and predictions must be [N,h,w]"), Error);
  CHECK_THROWS_WITH_AS(semiseg::sample_anchors(Tensor::zeros({1, 2, 3}), Tensor::zeros({1, 2, 3}), gen),
                       doctest::Contains("sample_anchors: label maps must be i32 or u8, got f32[1,2,3] cpu"), Error);
  Tensor bad = Tensor::from_vector<int32_t>({0, -1}, {1, 1, 2});
  CHECK_THROWS_WITH_AS(semiseg::sample_anchors(bad, bad, gen), doctest::Contains("label -1 at position 1"), Error);
  SamplerOptions o;
  o.hard = 30;
  CHECK_THROWS_WITH_AS(semiseg::sample_anchors(bad, bad, gen, o), doctest::Contains("bad options"), Error);
}

GPU_TEST_CASE("gpu: contrast sampler takes CUDA maps and returns CUDA indices equal to the CPU's") {
  std::vector<int32_t> y, p;
  image_a(y, p);
  image_b(y, p);
  Tensor ly = Tensor::from_vector(y, {2, 8, 10}), lp = Tensor::from_vector(p, {2, 8, 10});
  Generator a(4), b(4);
  auto sc = semiseg::sample_anchors(ly, lp, a), sg = semiseg::sample_anchors(ly.cuda(), lp.cuda(), b);
  CHECK(sg.index.is_cuda());
  CHECK(vec<int32_t>(sg.index) == vec<int32_t>(sc.index));
  CHECK(vec<int32_t>(sg.label) == vec<int32_t>(sc.label));
}
