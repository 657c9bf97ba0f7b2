// 2-D convolution: hand-computed values, a direct convolution in double as the reference for
// a sweep of configurations (forward and every gradient), the im2col kernels and their
// chunking, gradient checks, error messages, the launch count on the CPU, and cuDNN against
// the CPU on a GPU.
#include <algorithm>
#include <cmath>
#include <random>
#include <cstdio>
#include <string>
#include <vector>

#include "core/rng.h"
#include "kernels/conv_algo.h"
#include "kernels/cpu/conv.h"
#include "kernels/cuda/conv_cudnn.h"
#include "kernels/launch_counter.h"
#include "tests/helpers.h"

using namespace c3;
using namespace c3test;

namespace {

struct Conv {  // one configuration
  int64_t N, H, W, C, K, kh, kw;
  int sh, sw, ph, pw, dh, dw;
  std::string str() const {
    char b[200];
    std::snprintf(b, sizeof b, "x[%lld,%lld,%lld,%lld] w[%lld,%lld,%lld,%lld] s%dx%d p%dx%d d%dx%d", (long long)N,
                  (long long)H, (long long)W, (long long)C, (long long)K, (long long)kh, (long long)kw, (long long)C,
                  sh, sw, ph, pw, dh, dw);
    return b;
  }
  int64_t Ho() const { return (H + 2 * ph - dh * (kh - 1) - 1) / sh + 1; }
  int64_t Wo() const { return (W + 2 * pw - dw * (kw - 1) - 1) / sw + 1; }
  bool valid() const { return H + 2 * ph >= dh * (kh - 1) + 1 && W + 2 * pw >= dw * (kw - 1) + 1; }
  kernels::ConvGeom geom() const { return kernels::make_conv_geom(N, H, W, C, K, kh, kw, sh, sw, ph, pw, dh, dw); }
};

// The reference: the definition of the convolution as loops, in double, written apart from
// the code under test. Gradients of loss = sum(y * dy).
struct Direct {
  std::vector<double> y, dx, dw, db;
};
Direct direct_conv(const Conv& c, const std::vector<double>& x, const std::vector<double>& w,
                   const std::vector<double>& b, const std::vector<double>& dy) {
  const int64_t Ho = c.Ho(), Wo = c.Wo();
  Direct r{std::vector<double>(c.N * Ho * Wo * c.K), std::vector<double>(x.size()), std::vector<double>(w.size()),
           std::vector<double>(c.K)};
  for (int64_t n = 0; n < c.N; ++n)
    for (int64_t oy = 0; oy < Ho; ++oy)
      for (int64_t ox = 0; ox < Wo; ++ox)
        for (int64_t k = 0; k < c.K; ++k) {
          const int64_t yi = ((n * Ho + oy) * Wo + ox) * c.K + k;
          double s = b.empty() ? 0.0 : b[k];
          r.db[k] += dy[yi];
          for (int64_t ky = 0; ky < c.kh; ++ky)
            for (int64_t kx = 0; kx < c.kw; ++kx) {
              const int64_t iy = oy * c.sh - c.ph + ky * c.dh, ix = ox * c.sw - c.pw + kx * c.dw;
              if (iy < 0 || iy >= c.H || ix < 0 || ix >= c.W) continue;
              for (int64_t ci = 0; ci < c.C; ++ci) {
                const int64_t xi = ((n * c.H + iy) * c.W + ix) * c.C + ci, wi = ((k * c.kh + ky) * c.kw + kx) * c.C + ci;
                s += w[wi] * x[xi];
                r.dx[xi] += w[wi] * dy[yi];
                r.dw[wi] += x[xi] * dy[yi];
              }
            }
          r.y[yi] = s;
        }
  return r;
}

std::vector<double> doubles(int64_t n, uint32_t seed) {
  auto f = random_floats(n, seed);
  return {f.begin(), f.end()};
}
Tensor tensor_of(const std::vector<double>& v, const Shape& s, DType dt) {
  Tensor t = Tensor::from_vector(v, s);
  return dt == DType::f64 ? t : t.cast(dt);
}

// Runs the op forward and backward (loss = sum(y * dy)) and compares all four results
// with the direct convolution.
void check_against_direct(const Conv& c, DType dt, double atol, double rtol, uint32_t seed) {
  const auto xv = doubles(c.N * c.H * c.W * c.C, seed), wv = doubles(c.K * c.kh * c.kw * c.C, seed + 1),
             bv = doubles(c.K, seed + 2), dyv = doubles(c.N * c.Ho() * c.Wo() * c.K, seed + 3);
  const Direct ref = direct_conv(c, xv, wv, bv, dyv);
  Tensor x = tensor_of(xv, {c.N, c.H, c.W, c.C}, dt).set_requires_grad();
  Tensor w = tensor_of(wv, {c.K, c.kh, c.kw, c.C}, dt).set_requires_grad();
  Tensor b = tensor_of(bv, {c.K}, dt).set_requires_grad();
  Tensor dy = tensor_of(dyv, {c.N, c.Ho(), c.Wo(), c.K}, dt);
  Tensor y = conv2d(x, w, b, c.sh, c.sw, c.ph, c.pw, c.dh, c.dw);
  sum(mul(y, dy)).backward();
  const std::string tag = c.str() + (dt == DType::f64 ? " f64" : " f32");
  auto vs = [](const std::vector<double>& v) { return v.data(); };
  REQUIRE(y.shape() == Shape{c.N, c.Ho(), c.Wo(), c.K});
  CHECK(close_arrays("y " + tag, as_doubles(y).data(), vs(ref.y), y.numel(), atol, rtol));
  CHECK(close_arrays("dx " + tag, as_doubles(x.grad()).data(), vs(ref.dx), x.numel(), atol, rtol));
  CHECK(close_arrays("dw " + tag, as_doubles(w.grad()).data(), vs(ref.dw), w.numel(), atol, rtol));
  CHECK(close_arrays("db " + tag, as_doubles(b.grad()).data(), vs(ref.db), b.numel(), atol, rtol));
}

// f32 through both CPU paths (oneDNN's kernels and the im2col reference), then back to the default.
void check_f32_both_paths(const Conv& c, double atol, double rtol, uint32_t seed) {
  for (bool onednn : {true, false}) {
    set_cpu_conv_onednn(onednn);
    check_against_direct(c, DType::f32, atol, rtol, seed);
  }
  set_cpu_conv_onednn(true);
}

}  // namespace

TEST_CASE("conv: values computed by hand") {
  // 3x3 image 1..9, 2x2 kernel [[1,2],[3,4]], stride 1, no padding:
  //   y00 = 1*1 + 2*2 + 4*3 + 5*4 = 37, y01 = 47, y10 = 67, y11 = 77.
  Tensor x = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 3, 3, 1}).set_requires_grad();
  Tensor w = Tensor::from_vector<float>({1, 2, 3, 4}, {1, 2, 2, 1}).set_requires_grad();
  Tensor b = Tensor::from_vector<float>({0.5f}, {1}).set_requires_grad();
  CHECK(conv2d(x, w).to_vector<float>() == std::vector<float>{37, 47, 67, 77});
  Tensor y = conv2d(x, w, b);
  CHECK(y.shape() == Shape{1, 2, 2, 1});
  CHECK(y.to_vector<float>() == std::vector<float>{37.5f, 47.5f, 67.5f, 77.5f});
  // loss = sum(y): dx counts the kernel taps over each pixel, dw sums each tap's 2x2 window
  // (1+2+4+5 = 12, ...), db counts the output pixels.
  sum(y).backward();
  CHECK(x.grad().to_vector<float>() == std::vector<float>{1, 3, 2, 4, 10, 6, 3, 7, 4});
  CHECK(w.grad().to_vector<float>() == std::vector<float>{12, 16, 24, 28});
  CHECK(b.grad().to_vector<float>() == std::vector<float>{4});

  // 5x5 image x[i][j] = 5i + j + 1, the same kernel dilated by 2 (taps 2 apart), padding 1,
  // stride 2: Ho = (5 + 2 - 3) / 2 + 1 = 3. Output (oy, ox) reads rows 2oy-1, 2oy+1 and
  // columns 2ox-1, 2ox+1; e.g. y00 = 4 * x[1][1] = 28, y11 = 1*7 + 2*9 + 3*17 + 4*19 = 152.
  std::vector<float> img(25);
  for (int i = 0; i < 25; ++i) img[i] = float(i + 1);
  Tensor x5 = Tensor::from_vector(img, {1, 5, 5, 1});
  Tensor y5 = conv2d(x5, w.detach(), Tensor(), 2, 1, 2);
  CHECK(y5.shape() == Shape{1, 3, 3, 1});
  CHECK(y5.to_vector<float>() == std::vector<float>{28, 57, 27, 82, 152, 66, 34, 55, 19});

  // Channel order: w [Cout, kh, kw, Cin]. One 1x2 image with pixels (1,2), (3,4) and a 1x2
  // kernel whose taps are (1,10), (100,1000): 1*1 + 2*10 + 3*100 + 4*1000 = 4321.
  Tensor xc = Tensor::from_vector<float>({1, 2, 3, 4}, {1, 1, 2, 2});
  Tensor wc = Tensor::from_vector<float>({1, 10, 100, 1000, 2, 0, 0, 0}, {2, 1, 2, 2});
  CHECK(conv2d(xc, wc).to_vector<float>() == std::vector<float>{4321, 2});
  // A 1x1 conv (the GEMM path): y = W x per pixel, output channel k = row k of W.
  Tensor w1 = Tensor::from_vector<float>({1, 10, 100, 1000}, {2, 1, 1, 2});
  CHECK(conv2d(xc, w1, Tensor::from_vector<float>({0, 0.5f}, {2})).to_vector<float>() ==
        std::vector<float>{21, 2100.5f, 43, 4300.5f});
  // Rectangular stride and padding through the full overload: a 1x3 image, a 1x1 kernel of 2,
  // stride (1, 2), padding (1, 0): output rows read image rows -1, 0, 1 (only 0 exists) and
  // columns 0 and 2.
  Tensor xr = Tensor::from_vector<float>({1, 2, 3}, {1, 1, 3, 1});
  Tensor yr = conv2d(xr, Tensor::from_vector<float>({2}, {1, 1, 1, 1}), Tensor(), 1, 2, 1, 0, 1, 1);
  CHECK(yr.shape() == Shape{1, 3, 2, 1});  // Ho = 1 + 2 = 3, Wo = (3 - 1) / 2 + 1 = 2
  CHECK(yr.to_vector<float>() == std::vector<float>{0, 0, 2, 6, 0, 0});
}

TEST_CASE("conv: bad input names the op and the shapes") {
  Tensor x = Tensor::zeros({1, 5, 5, 3}), w = Tensor::zeros({4, 3, 3, 3});
  CHECK_THROWS_WITH_AS(conv2d(x, Tensor::zeros({4, 3, 3, 2})),
                       doctest::Contains("conv2d: the input has 3 channels but the weight expects 2"), Error);
  CHECK_THROWS_WITH_AS(conv2d(Tensor::zeros({5, 5, 3}), w), doctest::Contains("NHWC [N,H,W,Cin], got f32[5,5,3]"),
                       Error);
  CHECK_THROWS_WITH_AS(conv2d(x, Tensor::zeros({4, 3, 3})), doctest::Contains("weight must be [Cout,kh,kw,Cin]"),
                       Error);
  CHECK_THROWS_WITH_AS(conv2d(x, w, Tensor::zeros({3})), doctest::Contains("bias must be [4]"), Error);
  CHECK_THROWS_WITH_AS(conv2d(x, w, Tensor(), 1, 0, 4),
                       doctest::Contains("output would be empty: input f32[1,5,5,3] cpu, kernel 3x3 (spanning 9x9"),
                       Error);
  CHECK_THROWS_WITH_AS(conv2d(x, w, Tensor(), 0), doctest::Contains("stride and dilation must be >= 1"), Error);
  CHECK_THROWS_WITH_AS(conv2d(x, Tensor::zeros({4, 3, 3, 3}, DType::f64)), doctest::Contains("dtype mismatch"), Error);
  CHECK_THROWS_WITH_AS(conv2d(Tensor::zeros({1, 5, 5, 3}, DType::i32), w),
                       doctest::Contains("conv2d: expected a floating tensor"), Error);
  CHECK_NOTHROW(conv2d(x, w, Tensor(), 1, 0, 2));  // 5x5 with a 5x5-span kernel: one pixel
}

TEST_CASE("conv: matches a direct convolution over a sweep of configurations") {
  // Kernel 1/3, stride 1/2, padding 0/1/2, dilation 1/2/4, odd spatial sizes, 1..5 channels.
  // f64: only summation order differs, 1e-12. f32 (oneDNN's kernels and im2col): inputs in [-1, 1], at most 3*3*5 = 45
  // products per output and 2*9*11 = 198 per weight gradient; 2e-5 absolute covers the
  // rounding of such sums (about 1e-6 here).
  int configs = 0;
  uint32_t seed = 100;
  for (int k : {1, 3})
    for (int s : {1, 2})
      for (int p : {0, 1, 2})
        for (int d : {1, 2, 4}) {
          if (k == 1 && d > 1) continue;  // dilation does nothing to a 1x1 kernel
          const int64_t cin = 1 + seed % 5, cout = 1 + (seed / 5) % 5;
          const Conv c{2, 7 + 2 * (seed % 2), 9, cin, cout, k, k, s, s, p, p, d, d};
          ++seed;
          if (!c.valid()) continue;
          check_against_direct(c, DType::f64, 1e-12, 1e-12, seed * 7);
          check_f32_both_paths(c, 2e-5, 1e-5, seed * 7);
          ++configs;
        }
  CHECK(configs >= 20);
  // Rectangular kernels, strides, paddings and dilations (the full overload).
  for (const Conv& c : {Conv{1, 5, 11, 2, 3, 1, 3, 1, 2, 0, 1, 1, 2}, Conv{3, 9, 4, 5, 1, 3, 2, 2, 1, 2, 0, 4, 1},
                        Conv{1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1}, Conv{2, 3, 3, 4, 5, 3, 3, 2, 2, 1, 1, 1, 1}}) {
    check_against_direct(c, DType::f64, 1e-12, 1e-12, 7);
    check_f32_both_paths(c, 2e-5, 1e-5, 7);
  }
}

TEST_CASE("conv: gradient checks in double") {
  Tensor x = random_tensor({2, 5, 6, 3}, 41, DType::f64), b = random_tensor({4}, 42, DType::f64);
  Tensor w3 = random_tensor({4, 3, 3, 3}, 43, DType::f64), w1 = random_tensor({4, 1, 1, 3}, 44, DType::f64);
  Tensor r = random_tensor({2, 5, 6, 4}, 45, DType::f64);  // weights the loss so every output counts
  auto loss = [](const Tensor& y, const Tensor& r) { return sum(mul(y, r)); };
  CHECK(gradcheck("conv 3x3 pad 1", [&](auto& in) { return loss(conv2d(in[0], in[1], in[2], 1, 1), r); }, {x, w3, b}));
  Tensor r2 = random_tensor({2, 2, 2, 4}, 46, DType::f64);  // Ho = (5+2-5)/2+1 = 2, Wo = (6+2-5)/2+1 = 2
  CHECK(gradcheck("conv 3x3 stride 2 pad 1 dil 2",
                  [&](auto& in) { return loss(conv2d(in[0], in[1], in[2], 2, 1, 2), r2); }, {x, w3, b}));
  CHECK(gradcheck("conv 1x1", [&](auto& in) { return loss(conv2d(in[0], in[1], in[2]), r); }, {x, w1, b}));
  // Kernel 3x1, stride (2,1), padding (0,1), dilation (1,3): Ho = (5-3)/2+1 = 2, Wo = 6+2 = 8.
  Tensor r3 = random_tensor({2, 2, 8, 4}, 47, DType::f64);
  CHECK(gradcheck("conv rect", [&](auto& in) { return loss(conv2d(in[0], in[1], Tensor(), 2, 1, 0, 1, 1, 3), r3); },
                  {x, random_tensor({4, 3, 1, 3}, 48, DType::f64)}));
}

TEST_CASE("conv kernels: im2col by hand, col2im is its adjoint, chunking changes nothing") {
  // 3x3 image 1..9, 2x2 kernel: each row is the pixel's 2x2 window in (ky, kx) order.
  const std::vector<float> img{1, 2, 3, 4, 5, 6, 7, 8, 9};
  kernels::ConvGeom g = kernels::make_conv_geom(1, 3, 3, 1, 1, 2, 2, 1, 1, 0, 0, 1, 1);
  std::vector<float> cols(4 * 4, -1.f);
  kernels::cpu::im2col(img.data(), cols.data(), g, 0, 4);
  CHECK(cols == std::vector<float>{1, 2, 4, 5, 2, 3, 5, 6, 4, 5, 7, 8, 5, 6, 8, 9});
  // Padding 1: the top-left output pixel reads three zeros and the image's first pixel.
  g = kernels::make_conv_geom(1, 3, 3, 1, 1, 2, 2, 1, 1, 1, 1, 1, 1);
  std::vector<float> row(4, -1.f);
  kernels::cpu::im2col(img.data(), row.data(), g, 0, 1);
  CHECK(row == std::vector<float>{0, 0, 0, 1});

  // Adjointness: <im2col(x), c> == <x, col2im(c)> (exact up to rounding, in double), over
  // chunks that start and end mid-row and cross images.
  const Conv c{3, 7, 5, 2, 1, 3, 3, 2, 1, 2, 1, 2, 1};
  g = c.geom();
  const int64_t P = g.out_pixels(), T = g.taps();
  const auto x = doubles(c.N * c.H * c.W * c.C, 51), cv = doubles(P * T, 52);
  for (int64_t chunk : {P, int64_t(1), int64_t(7), int64_t(13)}) {
    std::vector<double> dx(x.size(), 0.0), part(chunk * T);
    double lhs = 0, rhs = 0;
    for (int64_t p0 = 0; p0 < P; p0 += chunk) {
      const int64_t rows = std::min(chunk, P - p0);
      kernels::cpu::im2col(x.data(), part.data(), g, p0, rows);
      for (int64_t i = 0; i < rows * T; ++i) lhs += part[i] * cv[p0 * T + i];
      kernels::cpu::col2im_add(cv.data() + p0 * T, dx.data(), g, p0, rows);
    }
    for (size_t i = 0; i < x.size(); ++i) rhs += x[i] * dx[i];
    CHECK(lhs == doctest::Approx(rhs).epsilon(1e-12));
  }

  // The whole forward and backward with budgets of one row, of 7 rows (chunks that straddle
  // images), and the default, against the direct convolution.
  for (const Conv& cc : {c, Conv{2, 6, 5, 3, 4, 3, 3, 1, 1, 1, 1, 1, 1}, Conv{2, 4, 4, 3, 2, 1, 1, 1, 1, 0, 0, 1, 1}}) {
    const kernels::ConvGeom gg = cc.geom();
    const auto xv = doubles(cc.N * cc.H * cc.W * cc.C, 53), wv = doubles(cc.K * gg.taps(), 54),
               bv = doubles(cc.K, 55), dyv = doubles(gg.out_pixels() * cc.K, 56);
    const Direct ref = direct_conv(cc, xv, wv, bv, dyv);
    for (size_t budget : {size_t(1), 7 * gg.taps() * sizeof(double), kernels::cpu::kConvColsBudget}) {
      const std::string tag = cc.str() + " budget " + std::to_string(budget);
      std::vector<double> y(gg.out_pixels() * cc.K, -7), dx(xv.size(), -7), dw(wv.size(), -7);
      kernels::cpu::conv2d_forward(xv.data(), wv.data(), bv.data(), y.data(), gg, false, budget);
      kernels::cpu::conv2d_backward(xv.data(), wv.data(), dyv.data(), dx.data(), dw.data(), gg, budget);
      CHECK(close_arrays("y " + tag, y.data(), ref.y.data(), (int64_t)y.size(), 1e-12, 1e-12));
      CHECK(close_arrays("dx " + tag, dx.data(), ref.dx.data(), (int64_t)dx.size(), 1e-12, 1e-12));
      CHECK(close_arrays("dw " + tag, dw.data(), ref.dw.data(), (int64_t)dw.size(), 1e-12, 1e-12));
      // Only one gradient wanted: the other pointer is null and must not be touched.
      std::vector<double> dx_only(xv.size(), -7);
      kernels::cpu::conv2d_backward<double>(nullptr, wv.data(), dyv.data(), dx_only.data(), nullptr, gg, budget);
      CHECK(close_arrays("dx only " + tag, dx_only.data(), ref.dx.data(), (int64_t)dx.size(), 1e-12, 1e-12));
    }
  }
}

TEST_CASE("conv kernels: the emulated build of the cuDNN wrapper refuses to run") {
  const kernels::ConvGeom g = kernels::make_conv_geom(1, 3, 3, 1, 1, 2, 2, 1, 1, 0, 0, 1, 1);
  std::vector<float> x(9), w(4), y(4);
  auto ws = [](size_t) -> void* { return nullptr; };
  CHECK_THROWS_WITH(kernels::emu::conv2d_forward_f32(x.data(), w.data(), y.data(), g, {}, ws),
                    doctest::Contains("cuDNN is not emulated"));
  CHECK_THROWS_WITH(kernels::emu::conv2d_backward_data_f32(y.data(), w.data(), x.data(), g, {}, ws),
                    doctest::Contains("cuDNN is not emulated"));
  CHECK_THROWS_WITH(kernels::emu::conv2d_backward_filter_f32(x.data(), y.data(), w.data(), g, {}, ws),
                    doctest::Contains("cuDNN is not emulated"));
}

// A CPU run counts the launches the same ops make on a GPU (kernels/launch_counter.h).
TEST_CASE("conv: CPU ops count the GPU launches they stand for") {
  Tensor x = random_tensor({1, 5, 5, 2}, 1).set_requires_grad(), w = random_tensor({3, 3, 3, 2}, 2).set_requires_grad();
  Tensor b = random_tensor({3}, 3).set_requires_grad();
  REQUIRE(x.device() == Device::cpu);
  uint64_t before = kernels::launches();
  Tensor r = relu(x.detach());
  CHECK(kernels::launches() - before == 1);  // one elementwise kernel
  before = kernels::launches();
  Tensor y0 = conv2d(x.detach(), w.detach());
  CHECK(kernels::launches() - before == 1);  // the cuDNN convolution
  before = kernels::launches();
  Tensor y = conv2d(x, w, b, 1, 1);
  CHECK(kernels::launches() - before == 2);  // the convolution, then the bias add
  Tensor loss = sum(relu(y));
  before = kernels::launches();
  loss.backward();
  CHECK(kernels::launches() - before >= 2);  // the conv's two gradients and the rest of the graph
  CHECK(x.grad().defined());
  CHECK(w.grad().defined());
}

TEST_CASE("conv: process switches for the GPU math mode and workspace") {
  CHECK(conv_allow_tf32());  // TF32 by default, as PyTorch does for convolutions
  set_conv_allow_tf32(false);
  CHECK_FALSE(conv_allow_tf32());
  set_conv_allow_tf32(true);
  CHECK(conv_workspace_limit() == size_t(1) << 30);
  set_conv_workspace_limit(1 << 20);
  CHECK(conv_workspace_limit() == size_t(1) << 20);
  set_conv_workspace_limit(size_t(1) << 30);
  CHECK_FALSE(conv_benchmark());  // cuDNN's heuristics by default, as PyTorch
  set_conv_benchmark(true);
  CHECK(conv_benchmark());
  set_conv_benchmark(false);
  CHECK_FALSE(conv_deterministic());
  set_conv_deterministic(true);
  CHECK(conv_deterministic());
  set_conv_deterministic(false);
}

namespace {
// cuDNN vs the CPU in double: the tolerance scales with the largest reference value, since
// every output is a sum of many products of both signs (a pure rtol fails near zero).
void check_gpu_conv(const Conv& c, double tol, uint32_t seed) {
  Tensor x = random_tensor({c.N, c.H, c.W, c.C}, seed), w = random_tensor({c.K, c.kh, c.kw, c.C}, seed + 1);
  Tensor b = random_tensor({c.K}, seed + 2), dy = random_tensor({c.N, c.Ho(), c.Wo(), c.K}, seed + 3);
  auto run = [&](const Tensor& xi, const Tensor& wi, const Tensor& bi, const Tensor& dyi) {
    Tensor xr = xi.detach().set_requires_grad(), wr = wi.detach().set_requires_grad(), br = bi.detach().set_requires_grad();
    Tensor y = conv2d(xr, wr, br, c.sh, c.sw, c.ph, c.pw, c.dh, c.dw);
    sum(mul(y, dyi)).backward();
    return std::vector<Tensor>{y, xr.grad(), wr.grad(), br.grad()};
  };
  auto cpu = run(x.cast(DType::f64), w.cast(DType::f64), b.cast(DType::f64), dy.cast(DType::f64));
  auto gpu = run(x.cuda(), w.cuda(), b.cuda(), dy.cuda());
  const char* names[] = {"y", "dx", "dw", "db"};
  for (int i = 0; i < 4; ++i) {
    auto ref = as_doubles(cpu[i]);
    double scale = 0;
    for (double v : ref) scale = std::max(scale, std::abs(v));
    CHECK(close_tensors(std::string(names[i]) + " " + c.str() + (conv_allow_tf32() ? " tf32" : " fp32"), gpu[i],
                        cpu[i], tol * scale, tol));
  }
}
const Conv kGpuConvs[] = {
    {2, 33, 65, 16, 24, 3, 3, 1, 1, 2, 2, 2, 2},    // dilated 3x3 (ASPP-like)
    {2, 65, 97, 3, 64, 7, 7, 2, 2, 3, 3, 1, 1},     // ResNet stem
    {1, 33, 33, 64, 32, 1, 1, 1, 1, 0, 0, 1, 1},    // 1x1
    {3, 17, 9, 5, 7, 3, 3, 2, 2, 1, 1, 1, 1},       // odd sizes, stride 2
    {1, 31, 29, 8, 8, 3, 1, 1, 2, 4, 0, 4, 1},      // rectangular everything
};
}  // namespace

GPU_TEST_CASE("conv: cuDNN matches the CPU in FP32 and TF32 modes") {
  // FP32 (CUDNN_FMA_MATH): f32 rounding over up to 7*7*3 = 147 products per output and
  // thousands per weight gradient, plus Winograd/FFT transforms: 1e-4 of the largest value.
  set_conv_allow_tf32(false);
  for (const Conv& c : kGpuConvs) check_gpu_conv(c, 1e-4, 61);
  // TF32: inputs rounded to 10 mantissa bits (2^-11 = 4.9e-4 relative each): 1e-2 of the
  // largest value, with room for the accumulation.
  set_conv_allow_tf32(true);
  for (const Conv& c : kGpuConvs) check_gpu_conv(c, 1e-2, 62);
  // The algorithm is chosen once per problem and mode: running again adds no cache entry.
#ifdef C3_HAVE_CUDA
  const size_t cached = kernels::cuda::conv_algo_cache_size();
  CHECK(cached >= 3);
  check_gpu_conv(kGpuConvs[0], 1e-2, 63);
  CHECK(kernels::cuda::conv_algo_cache_size() == cached);
#endif
  // With no workspace at all cuDNN still has an algorithm (implicit GEMM), and it is right.
  set_conv_workspace_limit(0);
  set_conv_allow_tf32(false);
  check_gpu_conv(kGpuConvs[3], 1e-4, 64);
  set_conv_allow_tf32(true);
  set_conv_workspace_limit(size_t(1) << 30);
  CHECK_THROWS_WITH_AS(conv2d(Tensor::zeros({1, 5, 5, 3}).cuda(), Tensor::zeros({4, 3, 3, 3})),
                       doctest::Contains("conv2d: device mismatch"), Error);
}

// The algorithm choice and run-time fallback of the cuDNN path (kernels/conv_algo.h), driven
// on the CPU with made-up rankings and injected failures.
TEST_CASE("conv algorithm choice: the usable candidates of a ranking, in rank order") {
  enum { kDefault = 0, kTensorOp = 1, kAllowConversion = 2, kFma = 3 };
  const std::vector<kernels::ConvRanked> ranked = {
      {6, true, kTensorOp, 100},          // TF32 only
      {1, false, kDefault, 0},            // cuDNN says it cannot run
      {4, true, kAllowConversion, 0},     // would round f32 inputs to FP16
      {2, true, kDefault, 5000},          // workspace over the limit below
      {0, true, kDefault, 10},
      {0, true, kTensorOp, 20},           // a timed search lists an algorithm twice
      {7, true, kDefault, 1000},          // exactly at the limit
  };
  auto algos = [](const std::vector<kernels::ConvCandidate>& c) {
    std::vector<int> a;
    for (const auto& x : c) a.push_back(x.algo);
    return a;
  };
  const auto tf32 = kernels::usable_candidates(ranked, true, kTensorOp, kFma, kAllowConversion, 1000);
  CHECK(algos(tf32) == std::vector<int>{6, 0, 7});
  CHECK(tf32[0].math == kTensorOp);
  CHECK(tf32[0].workspace == 100);
  CHECK(tf32[1].math == kDefault);
  const auto fp32 = kernels::usable_candidates(ranked, false, kTensorOp, kFma, kAllowConversion, 1000);
  CHECK(algos(fp32) == std::vector<int>{0, 7});
  for (const auto& c : fp32) CHECK(c.math == kFma);
  CHECK(kernels::usable_candidates(ranked, true, kTensorOp, kFma, kAllowConversion, 0).empty());
  std::vector<kernels::ConvRanked> atomics = ranked;
  atomics[0].deterministic = atomics[6].deterministic = false;
  CHECK(algos(kernels::usable_candidates(atomics, true, kTensorOp, kFma, kAllowConversion, 1000)) ==
        std::vector<int>{6, 0, 7});
  CHECK(algos(kernels::usable_candidates(atomics, true, kTensorOp, kFma, kAllowConversion, 1000, true)) ==
        std::vector<int>{0});
}

TEST_CASE("conv algorithm choice: a failing algorithm falls back to the next, which is kept") {
  kernels::ConvChoice choice;
  choice.candidates = {{5, 0, 64}, {1, 0, 0}, {3, 0, 8}};
  std::vector<int> tried;
  std::vector<int> broken = {5};
  auto run = [&](const kernels::ConvCandidate& c) -> std::string {
    tried.push_back(c.algo);
    return std::find(broken.begin(), broken.end(), c.algo) != broken.end() ? "CUDNN_STATUS_EXECUTION_FAILED" : "";
  };
  SUBCASE("the first runs: nothing else is tried") {
    broken.clear();
    CHECK(kernels::run_with_fallback(choice, "conv", run).algo == 5);
    CHECK(tried == std::vector<int>{5});
    CHECK(choice.current == 0);
  }
  SUBCASE("the first fails: the second runs and is the choice of later calls") {
    CHECK(kernels::run_with_fallback(choice, "conv", run).algo == 1);
    CHECK(tried == std::vector<int>{5, 1});
    CHECK(choice.current == 1);
    tried.clear();
    CHECK(kernels::run_with_fallback(choice, "conv", run).algo == 1);
    CHECK(tried == std::vector<int>{1});
  }
  SUBCASE("the kept choice fails later: the search goes on past the end, once round") {
    choice.current = 2;
    broken = {3, 5};
    CHECK(kernels::run_with_fallback(choice, "conv", run).algo == 1);
    CHECK(tried == std::vector<int>{3, 5, 1});
    CHECK(choice.current == 1);
  }
  SUBCASE("none runs: the error names the problem, every algorithm and its failure") {
    broken = {5, 1, 3};
    CHECK_THROWS_WITH(kernels::run_with_fallback(choice, "conv2d (cuDNN) forward of x [1,2,3,4]", run),
                      doctest::Contains("conv2d (cuDNN) forward of x [1,2,3,4]: every cuDNN algorithm failed:\n"
                                        "  algorithm 5 (workspace 64 bytes): CUDNN_STATUS_EXECUTION_FAILED\n"
                                        "  algorithm 1 (workspace 0 bytes): CUDNN_STATUS_EXECUTION_FAILED\n"
                                        "  algorithm 3 (workspace 8 bytes): CUDNN_STATUS_EXECUTION_FAILED"));
    CHECK(tried == std::vector<int>{5, 1, 3});
    CHECK(choice.current == 0);
  }
  SUBCASE("no candidate at all") {
    choice.candidates.clear();
    CHECK_THROWS_WITH(kernels::run_with_fallback(choice, "conv", run), doctest::Contains("no cuDNN algorithm is usable"));
    CHECK(tried.empty());
  }
}

namespace {
// One output of a convolution (or of its gradients) as a direct sum in double over the host
// copies: the value and the sum of the magnitudes of its terms, the scale of its rounding error.
struct Sum {
  double v = 0, abs = 0;
  void add(double t) { v += t, abs += std::abs(t); }
};
struct HostConv {
  const Conv& c;
  const float *x, *w, *dy;  // x [N,H,W,C], w [K,kh,kw,C], dy [N,Ho,Wo,K]
  float xat(int64_t n, int64_t h, int64_t ww, int64_t ch) const {
    return (h < 0 || h >= c.H || ww < 0 || ww >= c.W) ? 0.f : x[((n * c.H + h) * c.W + ww) * c.C + ch];
  }
  Sum y(int64_t n, int64_t oh, int64_t ow, int64_t k) const {
    Sum s;
    for (int64_t i = 0; i < c.kh; ++i)
      for (int64_t j = 0; j < c.kw; ++j)
        for (int64_t ch = 0; ch < c.C; ++ch)
          s.add(double(xat(n, oh * c.sh - c.ph + i * c.dh, ow * c.sw - c.pw + j * c.dw, ch)) *
                w[((k * c.kh + i) * c.kw + j) * c.C + ch]);
    return s;
  }
  Sum dx(int64_t n, int64_t h, int64_t ww, int64_t ch) const {
    Sum s;
    for (int64_t i = 0; i < c.kh; ++i)
      for (int64_t j = 0; j < c.kw; ++j) {
        const int64_t th = h + c.ph - i * c.dh, tw = ww + c.pw - j * c.dw;
        if (th < 0 || tw < 0 || th % c.sh || tw % c.sw || th / c.sh >= c.Ho() || tw / c.sw >= c.Wo()) continue;
        for (int64_t k = 0; k < c.K; ++k)
          s.add(double(dy[((n * c.Ho() + th / c.sh) * c.Wo() + tw / c.sw) * c.K + k]) *
                w[((k * c.kh + i) * c.kw + j) * c.C + ch]);
      }
    return s;
  }
  Sum dw(int64_t k, int64_t i, int64_t j, int64_t ch) const {
    Sum s;
    for (int64_t n = 0; n < c.N; ++n)
      for (int64_t oh = 0; oh < c.Ho(); ++oh)
        for (int64_t ow = 0; ow < c.Wo(); ++ow)
          s.add(double(xat(n, oh * c.sh - c.ph + i * c.dh, ow * c.sw - c.pw + j * c.dw, ch)) *
                dy[((n * c.Ho() + oh) * c.Wo() + ow) * c.K + k]);
    return s;
  }
};

// conv2d on `dev` against direct sums at sampled positions (the first and last element of
// each tensor and random ones): |got - ref| <= tol * sum |terms|. On the GPU for problems too
// big for a whole reference (cuDNN at ResNet-101's shapes); on the CPU to check the sampler.
void check_conv_sampled(const Conv& c, double tol, uint64_t seed, Device dev) {
  Generator gen(seed);
  Tensor x = gen.uniform({c.N, c.H, c.W, c.C}, -1, 1, dev).set_requires_grad();
  Tensor w = gen.uniform({c.K, c.kh, c.kw, c.C}, -1, 1, dev).set_requires_grad();
  Tensor dy = gen.uniform({c.N, c.Ho(), c.Wo(), c.K}, -1, 1, dev);
  Tensor y = conv2d(x, w, Tensor(), c.sh, c.sw, c.ph, c.pw, c.dh, c.dw);
  sum(mul(y, dy)).backward();
  const Tensor hx = x.cpu(), hw = w.cpu(), hdy = dy.cpu(), hy = y.cpu(), hdx = x.grad().cpu(), hdw = w.grad().cpu();
  const HostConv ref{c, hx.data<float>(), hw.data<float>(), hdy.data<float>()};
  const std::string mode = dev == Device::cpu ? " cpu" : conv_allow_tf32() ? " tf32" : " fp32";
  std::mt19937_64 rng(seed);
  auto check = [&](const char* name, const Tensor& got, const Shape& s, auto&& reference) {
    const int64_t n = got.numel();
    int bad = 0;
    for (int t = 0; t < 48; ++t) {
      const int64_t flat = t == 0 ? 0 : t == 1 ? n - 1 : int64_t(rng() % uint64_t(n));
      int64_t idx[4], r = flat;
      for (int d = 3; d >= 0; --d) idx[d] = r % s[size_t(d)], r /= s[size_t(d)];
      const Sum want = reference(idx[0], idx[1], idx[2], idx[3]);
      const double g = got.data<float>()[flat];
      if (std::abs(g - want.v) > tol * want.abs + 1e-30 && bad++ < 3)
        FAIL_CHECK(name, " ", c.str(), mode, " at [", idx[0], ",", idx[1], ",", idx[2], ",", idx[3], "]: ", g,
                   " vs ", want.v, " (sum of |terms| ", want.abs, ")");
    }
    CHECK_MESSAGE(bad == 0, name, " ", c.str(), mode, ": ", bad, " of 48 samples outside ", tol, " * sum |terms|");
  };
  check("y", hy, hy.shape(), [&](int64_t a, int64_t b, int64_t d, int64_t e) { return ref.y(a, b, d, e); });
  check("dx", hdx, hdx.shape(), [&](int64_t a, int64_t b, int64_t d, int64_t e) { return ref.dx(a, b, d, e); });
  check("dw", hdw, hdw.shape(), [&](int64_t a, int64_t b, int64_t d, int64_t e) { return ref.dw(a, b, d, e); });
}

// DeepLab-v2 ResNet-101 (output stride 8) at the reference batch: 32 images (16 + 16) of
// 256x512, so 33x65 after the stem and layer2.
const Conv kRealConvs[] = {
    {32, 256, 512, 3, 64, 7, 7, 2, 2, 3, 3, 1, 1},      // the stem
    {32, 33, 65, 256, 256, 3, 3, 1, 1, 2, 2, 2, 2},     // layer3's 3x3, dilation 2
    {32, 33, 65, 512, 512, 3, 3, 1, 1, 4, 4, 4, 4},     // layer4's 3x3, dilation 4
    {32, 33, 65, 1024, 2048, 1, 1, 1, 1, 0, 0, 1, 1},   // layer4's projection shortcut
    {32, 33, 65, 2048, 19, 3, 3, 1, 1, 24, 24, 24, 24}, // the ASPP's widest branch: taps mostly in the padding
};
}  // namespace

// The sampled reference itself, against the CPU convolution (checked above against the whole
// direct convolution): strides, rectangular kernels, dilation and a padding larger than the
// input (taps of dilation 24 on 9x13 land in the padding but for the centre). f32 sums of up
// to 5 * 25 * 33 terms, blocked: 1e-5 of sum |terms|.
TEST_CASE("conv: the sampled direct sums of the GPU check agree with the CPU convolution") {
  for (const Conv& c : kGpuConvs) check_conv_sampled(c, 1e-5, 75, Device::cpu);
  check_conv_sampled({2, 9, 13, 16, 5, 3, 3, 1, 1, 24, 24, 24, 24}, 1e-5, 76, Device::cpu);
}

GPU_TEST_CASE("conv: cuDNN at ResNet-101's real shapes (batch 32, 2048 channels, dilation 24) against direct sums") {
  // FP32: every product exact in double, the GPU's rounding over up to 2048 * 9 terms (1M for
  // the stem's weight gradient), Winograd/FFT transforms included: 1e-4 of sum |terms|.
  // TF32: each input rounded to 10 mantissa bits (up to 2 * 2^-11 relative per product):
  // 4e-3 of sum |terms|. Both estimates, first checked by make gpu-check.
  set_conv_allow_tf32(false);
  for (const Conv& c : kRealConvs) check_conv_sampled(c, 1e-4, 71, Device::cuda);
  set_conv_allow_tf32(true);
  for (const Conv& c : kRealConvs) check_conv_sampled(c, 4e-3, 72, Device::cuda);
  // Algorithms ranked by timing them (train.cudnn_benchmark) run and are right too.
  set_conv_benchmark(true);
  check_conv_sampled(kRealConvs[2], 4e-3, 73, Device::cuda);
  check_conv_sampled(kRealConvs[4], 4e-3, 74, Device::cuda);
  set_conv_benchmark(false);
}
