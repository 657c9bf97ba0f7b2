// oneDNN's CPU convolutions (kernels/cpu/conv_dnnl.h) against the im2col reference
// (kernels/cpu/conv.h) at the shapes of our ResNets (stem, 3x3, strided, dilated, 1x1,
// downsample, rectangular), forward (bias, fused ReLU) and both gradients; NaN through the
// fused ReLU; gradients asked for one at a time; a geometry with no output pixel; the kept
// primitives. The op-level sweep against direct sums runs both paths (tests/test_conv.cpp).
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/ops_conv.h"
#include "kernels/cpu/conv.h"
#include "kernels/cpu/conv_dnnl.h"
#include "kernels/launch_counter.h"
#include "tests/helpers.h"

using namespace c3test;
namespace dc = kernels::cpu::dnnl_conv;

namespace {

struct Shape4 {
  int64_t N, H, W, C, K, kh, kw, sh, sw, ph, pw, dh, dw;
  kernels::ConvGeom geom() const { return kernels::make_conv_geom(N, H, W, C, K, kh, kw, sh, sw, ph, pw, dh, dw); }
};

const std::vector<Shape4> kShapes = {
    {2, 33, 31, 3, 16, 7, 7, 2, 2, 3, 3, 1, 1},     // stem
    {2, 17, 19, 64, 64, 3, 3, 1, 1, 1, 1, 1, 1},    // basic block
    {2, 17, 19, 32, 64, 3, 3, 2, 2, 1, 1, 1, 1},    // strided
    {1, 13, 15, 32, 32, 3, 3, 1, 1, 2, 2, 2, 2},    // dilated 2
    {1, 13, 15, 32, 48, 3, 3, 1, 1, 4, 4, 4, 4},    // dilated 4 (OS8's layer4)
    {2, 9, 11, 64, 128, 1, 1, 1, 1, 0, 0, 1, 1},    // bottleneck 1x1
    {2, 9, 11, 64, 128, 1, 1, 2, 2, 0, 0, 1, 1},    // downsample 1x1 stride 2
    {1, 12, 12, 16, 24, 3, 1, 1, 1, 1, 0, 1, 1},    // rectangular kernel
    {1, 8, 8, 16, 16, 3, 3, 2, 2, 0, 0, 1, 1},      // the last window stops short of the edge
    {3, 10, 10, 5, 7, 3, 3, 1, 1, 12, 12, 12, 12},  // ASPP-like: padding as wide as the image
};

std::string name(const Shape4& s) {
  return "x[" + std::to_string(s.N) + "," + std::to_string(s.H) + "," + std::to_string(s.W) + "," +
         std::to_string(s.C) + "] k" + std::to_string(s.K) + " " + std::to_string(s.kh) + "x" + std::to_string(s.kw) +
         " s" + std::to_string(s.sh) + " p" + std::to_string(s.ph) + " d" + std::to_string(s.dh);
}

std::vector<double> widen(const std::vector<float>& v) { return {v.begin(), v.end()}; }

// Largest |a - ref| over the largest |ref|: a relative error of the whole array.
double rel_err(const std::vector<float>& a, const std::vector<double>& ref) {
  double err = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    err = std::max(err, std::abs(double(a[i]) - ref[i]));
    scale = std::max(scale, std::abs(ref[i]));
  }
  return scale > 0 ? err / scale : err;
}

}  // namespace

TEST_CASE("conv oneDNN: matches the im2col reference at our networks' shapes") {
  // The reference is the im2col path in double. f32 sums of up to 7*7*3 = 147 (forward), 9*64
  // = 576 (data gradient) and 2*17*19 = 646 (filter gradient) products of values in [-1, 1]:
  // each path's f32 error is a few 1e-7 of the largest output. Held: oneDNN within 1e-5 of it
  // (relative to the largest), and within 4x the im2col f32 error plus 1e-6 (the two differ
  // only in summation order).
  uint32_t seed = 7;
  for (const Shape4& s : kShapes) {
    CAPTURE(name(s));
    const kernels::ConvGeom g = s.geom();
    const int64_t nx = g.N * g.H * g.W * g.C, nw = g.K * g.taps(), ny = g.out_pixels() * g.K;
    REQUIRE(ny > 0);
    const auto x = random_floats(nx, ++seed), w = random_floats(nw, ++seed), b = random_floats(g.K, ++seed),
               dy = random_floats(ny, ++seed);
    std::vector<double> y64(ny), dx64(nx), dw64(nw);
    const auto x64 = widen(x), w64 = widen(w), b64 = widen(b), dy64 = widen(dy);
    kernels::cpu::conv2d_forward(x64.data(), w64.data(), b64.data(), y64.data(), g);
    kernels::cpu::conv2d_backward(x64.data(), w64.data(), dy64.data(), dx64.data(), dw64.data(), g);

    std::vector<float> y(ny), yr(ny), dx(nx), dw(nw), ref(ny), rdx(nx), rdw(nw);
    dc::forward(x.data(), w.data(), b.data(), y.data(), g, false, true);
    dc::backward(x.data(), w.data(), dy.data(), dx.data(), dw.data(), g);
    kernels::cpu::conv2d_forward(x.data(), w.data(), b.data(), ref.data(), g);
    kernels::cpu::conv2d_backward(x.data(), w.data(), dy.data(), rdx.data(), rdw.data(), g);
    for (auto [got, im2col, exact, what] :
         {std::tuple{&y, &ref, &y64, "y"}, std::tuple{&dx, &rdx, &dx64, "dx"}, std::tuple{&dw, &rdw, &dw64, "dw"}}) {
      CAPTURE(what);
      const double e = rel_err(*got, *exact), e_ref = rel_err(*im2col, *exact);
      CHECK(e < 1e-5);
      CHECK(e <= 4 * e_ref + 1e-6);
    }

    // The fused ReLU is max(y, 0) of the same sums; without a bias, the same.
    dc::forward(x.data(), w.data(), b.data(), yr.data(), g, true, false);
    int64_t bad = 0;
    for (int64_t i = 0; i < ny; ++i) bad += std::abs(yr[i] - std::max(y64[i], 0.0)) > 1e-5 * (1 + std::abs(y64[i]));
    CHECK(bad == 0);
    std::vector<float> y_nb(ny), ref_nb(ny);
    dc::forward(x.data(), w.data(), nullptr, y_nb.data(), g, false, true);
    kernels::cpu::conv2d_forward(x.data(), w.data(), static_cast<const float*>(nullptr), ref_nb.data(), g);
    // Outputs reach |y| ~ 10 here: 1e-4 absolute is the 1e-5 relative bound above.
    CHECK(close_arrays("y without bias " + name(s), y_nb.data(), ref_nb.data(), ny, 1e-4, 0.0));
  }
}

TEST_CASE("conv oneDNN: one gradient at a time gives the same as both") {
  const Shape4 s{2, 9, 10, 16, 24, 3, 3, 1, 1, 1, 1, 1, 1};
  const kernels::ConvGeom g = s.geom();
  const int64_t nx = g.N * g.H * g.W * g.C, nw = g.K * g.taps(), ny = g.out_pixels() * g.K;
  const auto x = random_floats(nx, 1), w = random_floats(nw, 2), dy = random_floats(ny, 3);
  std::vector<float> dx(nx), dw(nw), dx1(nx, 5.f), dw1(nw, 5.f);
  dc::backward(x.data(), w.data(), dy.data(), dx.data(), dw.data(), g);
  dc::backward(nullptr, w.data(), dy.data(), dx1.data(), nullptr, g);  // x not needed for dx
  dc::backward(x.data(), nullptr, dy.data(), nullptr, dw1.data(), g);  // nor w for dw
  CHECK(dx1 == dx);
  CHECK(dw1 == dw);
}

TEST_CASE("conv oneDNN: a NaN reaches the output through the fused ReLU as through the op") {
  // The relu op keeps NaN (so a diverging run is seen); the fused epilogue must not hide it.
  const Shape4 s{1, 6, 6, 8, 8, 3, 3, 1, 1, 1, 1, 1, 1};
  const kernels::ConvGeom g = s.geom();
  auto x = random_floats(g.N * g.H * g.W * g.C, 4);
  const auto w = random_floats(g.K * g.taps(), 5);
  x[(2 * 6 + 3) * 8] = std::numeric_limits<float>::quiet_NaN();  // pixel (2, 3), channel 0
  std::vector<float> y(g.out_pixels() * g.K);
  dc::forward(x.data(), w.data(), nullptr, y.data(), g, true, false);
  int64_t nans = 0;
  for (float v : y) nans += std::isnan(v);
  CHECK(nans == 9 * g.K);  // every output whose 3x3 window holds that pixel, every channel
}

TEST_CASE("conv oneDNN: no output pixel, kept primitives, launch counts") {
  dc::clear_cache();
  const kernels::ConvGeom empty = kernels::make_conv_geom(1, 2, 2, 3, 4, 3, 3, 1, 1, 0, 0, 1, 1);  // 3x3 on 2x2
  REQUIRE(empty.out_pixels() == 0);
  std::vector<float> x(12, 1.f), w(4 * 27, 1.f), dy, dx(12, 7.f), dw(4 * 27, 7.f);
  dc::backward(x.data(), w.data(), dy.data(), dx.data(), dw.data(), empty);
  CHECK(dx == std::vector<float>(12, 0.f));
  CHECK(dw == std::vector<float>(4 * 27, 0.f));
  CHECK(dc::cached_geometries() == 0);

  const kernels::ConvGeom g = kernels::make_conv_geom(1, 5, 5, 4, 4, 3, 3, 1, 1, 1, 1, 1, 1);
  std::vector<float> xi(100, 0.5f), wi(4 * 36, 0.25f), y(100);
  const uint64_t before = kernels::launches();
  dc::forward(xi.data(), wi.data(), nullptr, y.data(), g, false, true);
  CHECK(kernels::launches() - before == 1);  // what the GPU launches for it (count_forward_launches)
  dc::forward(xi.data(), wi.data(), nullptr, y.data(), g, false, true);
  CHECK(dc::cached_geometries() == 1);  // built once, used twice
  // Centre pixel: 9 taps x 4 channels x 0.5 x 0.25 = 4.5; a corner sees 4 taps: 2.
  CHECK(y[(2 * 5 + 2) * 4] == 4.5f);
  CHECK(y[0] == 2.f);
  dc::forward(xi.data(), wi.data(), nullptr, y.data(), g, false, false);  // inference: another primitive
  CHECK(dc::cached_geometries() == 2);
  dc::clear_cache();
  CHECK(dc::cached_geometries() == 0);
  // Images of many sizes (predict): the kept primitives stay bounded.
  for (int64_t w = 3; w < 3 + int64_t(dc::kKeptGeometries) + 20; ++w)
    dc::direct(kernels::make_conv_geom(1, 3, w, 4, 4, 1, 1, 1, 1, 0, 0, 1, 1), dc::Pass::forward);
  CHECK(dc::cached_geometries() <= dc::kKeptGeometries);
  CHECK(dc::cached_geometries() >= 20);
  dc::clear_cache();
}

TEST_CASE("conv oneDNN: the op switch picks the path, and both give the same conv") {
  REQUIRE(c3::cpu_conv_onednn());  // the default
  c3::Tensor x = random_tensor({2, 9, 9, 16}, 11), w = random_tensor({8, 3, 3, 16}, 12);
  c3::Tensor b = random_tensor({8}, 13);
  const c3::Tensor a = c3::conv2d(x, w, b, 1, 1, 1, true);
  c3::set_cpu_conv_onednn(false);
  const c3::Tensor r = c3::conv2d(x, w, b, 1, 1, 1, true);
  c3::set_cpu_conv_onednn(true);
  CHECK(close_tensors("conv2d oneDNN vs im2col", a, r, 1e-5, 1e-5));
}

TEST_CASE("conv oneDNN: which passes run on its direct kernels (x86-64 with AVX2)") {
  // Where oneDNN has a direct kernel it runs; else im2col does (so the comparisons above test
  // oneDNN itself for these shapes, not im2col against itself).
#if defined(__x86_64__)
  if (!__builtin_cpu_supports("avx2")) return;
  using dc::Pass;
  const kernels::ConvGeom stem = kShapes[0].geom(), block = kShapes[1].geom(), pointwise = kShapes[5].geom();
  for (const kernels::ConvGeom& g : {stem, block, pointwise}) CHECK(dc::direct(g, Pass::forward));
  CHECK(dc::direct(stem, Pass::filter));  // the stem's data gradient is never asked for
  for (Pass p : {Pass::data, Pass::filter}) CHECK(dc::direct(block, p));
  CHECK(dc::direct(pointwise, Pass::data));
  // ASPP's 3x3 dilated by 12 on a 10x10 map: oneDNN's own GEMM fallback, so im2col's.
  CHECK_FALSE(dc::direct(kShapes[9].geom(), Pass::forward));
#endif
}
