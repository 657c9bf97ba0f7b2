// Pooling (NHWC): PyTorch's output sizes and max pooling values computed by hand, gradients
// by hand and in double, emulated CUDA kernels against the CPU kernels, GPU against CPU.
//
// CUDA kernels run here in emulation, through their kernels::emu entry points, against
// the CPU kernels:
//   max_pool_kernel, max_pool_backward_kernel, avg_pool_kernel, avg_pool_backward_kernel (each
//   for f32 and bf16).
#include <algorithm>
#include <numeric>
#include <random>

#include "kernels/cpu/pool.h"
#include "kernels/cuda/pool.h"
#include "tests/bf16_helpers.h"
#include "tests/emu_helpers.h"
#include "tests/helpers.h"

using namespace c3;
using namespace c3test;
using kernels::PoolGeom;

namespace {
// Distinct values spaced 0.01 apart in a seeded random order: no ties, and a gradient-check
// step of 1e-6 never changes a window's winner.
Tensor distinct_tensor(const Shape& s, uint32_t seed) {
  std::vector<double> v(shape_numel(s));
  std::iota(v.begin(), v.end(), 0.0);
  std::shuffle(v.begin(), v.end(), std::mt19937(seed));
  for (double& d : v) d *= 0.01;
  return Tensor::from_vector(v, s);
}
}  // namespace

TEST_CASE("pool: output sizes follow PyTorch's rule") {
  // out = floor((H + 2p - k + (ceil ? s - 1 : 0)) / s) + 1, then in ceil mode one less when the
  // last window would start at or beyond H + p (inside neither the input nor the left padding).
  using kernels::pool_out_size;
  CHECK(pool_out_size(5, 3, 2, 1, false) == 3);  // (5+2-3)/2 + 1
  CHECK(pool_out_size(5, 3, 2, 1, true) == 3);   // (5+2-3+1)/2 + 1 = 3; start (3-1)*2 = 4 < 6
  CHECK(pool_out_size(6, 3, 2, 1, false) == 3);  // 5/2 + 1
  CHECK(pool_out_size(6, 3, 2, 1, true) == 4);   // 6/2 + 1 = 4; start 6 < 6 + 1: kept
  CHECK(pool_out_size(4, 3, 2, 1, false) == 2);  // 3/2 + 1
  CHECK(pool_out_size(4, 3, 2, 1, true) == 3);   // 4/2 + 1 = 3; start 4 < 5: kept
  CHECK(pool_out_size(3, 2, 2, 1, false) == 2);  // 3/2 + 1
  CHECK(pool_out_size(3, 2, 2, 1, true) == 2);   // 4/2 + 1 = 3, but start (3-1)*2 = 4 >= 3 + 1: dropped
  CHECK(pool_out_size(161, 3, 2, 1, false) == 81);  // ResNet stem: 160/2 + 1
  CHECK(pool_out_size(161, 3, 2, 1, true) == 81);   // 161/2 + 1 = 81; start 160 < 162
  CHECK(pool_out_size(6, 3, 2, 0, true) == 3);      // (3+1)/2 + 1 = 3; start 4 < 6
  CHECK(pool_out_size(1, 3, 2, 1, true) == 1);      // (0+1)/2 + 1 = 1
  Tensor y = max_pool2d(Tensor::zeros({2, 6, 5, 3}), 3, 2, 1, true);
  CHECK(y.shape() == Shape{2, 4, 3, 3});
}

TEST_CASE("pool: max_pool2d 3/2/1 on a 4x4 input by hand, floor and ceil mode") {
  // rows:  1  5  2  8 |  7  3  9  4 |  6 12 10 11 | 16 13 15 14
  const std::vector<float> v{1, 5, 2, 8, 7, 3, 9, 4, 6, 12, 10, 11, 16, 13, 15, 14};
  Tensor x = Tensor::from_vector(v, {1, 4, 4, 1});
  // Floor: 2x2. Windows rows {0,1},{1,2,3} x cols {0,1},{1,2,3}.
  Tensor y = max_pool2d(x, 3, 2, 1, false);
  CHECK(y.shape() == Shape{1, 2, 2, 1});
  CHECK(y.to_vector<float>() == std::vector<float>{7, 9, 16, 15});
  // Ceil: 3x3; the last row/column of windows covers only row/column 3 of the input.
  Tensor xc = x.clone().set_requires_grad();
  Tensor yc = max_pool2d(xc, 3, 2, 1, true);
  CHECK(yc.shape() == Shape{1, 3, 3, 1});
  CHECK(yc.to_vector<float>() == std::vector<float>{7, 9, 8, 16, 15, 14, 16, 15, 14});
  // Gradient of sum(y): each input counts the windows it wins: 16 (idx 12), 15 (idx 14) and
  // 14 (idx 15) twice; 7 (idx 4), 9 (idx 6), 8 (idx 3) once.
  sum(yc).backward();
  CHECK(xc.grad().to_vector<float>() == std::vector<float>{0, 0, 0, 1, 1, 0, 1, 0, 0, 0, 0, 0, 2, 0, 2, 2});
  // Two channels are pooled independently: channel 1 = -v, so its winners are the minima.
  std::vector<float> v2;
  for (float f : v) v2.insert(v2.end(), {f, -f});
  Tensor y2 = max_pool2d(Tensor::from_vector(v2, {1, 4, 4, 2}), 3, 2, 1, false);
  CHECK(y2.to_vector<float>() == std::vector<float>{7, -1, 9, -2, 16, -3, 15, -3});
}

TEST_CASE("pool: ties go to the first cell, padding never wins, NaN propagates") {
  Tensor x = Tensor::full({1, 2, 2, 1}, 5.0).set_requires_grad();
  Tensor y = max_pool2d(x, 2, 2, 0, false);
  CHECK(y.to_vector<float>() == std::vector<float>{5});
  sum(y).backward();
  CHECK(x.grad().to_vector<float>() == std::vector<float>{1, 0, 0, 0});
  // All negative inputs with padding 1: padded cells act as -inf, not 0.
  Tensor n = Tensor::from_vector<float>({-3, -1, -2, -4}, {1, 2, 2, 1});
  CHECK(max_pool2d(n, 3, 2, 1, false).to_vector<float>() == std::vector<float>{-1});
  const float nan = std::numeric_limits<float>::quiet_NaN();
  Tensor q = Tensor::from_vector<float>({1, nan, 9, 2}, {1, 2, 2, 1});
  CHECK(std::isnan(max_pool2d(q, 2, 2, 0, false).item()));
}

TEST_CASE("pool: global_avg_pool by hand") {
  // Image 0: channel 0 = {1,2,3,4} -> 2.5, channel 1 = {10,20,30,0} -> 15.
  // Image 1: channel 0 = {0,0,0,8} -> 2,   channel 1 = {-1,-1,-1,-1} -> -1.
  Tensor x = Tensor::from_vector<double>({1, 10, 2, 20, 3, 30, 4, 0, 0, -1, 0, -1, 0, -1, 8, -1}, {2, 2, 2, 2})
                 .set_requires_grad();
  Tensor y = global_avg_pool(x);
  CHECK(y.shape() == Shape{2, 1, 1, 2});
  CHECK(y.to_vector<double>() == std::vector<double>{2.5, 15, 2, -1});
  // d/dx of sum(y * [1, 2, 3, 4]) = the weight of the pixel's (image, channel) over HW = 4.
  sum(mul(y, Tensor::from_vector<double>({1, 2, 3, 4}, {2, 1, 1, 2}))).backward();
  CHECK(x.grad().to_vector<double>() ==
        std::vector<double>{0.25, 0.5, 0.25, 0.5, 0.25, 0.5, 0.25, 0.5, 0.75, 1, 0.75, 1, 0.75, 1, 0.75, 1});
}

TEST_CASE("pool: bad input names the op and the shapes") {
  CHECK_THROWS_WITH_AS(max_pool2d(Tensor::zeros({4, 4, 1})), doctest::Contains("max_pool2d: x must be [N, H, W, C], got f32[4,4,1] cpu"), Error);
  CHECK_THROWS_WITH_AS(max_pool2d(Tensor::zeros({1, 4, 4, 1}), 3, 2, 2), doctest::Contains("padding 2 exceeds half the kernel size 3"), Error);
  CHECK_THROWS_WITH_AS(max_pool2d(Tensor::zeros({1, 4, 4, 1}), 3, 0, 1), doctest::Contains("stride 0"), Error);
  CHECK_THROWS_WITH_AS(max_pool2d(Tensor::zeros({1, 2, 9, 1}), 5, 1, 1), doctest::Contains("larger than the input f32[1,2,9,1]"), Error);
  CHECK_THROWS_WITH_AS(max_pool2d(Tensor::zeros({1, 4, 4, 1}, DType::i32)), doctest::Contains("max_pool2d"), Error);
  CHECK_THROWS_WITH_AS(global_avg_pool(Tensor::zeros({4, 4})), doctest::Contains("global_avg_pool: x must be [N, H, W, C], got f32[4,4] cpu"), Error);
}

TEST_CASE("pool: gradient checks in double") {
  Tensor x = distinct_tensor({2, 5, 6, 3}, 71);
  Tensor wf = random_tensor({2, 3, 3, 3}, 72, DType::f64), wc = random_tensor({2, 3, 4, 3}, 73, DType::f64);
  Tensor w2 = random_tensor({2, 2, 3, 3}, 74, DType::f64);
  CHECK(gradcheck("max_pool2d 3/2/1 floor", [&](auto& in) { return sum(mul(max_pool2d(in[0], 3, 2, 1, false), wf)); }, {x}));
  CHECK(gradcheck("max_pool2d 3/2/1 ceil", [&](auto& in) { return sum(mul(max_pool2d(in[0], 3, 2, 1, true), wc)); }, {x}));
  CHECK(gradcheck("max_pool2d 2/2/0", [&](auto& in) { return sum(mul(max_pool2d(in[0], 2, 2, 0, false), w2)); }, {x}));
  Tensor wa = random_tensor({2, 1, 1, 3}, 75, DType::f64);
  CHECK(gradcheck("global_avg_pool", [&](auto& in) { return sum(mul(global_avg_pool(in[0]), wa)); }, {x}));
}

namespace {
struct PoolCase {
  int64_t n, h, w, c;
  int k, s, p;
  bool ceil;
};
// What the lab's max_pool entries (bench/lab/k_norm.cpp: the stem's 3/2/1 ceil-mode pool of
// distinct values) leave out: a single element; a window larger than the input; ties (values
// quantized to eighths) in floor mode; 2/2/1 in ceil mode, where the last window is dropped;
// a window wider than the stride.
const PoolCase kPoolCases[] = {{1, 1, 1, 1, 1, 1, 0, false}, {1, 1, 1, 3, 3, 2, 1, true},
                               {2, 7, 9, 5, 3, 2, 1, false}, {3, 17, 5, 19, 2, 2, 1, true},
                               {1, 10, 11, 33, 5, 1, 2, false}};

PoolGeom geometry(const PoolCase& pc) {
  PoolGeom g{pc.n, pc.h, pc.w, pc.c, 0, 0, pc.k, pc.s, pc.p};
  g.Ho = kernels::pool_out_size(pc.h, pc.k, pc.s, pc.p, pc.ceil);
  g.Wo = kernels::pool_out_size(pc.w, pc.k, pc.s, pc.p, pc.ceil);
  return g;
}
}  // namespace

TEST_CASE("pool kernels: emulated max pool edge cases match the CPU exactly (one element, ties, floor mode, other windows)") {
  for_each_fiber_order([](const char* order) {
    for (const PoolCase& pc : kPoolCases) {
      const PoolGeom g = geometry(pc);
      const std::string tag = std::string(order) + " [" + std::to_string(pc.n) + "," + std::to_string(pc.h) + "," +
                              std::to_string(pc.w) + "," + std::to_string(pc.c) + "] k" + std::to_string(pc.k);
      CAPTURE(tag);
      const int64_t n_in = g.N * g.H * g.W * g.C, n_out = g.N * g.Ho * g.Wo * g.C;
      auto x = random_floats(n_in, 81, -2.f, 2.f);
      for (float& f : x) f = std::round(f * 8) / 8;  // ties, to check both pick the same cell
      auto dy = random_floats(n_out, 82);
      std::vector<float> y(n_out), y_e(n_out, -99.f), dx(n_in), dx_e(n_in, -99.f);
      std::vector<int32_t> am(n_out), am_e(n_out, -1);
      kernels::cpu::max_pool2d(x.data(), g, y.data(), am.data());
      kernels::emu::max_pool2d_f32(x.data(), g, y_e.data(), am_e.data());
      CHECK(close_arrays("max_pool2d", y_e.data(), y.data(), n_out, 0, 0));
      CHECK(am_e == am);
      kernels::cpu::max_pool2d_backward(dy.data(), am.data(), g, dx.data());
      kernels::emu::max_pool2d_backward_f32(dy.data(), am.data(), g, dx_e.data());
      CHECK(close_arrays("max_pool2d backward", dx_e.data(), dx.data(), n_in, 0, 0));  // same adds, same order
    }
  });
}

// The lab's global_avg_pool entries (bench/lab/k_pool.cpp) run the layer4 features, with
// hundreds of channels; left here: one element, and fewer channels than a block's 32 columns.
TEST_CASE("pool kernels: emulated global average pool edge cases match the CPU (one element, few channels)") {
  struct A { int64_t n, hw, c; };
  for_each_fiber_order([](const char* order) {
    for (A a : {A{1, 1, 1}, A{2, 63, 5}, A{3, 85, 19}}) {
      const std::string tag = std::string(order) + " [" + std::to_string(a.n) + "," + std::to_string(a.hw) + "," +
                              std::to_string(a.c) + "]";
      CAPTURE(tag);
      auto x = random_floats(a.n * a.hw * a.c, 91), dy = random_floats(a.n * a.c, 92);
      std::vector<float> y(a.n * a.c), y_e(a.n * a.c, -99.f), dx(x.size()), dx_e(x.size(), -99.f);
      kernels::cpu::global_avg_pool(x.data(), a.n, a.hw, a.c, y.data());
      kernels::emu::global_avg_pool_f32(x.data(), a.n, a.hw, a.c, y_e.data());
      CHECK(close_arrays("global_avg_pool", y_e.data(), y.data(), a.n * a.c, 1e-6, 1e-5));
      kernels::cpu::global_avg_pool_backward(dy.data(), a.n, a.hw, a.c, dx.data());
      kernels::emu::global_avg_pool_backward_f32(dy.data(), a.n, a.hw, a.c, dx_e.data());
      CHECK(close_arrays("global_avg_pool backward", dx_e.data(), dx.data(), (int64_t)x.size(), 0, 1e-6));
    }
  });
}

// bf16 max pooling: compared in f32, so the winners (argmax) and the values are the CPU f32
// kernel's on the widened inputs, and the backward sums the dy of overlapping windows (k > s:
// up to 25 of them with k5 s1) in f32 in the CPU's order, rounded once: bit for bit. Inputs
// hold ties, negatives, -0, +-Inf and NaNs (a NaN wins its windows).
TEST_CASE("pool kernels: emulated bf16 max pool equals the CPU f32 kernel on widened inputs, rounded once") {
  for_each_fiber_order([](const char* order) {
    for (const PoolCase& pc : kPoolCases) {
      const PoolGeom g = geometry(pc);
      const std::string tag = std::string(order) + " [" + std::to_string(pc.n) + "," + std::to_string(pc.h) + "," +
                              std::to_string(pc.w) + "," + std::to_string(pc.c) + "] k" + std::to_string(pc.k) + " s" +
                              std::to_string(pc.s);
      CAPTURE(tag);
      const int64_t n_in = g.N * g.H * g.W * g.C, n_out = g.N * g.Ho * g.Wo * g.C;
      std::vector<float> v = random_floats(n_in, 181, -2.f, 2.f);
      for (float& f : v) f = std::round(f * 8) / 8;  // ties
      std::vector<bf16> x = ref_narrow(v);
      for (int64_t i = 5; i < n_in; i += 97) x[size_t(i)] = kernels::to_bf16(NAN);
      for (int64_t i = 11; i < n_in; i += 89) x[size_t(i)] = kernels::to_bf16(i % 2 ? INFINITY : -INFINITY);
      const auto xf = widened(x);
      const auto dy = random_bf16s(n_out, 182, -1.f, 1.f, false);
      const auto dyf = widened(dy);
      std::vector<float> y(n_out), dx(n_in);
      std::vector<bf16> y_e(n_out), dx_e(n_in);
      std::vector<int32_t> am(n_out), am_e(n_out, -1);
      kernels::cpu::max_pool2d(xf.data(), g, y.data(), am.data());
      kernels::emu::max_pool2d_bf16(x.data(), g, y_e.data(), am_e.data());
      CHECK(same_bf16("max_pool2d bf16", y_e, ref_narrow(y)));
      CHECK(am_e == am);
      kernels::cpu::max_pool2d_backward(dyf.data(), am.data(), g, dx.data());
      kernels::emu::max_pool2d_backward_bf16(dy.data(), am.data(), g, dx_e.data());
      CHECK(same_bf16("max_pool2d backward bf16", dx_e, ref_narrow(dx)));
    }
  });
}

// bf16 global average pooling sums in f32 and rounds the mean once. The CPU f32 kernel sums in
// f64 and divides (the backward: dy / HW) where the device kernel sums in f32 in another order
// (and multiplies by 1/HW), so the f32 results differ in their last bits (1e-6, 1e-5 as in the
// f32 check above) and their roundings to bf16 may fall a step apart: within 1e-6 + 2^-7
// relative of the CPU reference (a bf16 step is at most 2^-7 of the value). Exactly, the bf16
// kernel must equal the emulated f32 kernel on the widened inputs, rounded once: the same f32
// operations in the same order.
TEST_CASE("pool kernels: emulated bf16 global average pool sums in f32 and rounds once") {
  struct A { int64_t n, hw, c; };
  for_each_fiber_order([](const char* order) {
    for (A a : {A{1, 1, 1}, A{2, 63, 5}, A{3, 85, 19}, A{2, 300, 40}}) {
      const std::string tag = std::string(order) + " [" + std::to_string(a.n) + "," + std::to_string(a.hw) + "," +
                              std::to_string(a.c) + "]";
      CAPTURE(tag);
      const int64_t n_in = a.n * a.hw * a.c, n_out = a.n * a.c;
      // Positive values: means away from zero, where a relative tolerance means something.
      const auto x = random_bf16s(n_in, 191, 0.1f, 2.f, false), dy = random_bf16s(n_out, 192, -1.f, 1.f, false);
      const auto xf = widened(x), dyf = widened(dy);
      std::vector<float> y(n_out), y_f32(n_out), dx(n_in), dx_f32(n_in);
      std::vector<bf16> y_e(n_out), dx_e(n_in);
      kernels::emu::global_avg_pool_bf16(x.data(), a.n, a.hw, a.c, y_e.data());
      kernels::emu::global_avg_pool_f32(xf.data(), a.n, a.hw, a.c, y_f32.data());
      CHECK(same_bf16("global_avg_pool bf16 vs the f32 kernel", y_e, ref_narrow(y_f32)));
      kernels::cpu::global_avg_pool(xf.data(), a.n, a.hw, a.c, y.data());
      const auto ref = widened(ref_narrow(y)), got = widened(y_e);
      CHECK(close_arrays("global_avg_pool bf16 vs the CPU", got.data(), ref.data(), n_out, 1e-6, 0x1p-7));
      kernels::emu::global_avg_pool_backward_bf16(dy.data(), a.n, a.hw, a.c, dx_e.data());
      kernels::emu::global_avg_pool_backward_f32(dyf.data(), a.n, a.hw, a.c, dx_f32.data());
      CHECK(same_bf16("global_avg_pool backward bf16 vs the f32 kernel", dx_e, ref_narrow(dx_f32)));
      kernels::cpu::global_avg_pool_backward(dyf.data(), a.n, a.hw, a.c, dx.data());
      CHECK(within_bf16_ulps("global_avg_pool backward bf16 vs the CPU", dx_e, ref_narrow(dx), 1));
    }
  });
  // By hand: the mean of 3200 values 1 + 2^-7 is 1 + 2^-7 (bits 0x3f81). Each of the block's 8
  // rows of threads sums 400 of them: every f32 partial sum k (1 + 2^-7) is exact, where
  // partial sums kept in bf16 (8 significant bits) would be rounded from the third addition
  // on and stall at 512 (where a bf16 step is 4).
  const std::vector<bf16> ones(3200 * 3, bf16{0x3f81});
  std::vector<bf16> mean(3);
  kernels::emu::global_avg_pool_bf16(ones.data(), 1, 3200, 3, mean.data());
  for (bf16 m : mean) CHECK(m.bits == 0x3f81);
}

GPU_TEST_CASE("pool: GPU max pool and global average pool match the CPU at realistic shapes") {
  for (bool ceil : {false, true}) {
    CAPTURE(ceil);
    Tensor x = random_tensor({16, 161, 161, 64}, 101), dy = random_tensor({16, 81, 81, 64}, 102);
    Tensor xc = x.clone().set_requires_grad(), xg = x.cuda().set_requires_grad();
    Tensor yc = max_pool2d(xc, 3, 2, 1, ceil), yg = max_pool2d(xg, 3, 2, 1, ceil);
    CHECK(close_tensors("max_pool2d", yg, yc, 0, 0));
    sum(mul(yc, dy)).backward();
    sum(mul(yg, dy.cuda())).backward();
    CHECK(close_tensors("max_pool2d backward", xg.grad(), xc.grad(), 1e-6, 1e-6));
  }
  Tensor x = random_tensor({16, 33, 65, 2048}, 103), dy = random_tensor({16, 1, 1, 2048}, 104);
  Tensor xc = x.clone().set_requires_grad(), xg = x.cuda().set_requires_grad();
  Tensor yc = global_avg_pool(xc), yg = global_avg_pool(xg);
  CHECK(close_tensors("global_avg_pool", yg, yc, 1e-6, 1e-5));
  sum(mul(yc, dy)).backward();
  sum(mul(yg, dy.cuda())).backward();
  CHECK(close_tensors("global_avg_pool backward", xg.grad(), xc.grad(), 0, 1e-6));
}
