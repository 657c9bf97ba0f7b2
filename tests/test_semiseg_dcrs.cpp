// DCRS: a hand-computed step (thresholds, mask, kept fractions), the modes (global, off,
// no update, class-dependent s), errors, the CPU step against a plain std::sort reference,
// the emulated GPU histogram search against the CPU bit for bit (ties, N_c = 1, absent
// classes, thousands of values inside one histogram bin), and the GPU against the CPU.
//
// CUDA kernels run here in emulation, through their kernels::emu entry points, against
// the CPU kernels:
//   zero_kernel, pixels_kernel, scan_kernel, collect_kernel, select_kernel, mask_kernel,
//   fraction_kernel.
#include <algorithm>
#include <cmath>
#include <functional>
#include <random>

#include "kernels/cpu/semiseg_dcrs.h"
#include "kernels/cuda/semiseg_dcrs.h"
#include "semiseg/ops_dcrs.h"
#include "tests/emu_helpers.h"
#include "tests/helpers.h"

using namespace c3;
using namespace c3test;
using semiseg::DcrsMode;

namespace {
template <class T> std::vector<T> vec(const Tensor& t) { return t.cpu().to_vector<T>(); }

// Six pixels, two classes (a third, absent, when C = 3):
//   class 0: confidences 0.9, 0.6, 0.95, 0.7   class 1: 0.7, 0.8
Tensor six_pixels(int C) {
  std::vector<float> p = {0.9f, 0.1f, 0.6f, 0.4f, 0.3f, 0.7f, 0.95f, 0.05f, 0.2f, 0.8f, 0.7f, 0.3f};
  if (C == 2) return Tensor::from_vector(p, {1, 2, 3, 2});
  std::vector<float> q;
  for (size_t i = 0; i < p.size(); i += 2) q.insert(q.end(), {p[i], p[i + 1], 0.f});
  return Tensor::from_vector(q, {1, 2, 3, 3});
}
}  // namespace

TEST_CASE("dcrs: one step computed by hand") {
  auto st = semiseg::dcrs_init(3);
  auto r = semiseg::dcrs_update(six_pixels(3), st);
  // Class 0 sorted: 0.95 0.9 0.7 0.6, index floor(4 * 0.8) = 3 -> 0.6; thr 0.81 + 0.06 = 0.87.
  // Class 1 sorted: 0.8 0.7, index floor(2 * 0.8) = 1 -> 0.7; thr 0.81 + 0.07 = 0.88.
  // Class 2 is absent: quantile NaN, threshold stays 0.9.
  auto q = vec<float>(r.quantile);
  CHECK(q[0] == 0.6f);
  CHECK(q[1] == 0.7f);
  CHECK(std::isnan(q[2]));
  CHECK(close_tensors("thresholds", st.thresholds, Tensor::from_vector<float>({0.87f, 0.88f, 0.9f}, {3}), 1e-6, 0));
  CHECK(r.mask.shape() == Shape{1, 2, 3});
  CHECK(vec<uint8_t>(r.mask) == std::vector<uint8_t>{1, 0, 0, 1, 0, 0});  // 0.9 and 0.95 pass
  CHECK(vec<int32_t>(r.label) == std::vector<int32_t>{0, 0, 1, 0, 1, 0});
  CHECK(vec<float>(r.confidence) == std::vector<float>{0.9f, 0.6f, 0.7f, 0.95f, 0.8f, 0.7f});
  CHECK(vec<int32_t>(r.count) == std::vector<int32_t>{4, 2, 0});
  auto kf = vec<float>(r.kept_fraction);
  CHECK(kf[0] == 0.5f);
  CHECK(kf[1] == 0.f);
  CHECK(std::isnan(kf[2]));
  // A second step moves the thresholds again: 0.9 * 0.87 + 0.06, 0.9 * 0.88 + 0.07.
  semiseg::dcrs_update(six_pixels(3), st);
  CHECK(close_tensors("thresholds 2", st.thresholds, Tensor::from_vector<float>({0.843f, 0.862f, 0.9f}, {3}), 1e-6, 0));
}

TEST_CASE("dcrs: global threshold, off, no update, class-dependent s, s = 1") {
  // Global: all six sorted 0.95 0.9 0.8 0.7 0.7 0.6, index floor(4.8) = 4 -> 0.7; thr 0.88.
  auto g = semiseg::dcrs_init(2, DcrsMode::global);
  CHECK(g.thresholds.shape() == Shape{1});
  auto r = semiseg::dcrs_update(six_pixels(2), g);
  CHECK(vec<float>(r.quantile) == std::vector<float>{0.7f});
  CHECK(std::abs(g.thresholds.item() - 0.88) < 1e-6);
  CHECK(vec<uint8_t>(r.mask) == std::vector<uint8_t>{1, 0, 0, 1, 0, 0});
  CHECK(vec<float>(r.kept_fraction) == std::vector<float>{0.5f, 0.f});
  // Off: everything kept, nothing to update.
  auto off = semiseg::dcrs_init(2, DcrsMode::off);
  r = semiseg::dcrs_update(six_pixels(2), off);
  CHECK(vec<uint8_t>(r.mask) == std::vector<uint8_t>(6, 1));
  CHECK(r.quantile.numel() == 0);
  CHECK(vec<float>(r.kept_fraction) == std::vector<float>{1.f, 1.f});
  // No update: the quantiles are reported, the mask uses the initial 0.9 (0.9 >= 0.9 passes).
  auto nu = semiseg::dcrs_init(2);
  r = semiseg::dcrs_update(six_pixels(2), nu, {0.8}, 0.9, false);
  CHECK(vec<float>(nu.thresholds) == std::vector<float>{0.9f, 0.9f});
  CHECK(vec<float>(r.quantile) == std::vector<float>{0.6f, 0.7f});
  CHECK(vec<uint8_t>(r.mask) == std::vector<uint8_t>{1, 0, 0, 1, 0, 0});
  // Per-class s {0.5, 0}: class 0 index floor(2.0) = 2 -> 0.7; class 1 index 0 -> 0.8.
  auto pc = semiseg::dcrs_init(2);
  CHECK(vec<float>(semiseg::dcrs_update(six_pixels(2), pc, {0.5, 0.0}).quantile) == std::vector<float>{0.7f, 0.8f});
  // s = 1 is clamped to the last index: the minimum of each class. Momentum 0 takes it as is.
  auto one = semiseg::dcrs_init(2);
  r = semiseg::dcrs_update(six_pixels(2), one, {1.0}, 0.0);
  CHECK(vec<float>(r.quantile) == std::vector<float>{0.6f, 0.7f});
  CHECK(vec<float>(one.thresholds) == std::vector<float>{0.6f, 0.7f});
  CHECK(vec<uint8_t>(r.mask) == std::vector<uint8_t>(6, 1));
}

TEST_CASE("dcrs: errors name the op and the shapes") {
  auto st = semiseg::dcrs_init(3);
  CHECK_THROWS_WITH_AS(semiseg::dcrs_update(six_pixels(2), st),
                       doctest::Contains("dcrs_update: mode per_class with 2 classes needs f32 thresholds [2]"), Error);
  CHECK_THROWS_WITH_AS(semiseg::dcrs_update(six_pixels(3), st, {0.8, 0.7}),
                       doctest::Contains("dcrs_update: 2 quantile fractions s for 3 threshold groups"), Error);
  CHECK_THROWS_WITH_AS(semiseg::dcrs_update(six_pixels(3), st, {1.5}), doctest::Contains("outside [0, 1]"), Error);
  CHECK_THROWS_WITH_AS(semiseg::dcrs_update(six_pixels(3).cast(DType::f64), st),
                       doctest::Contains("dcrs_update (probs)"), Error);
  CHECK_THROWS_WITH_AS(semiseg::dcrs_init(0), doctest::Contains("dcrs_init: needs at least one class"), Error);
}

namespace {
// Teacher-like probabilities [P, C] built to stress the quantile search: class C-1 absent,
// class C-2 on one pixel, confidences a mix of coarse values (ties), continuous values and
// thousands of values inside the top histogram bin (many equal), some argmax ties.
std::vector<float> stress_probs(int64_t P, int C, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(0.f, 1.f);
  std::vector<float> p(size_t(P * C));
  for (int64_t i = 0; i < P; ++i) {
    const int c = i == P / 2 ? C - 2 : int(rng() % uint32_t(C - 2));
    const float kind = u(rng);
    float v;
    if (kind < 0.35f) v = float(1 + rng() % 64) / 64.f;                      // ties
    else if (kind < 0.65f) v = 1.f / C + u(rng) * (1.f - 1.f / C);           // continuous
    else v = 1.f - float(rng() % 300) * 0x1p-21f;                            // one bin, repeats
    float* row = p.data() + i * C;
    for (int k = 0; k < C; ++k) row[k] = v * u(rng) * 0.99f;
    row[c] = v;
    if (c > 0 && kind > 0.95f) row[c - 1] = v;  // argmax tie: the lower index wins
  }
  return p;
}

// The definition, written plainly: per pixel max / first argmax, per group sort descending,
// take index min(floor(N * s), N - 1).
std::vector<float> sorted_quantiles(const std::vector<float>& p, int64_t P, int C, int T, double s) {
  std::vector<std::vector<float>> g(static_cast<size_t>(T));
  for (int64_t i = 0; i < P; ++i) {
    const float* row = p.data() + i * C;
    int a = 0;
    for (int k = 1; k < C; ++k)
      if (row[k] > row[a]) a = k;
    g[T == 1 ? 0 : a].push_back(row[a]);
  }
  std::vector<float> q(size_t(T), NAN);
  for (int t = 0; t < T; ++t) {
    if (g[t].empty()) continue;
    std::sort(g[t].begin(), g[t].end(), std::greater<float>());
    q[t] = g[t][std::min<size_t>(size_t(std::floor(double(g[t].size()) * s)), g[t].size() - 1)];
  }
  return q;
}

struct Out {
  std::vector<float> conf, quantile, thr, kept;
  std::vector<int32_t> label, count;
  std::vector<uint8_t> mask;
};
Out run_step(bool emulated, const std::vector<float>& p, int64_t P, int C, int T, const std::vector<double>& s,
             bool update) {
  Out o;
  o.conf.assign(P, -1.f), o.label.assign(P, -1), o.mask.assign(P, 9), o.quantile.assign(T, -1.f);
  o.thr.assign(T, 0.9f), o.count.assign(C, -1), o.kept.assign(C, -1.f);
  kernels::DcrsIo io;
  io.probs = p.data(), io.P = P, io.C = C, io.T = T, io.s = s.data(), io.momentum = 0.9f, io.update = update;
  io.thr = o.thr.data(), io.conf = o.conf.data(), io.label = o.label.data(), io.mask = o.mask.data();
  io.quantile = o.quantile.data(), io.count = o.count.data(), io.kept_fraction = o.kept.data();
  if (!emulated) {
    kernels::cpu::dcrs_step(io);
    return o;
  }
  const int64_t G = std::max(T, 1);
  std::vector<int32_t> hist(G * kernels::kDcrsBins, 77), sel(G * 5, 77), kept(C, 77);
  std::vector<float> cand(std::max<int64_t>(P, 1), NAN);
  kernels::DcrsWorkspace ws;
  ws.hist = hist.data(), ws.sel = sel.data(), ws.kept = kept.data(), ws.cand = cand.data();
  kernels::emu::dcrs_step(io, ws);
  return o;
}

void check_same(const Out& a, const Out& b, const std::string& tag) {
  CHECK_MESSAGE(close_arrays(tag + " quantile", a.quantile.data(), b.quantile.data(), int64_t(a.quantile.size()), 0, 0), tag);
  CHECK_MESSAGE(close_arrays(tag + " thr", a.thr.data(), b.thr.data(), int64_t(a.thr.size()), 0, 0), tag);
  CHECK_MESSAGE(close_arrays(tag + " kept", a.kept.data(), b.kept.data(), int64_t(a.kept.size()), 0, 0), tag);
  CHECK_MESSAGE(a.conf == b.conf, tag);
  CHECK_MESSAGE(a.label == b.label, tag);
  CHECK_MESSAGE(a.count == b.count, tag);
  CHECK_MESSAGE(a.mask == b.mask, tag);
}
}  // namespace

TEST_CASE("dcrs: the CPU step equals a plain std::sort reference") {
  for (auto [P, C] : {std::pair<int64_t, int>{1, 3}, {7, 4}, {5000, 19}, {20000, 6}}) {
    auto p = stress_probs(P, C, uint32_t(P + C));
    for (double s : {0.8, 0.0, 0.37, 1.0}) {
      for (int T : {C, 1}) {
        const Out o = run_step(false, p, P, C, T, {std::vector<double>(size_t(T), s)}, true);
        auto want = sorted_quantiles(p, P, C, T, s);
        CHECK(close_arrays("quantile P" + std::to_string(P) + " T" + std::to_string(T) + " s" + std::to_string(s),
                           o.quantile.data(), want.data(), T, 0, 0));
        for (int64_t i = 0; i < P; ++i) {
          const int t = T == 1 ? 0 : o.label[i];
          REQUIRE(o.mask[i] == (o.conf[i] >= o.thr[t] ? 1 : 0));
        }
      }
    }
  }
}

// The lab's dcrs entry checks 19 and 3 classes of random probabilities at the scales' sizes;
// here the edge cases: one pixel, one class with thousands of pixels in one bin (C = 3:
// class 0 only, class 1 a single pixel, class 2 absent), one or no threshold, no update.
TEST_CASE("dcrs kernels: emulated histogram search edge cases equal the CPU step bit for bit (one pixel, piled bins)") {
  struct S { int64_t P; int C; };
  for_each_fiber_order([](const char* order) {
    for (S sz : {S{1, 3}, S{333, 5}, S{4099, 3}}) {
      auto p = stress_probs(sz.P, sz.C, uint32_t(sz.P * 7 + sz.C));
      for (int T : {sz.C, 1, 0}) {
        std::vector<double> s(static_cast<size_t>(T));
        for (int t = 0; t < T; ++t) s[t] = t % 3 == 0 ? 0.8 : (t % 3 == 1 ? 0.5 : 0.97);
        const std::string tag = std::string(order) + " P" + std::to_string(sz.P) + " C" + std::to_string(sz.C) +
                                " T" + std::to_string(T);
        check_same(run_step(true, p, sz.P, sz.C, T, s, true), run_step(false, p, sz.P, sz.C, T, s, true), tag);
        check_same(run_step(true, p, sz.P, sz.C, T, s, false), run_step(false, p, sz.P, sz.C, T, s, false), tag + " no update");
      }
    }
  });
}

GPU_TEST_CASE("gpu: dcrs_update matches the CPU bit for bit on a teacher batch") {
  const int64_t N = 4, H = 256, W = 512;
  const int C = 19;
  Tensor probs = Tensor::from_vector(stress_probs(N * H * W, C, 5), {N, H, W, C});
  for (DcrsMode mode : {DcrsMode::per_class, DcrsMode::global, DcrsMode::off}) {
    auto sc = semiseg::dcrs_init(C, mode), sg = semiseg::dcrs_init(C, mode, 0.9, Device::cuda);
    for (int step = 0; step < 3; ++step) {
      auto rc = semiseg::dcrs_update(probs, sc), rg = semiseg::dcrs_update(probs.cuda(), sg);
      CHECK(close_tensors("thresholds", sg.thresholds, sc.thresholds, 0, 0));
      CHECK(close_tensors("quantile", rg.quantile, rc.quantile, 0, 0));
      CHECK(close_tensors("kept", rg.kept_fraction, rc.kept_fraction, 0, 0));
      CHECK(close_tensors("count", rg.count, rc.count, 0, 0));
      CHECK(vec<uint8_t>(rg.mask) == vec<uint8_t>(rc.mask));
      CHECK(vec<int32_t>(rg.label) == vec<int32_t>(rc.label));
    }
  }
}
