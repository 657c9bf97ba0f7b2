// Resize ops: values computed by hand, PyTorch's index rules, a naive double reference over a
// sweep of sizes (forward, and the backward against a plain scatter-add), gradient checks in
// double, emulated CUDA kernels against the CPU kernels, and the GPU against the CPU.
//
// CUDA kernels run here in emulation, through their kernels::emu entry points, against
// the CPU kernels:
//   bilinear_kernel, bilinear_backward_kernel, nearest_kernel, nearest_backward_kernel;
// also their bf16 instantiations, through the _bf16 entry points, against the CPU f32 kernels
// on the widened input (and in the lab's *_bf16 entries, bench/lab/k_norm_bf16.cpp).
#include <algorithm>
#include <cmath>

#include "kernels/cpu/resize.h"
#include "kernels/cuda/resize.h"
#include "tests/bf16_helpers.h"
#include "tests/emu_helpers.h"
#include "tests/helpers.h"

using namespace c3;
using namespace c3test;
using kernels::ResizeShape;

TEST_CASE("resize: bilinear values computed by hand") {
  // [1 2; 3 4] -> 3x3 with aligned corners: the corners stay, the rest are midpoints.
  Tensor q = Tensor::from_vector<float>({1, 2, 3, 4}, {1, 2, 2, 1});
  CHECK(resize_bilinear(q, 3, 3, true).to_vector<float>() == std::vector<float>{1, 1.5f, 2, 2, 2.5f, 3, 3, 3.5f, 4});
  // a=1, b=5, 2 -> 4 with half-pixel centres: src = -0.25 (clamped), 0.25, 0.75, 1.25 (edge):
  // [a, 0.75a + 0.25b, 0.25a + 0.75b, b] = [1, 2, 4, 5].
  Tensor ab = Tensor::from_vector<float>({1, 5}, {1, 1, 2, 1});
  CHECK(resize_bilinear(ab, 1, 4, false).to_vector<float>() == std::vector<float>{1, 2, 4, 5});
  // The same along H (rank-4 [1,2,1,1] -> [1,4,1,1]).
  CHECK(resize_bilinear(ab.reshape({1, 2, 1, 1}), 4, 1, false).to_vector<float>() == std::vector<float>{1, 2, 4, 5});
  // 2 -> 4 aligned: src = 0, 1/3, 2/3, 1 -> [1, 7/3, 11/3, 5].
  auto al = resize_bilinear(ab, 1, 4, true).to_vector<float>();
  CHECK(al[0] == 1);
  CHECK(al[1] == doctest::Approx(7.0 / 3).epsilon(1e-6));
  CHECK(al[2] == doctest::Approx(11.0 / 3).epsilon(1e-6));
  CHECK(al[3] == 5);
  // Down 4 -> 2, half-pixel: src = 0.5*2-0.5 = 0.5 and 1.5*2-0.5 = 2.5 -> [0.5, 2.5].
  Tensor r = Tensor::from_vector<float>({0, 1, 2, 3}, {1, 1, 4, 1});
  CHECK(resize_bilinear(r, 1, 2, false).to_vector<float>() == std::vector<float>{0.5f, 2.5f});
  // Aligned 4 -> 2: src = 0, 3 -> the end points.
  CHECK(resize_bilinear(r, 1, 2, true).to_vector<float>() == std::vector<float>{0, 3});
  // One output pixel: aligned takes the first pixel; half-pixel takes the centre, src = 1.5.
  CHECK(resize_bilinear(r, 1, 1, true).to_vector<float>() == std::vector<float>{0});
  CHECK(resize_bilinear(r, 1, 1, false).to_vector<float>() == std::vector<float>{1.5f});
  // Channels are independent (NHWC): [[1,10],[3,30]] -> 3 pixels, aligned.
  Tensor ch = Tensor::from_vector<float>({1, 10, 3, 30}, {1, 1, 2, 2});
  CHECK(resize_bilinear(ch, 1, 3, true).to_vector<float>() == std::vector<float>{1, 10, 2, 20, 3, 30});
  // Same size is the identity, both ways.
  Tensor x = random_tensor({2, 3, 5, 2}, 7);
  CHECK(resize_bilinear(x, 3, 5, false).to_vector<float>() == x.to_vector<float>());
  CHECK(resize_bilinear(x, 3, 5, true).to_vector<float>() == x.to_vector<float>());
}

TEST_CASE("resize: nearest index patterns, label maps, PyTorch's f32 rounding") {
  // 4 -> 2: src = floor(d*4/2) = 0, 2.  2 -> 5: floor(d*2/5) = 0, 0, 0, 1, 1.
  Tensor r = Tensor::from_vector<float>({10, 11, 12, 13}, {1, 1, 4, 1});
  CHECK(resize_nearest(r, 1, 2).to_vector<float>() == std::vector<float>{10, 12});
  Tensor ab = Tensor::from_vector<float>({7, 9}, {1, 1, 2, 1});
  CHECK(resize_nearest(ab, 1, 5).to_vector<float>() == std::vector<float>{7, 7, 7, 9, 9});
  // 2-D, 4x4 -> 2x2 picks rows and columns 0 and 2.
  std::vector<float> g(16);
  for (int i = 0; i < 16; ++i) g[i] = float(i);
  CHECK(resize_nearest(Tensor::from_vector(g, {1, 4, 4, 1}), 2, 2).to_vector<float>() ==
        std::vector<float>{0, 2, 8, 10});
  // A u8 label map [N,H,W] stays rank 3: [1 2; 3 4] -> 3x5, rows 0,0,1 and columns 0,0,0,1,1.
  Tensor lab = Tensor::from_vector<uint8_t>({1, 2, 3, 4}, {1, 2, 2});
  Tensor up = resize_nearest(lab, 3, 5);
  CHECK(up.shape() == Shape{1, 3, 5});
  CHECK(up.to_vector<uint8_t>() == std::vector<uint8_t>{1, 1, 1, 2, 2, 1, 1, 1, 2, 2, 3, 3, 3, 4, 4});
  // i32 [N,H,W,1], with the ignore label 255, 2x4 -> 1x2: rows 0, columns 0 and 2.
  Tensor li = Tensor::from_vector<int32_t>({5, 6, 255, 8, 1, 2, 3, 4}, {1, 2, 4, 1});
  Tensor dn = resize_nearest(li, 1, 2);
  CHECK(dn.shape() == Shape{1, 1, 2, 1});
  CHECK(dn.to_vector<int32_t>() == std::vector<int32_t>{5, 255});
  // PyTorch computes d * float(in/out) in f32: for 2 -> 82 that is 41 * 0.0243902... just below
  // 1, so output 41 copies input 0, where the exact floor(41*2/82) would be 1. We keep PyTorch's.
  Tensor wide = resize_nearest(ab, 1, 82);
  CHECK(wide.to_vector<float>()[41] == 7);
  CHECK(wide.to_vector<float>()[42] == 9);
}

TEST_CASE("resize: bad inputs name the op and the shapes") {
  CHECK_THROWS_WITH_AS(resize_bilinear(Tensor::zeros({2, 3}), 4, 4, false),
                       doctest::Contains("resize_bilinear: expected an NHWC tensor [N,H,W,C], got f32[2,3] cpu"), Error);
  CHECK_THROWS_WITH_AS(resize_bilinear(Tensor::zeros({1, 2, 2, 1}), 0, 4, true),
                       doctest::Contains("resize_bilinear: output size 0x4 must be at least 1x1 (input f32[1,2,2,1]"),
                       Error);
  CHECK_THROWS_WITH_AS(resize_bilinear(Tensor::zeros({1, 2, 2, 1}, DType::u8), 4, 4, true),
                       doctest::Contains("resize_bilinear"), Error);
  CHECK_THROWS_WITH_AS(resize_bilinear(Tensor::zeros({1, 2, 2}), 4, 4, true),
                       doctest::Contains("got f32[1,2,2] cpu"), Error);
  CHECK_THROWS_WITH_AS(resize_nearest(Tensor::zeros({1, 0, 2, 1}), 4, 4),
                       doctest::Contains("resize_nearest: input f32[1,0,2,1] cpu has no pixels"), Error);
  CHECK_THROWS_WITH_AS(resize_nearest(Tensor::zeros({4}, DType::u8), 4, 4),
                       doctest::Contains("resize_nearest: expected an NHWC tensor [N,H,W,C] or a label map [N,H,W]"),
                       Error);
}

namespace {
// The reference: PyTorch's formulas written out plainly in double, one output at a time.
double ref_src(int64_t d, int64_t in, int64_t out, bool ac) {
  if (ac) return out > 1 ? double(d) * double(in - 1) / double(out - 1) : 0.0;
  return std::max((d + 0.5) * double(in) / double(out) - 0.5, 0.0);
}
struct RefTap {
  int64_t i0, i1;
  double l1;
};
RefTap ref_tap(int64_t d, int64_t in, int64_t out, bool ac) {
  const double src = ref_src(d, in, out, ac);
  const int64_t i0 = std::min<int64_t>(int64_t(std::floor(src)), in - 1);
  return {i0, std::min(i0 + 1, in - 1), std::clamp(src - double(i0), 0.0, 1.0)};
}
int64_t ref_nearest(int64_t d, int64_t in, int64_t out) { return std::min(d * in / out, in - 1); }

struct RefOut {
  std::vector<double> y, gx;  // forward, and the adjoint of g by plain scatter-add
};
// x, g in NHWC; mode 0 = nearest, 1 = bilinear half-pixel, 2 = bilinear aligned corners.
RefOut reference(const std::vector<double>& x, const std::vector<double>& g, const ResizeShape& s, int mode) {
  RefOut r{std::vector<double>(s.n * s.oh * s.ow * s.c), std::vector<double>(s.n * s.h * s.w * s.c, 0.0)};
  auto at = [&](int64_t n, int64_t iy, int64_t ix, int64_t c) { return ((n * s.h + iy) * s.w + ix) * s.c + c; };
  for (int64_t n = 0; n < s.n; ++n)
    for (int64_t oy = 0; oy < s.oh; ++oy)
      for (int64_t ox = 0; ox < s.ow; ++ox)
        for (int64_t c = 0; c < s.c; ++c) {
          const int64_t o = ((n * s.oh + oy) * s.ow + ox) * s.c + c;
          if (mode == 0) {
            const int64_t i = at(n, ref_nearest(oy, s.h, s.oh), ref_nearest(ox, s.w, s.ow), c);
            r.y[o] = x[i];
            r.gx[i] += g[o];
            continue;
          }
          const RefTap ty = ref_tap(oy, s.h, s.oh, mode == 2), tx = ref_tap(ox, s.w, s.ow, mode == 2);
          const int64_t iy[2] = {ty.i0, ty.i1}, ix[2] = {tx.i0, tx.i1};
          const double wy[2] = {1 - ty.l1, ty.l1}, wx[2] = {1 - tx.l1, tx.l1};
          r.y[o] = 0;
          for (int a = 0; a < 2; ++a)
            for (int b = 0; b < 2; ++b) {
              r.y[o] += wy[a] * wx[b] * x[at(n, iy[a], ix[b], c)];
              r.gx[at(n, iy[a], ix[b], c)] += wy[a] * wx[b] * g[o];
            }
        }
  return r;
}

// Identity, up, down, mixed, odd, one-pixel output and one-pixel input. Nearest sizes here
// are ones where PyTorch's f32 product equals the exact floor (see the case above).
const ResizeShape kSweep[] = {{2, 5, 7, 3, 5, 7},  {1, 5, 7, 2, 11, 13}, {2, 11, 13, 1, 5, 7}, {1, 7, 5, 3, 16, 2},
                              {1, 6, 9, 2, 3, 3},   {1, 3, 4, 2, 1, 1},   {1, 1, 1, 2, 4, 3},   {1, 4, 4, 1, 8, 8},
                              {1, 9, 17, 2, 33, 65}, {1, 33, 17, 1, 9, 4}};
}  // namespace

TEST_CASE("resize: forward and backward match a naive double reference over a sweep of sizes") {
  for (const ResizeShape& s : kSweep) {
    const Shape in{s.n, s.h, s.w, s.c}, out{s.n, s.oh, s.ow, s.c};
    Tensor x64 = random_tensor(in, 41, DType::f64), g64 = random_tensor(out, 42, DType::f64);
    const auto x = x64.to_vector<double>(), g = g64.to_vector<double>();
    for (int mode = 0; mode < 3; ++mode) {
      const std::string tag = "mode " + std::to_string(mode) + " " + shape_str(in) + " -> " + shape_str(out);
      const RefOut ref = reference(x, g, s, mode);
      auto run = [&](const Tensor& t) {
        return mode == 0 ? resize_nearest(t, s.oh, s.ow) : resize_bilinear(t, s.oh, s.ow, mode == 2);
      };
      Tensor xd = x64.clone().set_requires_grad();
      Tensor yd = run(xd);
      yd.backward(g64);
      CHECK(close_arrays("f64 forward " + tag, yd.to_vector<double>().data(), ref.y.data(), yd.numel(), 1e-12, 1e-12));
      CHECK(close_arrays("f64 backward " + tag, xd.grad().to_vector<double>().data(), ref.gx.data(), xd.numel(),
                         1e-12, 1e-12));
      // f32: the inputs are within [-1, 1], weights sum to 1; rounding of src in f32 moves
      // a weight by ~1e-7 * in; gradients sum up to ~(2*out/in + 1)^2 terms.
      Tensor xf = cast(x64, DType::f32).set_requires_grad();
      Tensor yf = run(xf);
      yf.backward(cast(g64, DType::f32));
      CHECK(close_arrays("f32 forward " + tag, yf.to_vector<float>().data(), ref.y.data(), yf.numel(), 1e-5, 1e-5));
      CHECK(close_arrays("f32 backward " + tag, xf.grad().to_vector<float>().data(), ref.gx.data(), xf.numel(),
                         1e-4, 1e-5));
    }
  }
}

TEST_CASE("resize: gradient checks in double") {
  struct G { Shape in; int64_t oh, ow; };
  for (const G& c : {G{{2, 3, 4, 2}, 5, 7}, G{{1, 6, 7, 2}, 3, 2}, G{{1, 3, 3, 1}, 1, 1}}) {
    Tensor x = random_tensor(c.in, 51, DType::f64);
    Tensor w = random_tensor({c.in[0], c.oh, c.ow, c.in[3]}, 52, DType::f64);
    const std::string tag = shape_str(c.in) + " -> " + std::to_string(c.oh) + "x" + std::to_string(c.ow);
    for (bool ac : {false, true})
      CHECK(gradcheck("bilinear ac=" + std::to_string(ac) + " " + tag,
                      [&](auto& in) { return sum(mul(resize_bilinear(in[0], c.oh, c.ow, ac), w)); }, {x}));
    CHECK(gradcheck("nearest " + tag, [&](auto& in) { return sum(mul(resize_nearest(in[0], c.oh, c.ow), w)); }, {x}));
  }
  // A rank-3 float map goes through the same path.
  Tensor m = random_tensor({1, 3, 2}, 53, DType::f64), wm = random_tensor({1, 5, 4}, 54, DType::f64);
  CHECK(gradcheck("nearest rank 3", [&](auto& in) { return sum(mul(resize_nearest(in[0], 5, 4), wm)); }, {m}));
}

namespace {
// The lab (bench/lab/k_norm.cpp, k_pool.cpp) runs the logits' upsampling from the feature
// resolution to the input size (bilinear with aligned corners, nearest f32, both backwards)
// and the label maps' nearest downsampling (u8, i32). Left here: one element; one input pixel
// to 3x2; odd sizes up in H and down in W (2x5x7x3 -> 9x4 is 216 outputs, 210 inputs; nearest
// leaves 3 of the 7 input columns without an output); for bilinear, both modes and an 8x downsampling 257x513 -> 33x65
// (no bilinear entry downsamples, none runs half-pixel centres); for nearest, the exact
// copies out == in and out == 2 in (their own branch of nearest_src).
const ResizeShape kEmu[] = {{1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 3, 2}, {2, 5, 7, 3, 9, 4}};
const ResizeShape kBilinearDown = {1, 257, 513, 1, 33, 65};
const ResizeShape kNearestCopy = {1, 3, 4, 2, 3, 8};
std::string emu_tag(const char* order, const ResizeShape& s) {
  return std::string(order) + " " + shape_str({s.n, s.h, s.w, s.c}) + " -> " + std::to_string(s.oh) + "x" +
         std::to_string(s.ow);
}
}  // namespace

TEST_CASE("resize kernels: emulated bilinear edge cases match the CPU kernel (tiny sizes, half-pixel, downsampling)") {
  for_each_fiber_order([](const char* order) {
    for (const ResizeShape& s : {kEmu[0], kEmu[1], kEmu[2], kBilinearDown}) {
      const int64_t nin = s.n * s.h * s.w * s.c, nout = s.n * s.oh * s.ow * s.c;
      const auto x = random_floats(nin, 61), g = random_floats(nout, 62);
      for (bool ac : {false, true}) {
        const std::string tag = emu_tag(order, s) + (ac ? " aligned" : " half-pixel");
        std::vector<float> want(nout), got(nout, -99.f);
        kernels::cpu::resize_bilinear(x.data(), want.data(), s, ac);
        kernels::emu::resize_bilinear_f32(x.data(), got.data(), s, ac);
        CHECK(close_arrays("bilinear " + tag, got.data(), want.data(), nout, 1e-6, 1e-6));
        std::vector<float> gw(nin), gg(nin, -99.f);
        kernels::cpu::resize_bilinear_backward(g.data(), gw.data(), s, ac);
        kernels::emu::resize_bilinear_backward_f32(g.data(), gg.data(), s, ac);
        CHECK(close_arrays("bilinear backward " + tag, gg.data(), gw.data(), nin, 1e-5, 1e-5));
      }
    }
  });
}

TEST_CASE("resize kernels: emulated nearest edge cases match the CPU kernel (tiny sizes, copies; f32, i32, u8, backward)") {
  for_each_fiber_order([](const char* order) {
    for (const ResizeShape& s : {kEmu[0], kEmu[1], kEmu[2], kNearestCopy}) {
      const std::string tag = emu_tag(order, s);
      const int64_t nin = s.n * s.h * s.w * s.c, nout = s.n * s.oh * s.ow * s.c;
      const auto x = random_floats(nin, 71), g = random_floats(nout, 72);
      std::vector<float> want(nout), got(nout, -99.f);
      kernels::cpu::resize_nearest(x.data(), want.data(), s);
      kernels::emu::resize_nearest_f32(x.data(), got.data(), s);
      CHECK(close_arrays("nearest f32 " + tag, got.data(), want.data(), nout, 0, 0));
      std::vector<int32_t> xi(nin), wi(nout), gi(nout, -1);
      std::vector<uint8_t> xu(nin), wu(nout), gu(nout, 0);
      for (int64_t i = 0; i < nin; ++i) xi[i] = int32_t(i * 7919 % 1000003), xu[i] = uint8_t(i * 31 % 251);
      kernels::cpu::resize_nearest(xi.data(), wi.data(), s);
      kernels::emu::resize_nearest_i32(xi.data(), gi.data(), s);
      CHECK(wi == gi);
      kernels::cpu::resize_nearest(xu.data(), wu.data(), s);
      kernels::emu::resize_nearest_u8(xu.data(), gu.data(), s);
      CHECK(wu == gu);
      std::vector<float> gw(nin), gg(nin, -99.f);
      kernels::cpu::resize_nearest_backward(g.data(), gw.data(), s);
      kernels::emu::resize_nearest_backward_f32(g.data(), gg.data(), s);
      CHECK(close_arrays("nearest backward " + tag, gg.data(), gw.data(), nin, 1e-6, 1e-6));
    }
  });
}

namespace {
// bf16 adds a 7x upsampling (4x5 -> 29x37): each input gathers up to 15 x 15 weighted output
// gradients in the backward.
const ResizeShape kBf16Up = {1, 4, 5, 3, 29, 37};
}  // namespace

// The bf16 kernels against the CPU f32 kernels on the widened input, each output rounded once
// (ref_narrow). Bit-exact: forward and backward make the same float operations in the same
// order as the CPU kernels (taps, bilerp, the gathers' oy-major sums; no FMA in this build), so
// the only rounding to bf16 is the final one. A backward that summed in bf16 would round at
// every term and fail here (the 7x upsampling sums up to 225 terms per input).
TEST_CASE("resize kernels: emulated bf16 resize is the CPU f32 kernel on the widened input rounded once (bilinear both corner modes, up and down; backwards)") {
  for_each_fiber_order([](const char* order) {
    for (const ResizeShape& s : {kEmu[0], kEmu[1], kEmu[2], kBilinearDown, kNearestCopy, kBf16Up}) {
      const int64_t nin = s.n * s.h * s.w * s.c, nout = s.n * s.oh * s.ow * s.c;
      const std::vector<bf16> xb = random_bf16s(nin, 61), gb = random_bf16s(nout, 62);
      const std::vector<float> x = widened(xb), g = widened(gb);
      for (bool ac : {false, true}) {
        const std::string tag = emu_tag(order, s) + (ac ? " aligned" : " half-pixel");
        std::vector<float> y(nout), gx(nin);
        std::vector<bf16> got(nout, bf16{0x7f80}), ggot(nin, bf16{0x7f80});
        kernels::cpu::resize_bilinear(x.data(), y.data(), s, ac);
        kernels::emu::resize_bilinear_bf16(xb.data(), got.data(), s, ac);
        CHECK(same_bf16("bilinear " + tag, got, ref_narrow(y)));
        kernels::cpu::resize_bilinear_backward(g.data(), gx.data(), s, ac);
        kernels::emu::resize_bilinear_backward_bf16(gb.data(), ggot.data(), s, ac);
        CHECK(same_bf16("bilinear backward " + tag, ggot, ref_narrow(gx)));
      }
    }
  });
}

GPU_TEST_CASE("gpu: resize ops match the CPU") {
  // DeepLab's logits upsampled 8x with aligned corners, and the default half-pixel mode.
  Tensor x = random_tensor({2, 33, 65, 19}, 81);
  Tensor g = random_tensor({2, 257, 513, 19}, 82);
  for (bool ac : {true, false}) {
    Tensor xc = x.clone().set_requires_grad(), xg = x.cuda().set_requires_grad();
    Tensor yc = resize_bilinear(xc, 257, 513, ac), yg = resize_bilinear(xg, 257, 513, ac);
    CHECK(close_tensors(std::string("bilinear ac=") + (ac ? "1" : "0"), yg, yc, 1e-5, 1e-5));
    yc.backward(g);
    yg.backward(g.cuda());
    // Each input gathers up to 19x19 products: FMA contraction on the GPU moves the last bits.
    CHECK(close_tensors("bilinear backward", xg.grad(), xc.grad(), 1e-4, 1e-5));
    // Downsampling back to the logit size (mixed ratios, half-pixel or aligned).
    CHECK(close_tensors("bilinear down", resize_bilinear(yg.detach(), 33, 65, ac), resize_bilinear(yc.detach(), 33, 65, ac),
                        1e-5, 1e-5));
  }
  Tensor xn = x.clone().set_requires_grad(), xng = x.cuda().set_requires_grad();
  Tensor yn = resize_nearest(xn, 257, 513), yng = resize_nearest(xng, 257, 513);
  CHECK(close_tensors("nearest", yng, yn, 0, 0));
  yn.backward(g);
  yng.backward(g.cuda());
  CHECK(close_tensors("nearest backward", xng.grad(), xn.grad(), 1e-5, 1e-5));
  // Label maps: u8 [N,H,W] downsampled to the logit size, i32 upsampled.
  Tensor lab = cast(random_tensor({2, 513, 513}, 83, DType::f32, 0, 255), DType::u8);
  CHECK(close_tensors("nearest u8", resize_nearest(lab.cuda(), 65, 65), resize_nearest(lab, 65, 65), 0, 0));
  Tensor li = cast(lab, DType::i32);
  CHECK(close_tensors("nearest i32", resize_nearest(li.cuda(), 1025, 1023), resize_nearest(li, 1025, 1023), 0, 0));
}
