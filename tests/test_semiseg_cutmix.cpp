// CutMix mix / un-mix of C3-SemiSeg: hand-made 4x4 examples, the mask at feature resolution,
// unmix(mix(x)) == x bit for bit, the formula A*(1-m) + B*m through elementwise ops, gradient
// checks in double, errors, the box draw, the emulated kernel against the CPU kernel, and the
// GPU against the CPU.
//
// CUDA kernels run here in emulation, through their kernels::emu entry points, against
// the CPU kernels:
//   cutmix_swap_kernel (its 4-, 2- and 1-byte instantiations).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/alloc.h"
#include "kernels/cpu/semiseg_cutmix.h"
#include "kernels/cuda/semiseg_cutmix.h"
#include "core/ops_loss.h"
#include "nn/deeplab.h"
#include "semiseg/c3_step.h"
#include "semiseg/config.h"
#include "semiseg/ops_cutmix.h"
#include "tests/bf16_helpers.h"
#include "tests/emu_helpers.h"
#include "tests/helpers.h"
#include "tests/step_helpers.h"

using namespace c3;
using namespace c3test;
using c3::semiseg::Box;

namespace {
Box box(int y0, int x0, int h, int w) {
  Box b;
  b.y0 = y0, b.x0 = x0, b.h = h, b.w = w;
  return b;
}
template <class T> std::vector<T> vec(const Tensor& t) { return t.cpu().to_vector<T>(); }
bool same_bits(const Tensor& a, const Tensor& b) {
  Tensor x = a.cpu(), y = b.cpu();
  return x.shape() == y.shape() && x.dtype() == y.dtype() && std::memcmp(x.raw(), y.raw(), x.nbytes()) == 0;
}
}  // namespace

TEST_CASE("cutmix: hand-made 1-channel 4x4 mix and 2x2 un-mix") {
  // A = 1..16, B = 101..116, box rows 1-2, columns 1-2: img1 is B with A's box, img2 the reverse.
  std::vector<float> v(32);
  for (int i = 0; i < 16; ++i) v[i] = float(i + 1), v[16 + i] = float(101 + i);
  Tensor x = Tensor::from_vector(v, {2, 4, 4, 1});
  Tensor mixed = semiseg::cutmix_mix(x, {box(1, 1, 2, 2)}, 4, 4);
  CHECK(mixed.shape() == Shape{2, 4, 4, 1});
  CHECK(vec<float>(mixed) == std::vector<float>{101, 102, 103, 104, 105, 6, 7, 108, 109, 10, 11, 112, 113, 114, 115, 116,
                                                1, 2, 3, 4, 5, 106, 107, 8, 9, 110, 111, 12, 13, 14, 15, 16});
  // Predictions at half resolution: pixel (y, x) reads the mask at (2y, 2x), so only (1, 1)
  // (image pixel (2, 2)) is inside the box.
  Tensor p = Tensor::from_vector<float>({1, 2, 3, 4, 11, 12, 13, 14}, {2, 2, 2});
  Tensor un = semiseg::cutmix_unmix(p, {box(1, 1, 2, 2)}, 4, 4);
  CHECK(vec<float>(un) == std::vector<float>{11, 12, 13, 4, 1, 2, 3, 14});
  // A box in the top-left corner keeps only feature pixel (0, 0).
  CHECK(vec<float>(semiseg::cutmix_unmix(p, {box(0, 0, 2, 2)}, 4, 4)) ==
        std::vector<float>{1, 12, 13, 14, 11, 2, 3, 4});
}

TEST_CASE("cutmix: mask at another resolution uses src = floor(dst * in/out)") {
  // 5x5 box rows 2-4, columns 0-1 seen at 3x3: src rows 0, 1, 3 and columns 0, 1, 3.
  Tensor m = semiseg::cutmix_mask({box(2, 0, 3, 2)}, 3, 3, 5, 5);
  CHECK(m.shape() == Shape{1, 3, 3});
  CHECK(vec<uint8_t>(m) == std::vector<uint8_t>{1, 1, 1, 1, 1, 1, 0, 0, 1});
  // Upsampled 2x (8x8 from a 4x4 box resolution): each box pixel becomes a 2x2 block.
  Tensor up = semiseg::cutmix_mask({box(1, 2, 1, 1)}, 8, 8, 4, 4);
  auto u = vec<uint8_t>(up);
  int zeros = 0;
  for (int y = 0; y < 8; ++y)
    for (int x = 0; x < 8; ++x) {
      const bool inside = y / 2 == 1 && x / 2 == 2;
      CHECK(u[y * 8 + x] == (inside ? 0 : 1));
      zeros += u[y * 8 + x] == 0;
    }
  CHECK(zeros == 4);
}

TEST_CASE("cutmix: unmix(mix(x)) == x bit for bit, every dtype and resolution") {
  Generator gen(7);
  for (int K : {1, 3, 4}) {
    const auto boxes = semiseg::cutmix_boxes(gen, K, 24, 40);
    Tensor x = random_tensor({2 * K, 24, 40, 3}, 100 + K, DType::f32, -1e3, 1e3);
    Tensor mixed = semiseg::cutmix_mix(x, boxes, 24, 40);
    CHECK(!same_bits(mixed, x));  // something moved
    CHECK(same_bits(semiseg::cutmix_unmix(mixed, boxes, 24, 40), x));
    // Feature resolution 3x5 (stride 8), rank 3, and the other dtypes.
    Tensor f = random_tensor({2 * K, 3, 5}, 200 + K, DType::f64);
    CHECK(same_bits(semiseg::cutmix_unmix(semiseg::cutmix_mix(f, boxes, 24, 40), boxes, 24, 40), f));
    Tensor i = random_tensor({2 * K, 7, 9, 2}, 300 + K, DType::f32, -1e6, 1e6).cast(DType::i32);
    CHECK(same_bits(semiseg::cutmix_mix(semiseg::cutmix_mix(i, boxes, 24, 40), boxes, 24, 40), i));
    Tensor u = random_tensor({2 * K, 24, 40, 3}, 400 + K, DType::f32, 0, 255).cast(DType::u8);
    CHECK(same_bits(semiseg::cutmix_unmix(semiseg::cutmix_mix(u, boxes, 24, 40), boxes, 24, 40), u));
  }
}

TEST_CASE("cutmix: mix and unmix equal the formulas A*(1-m) + B*m exactly") {
  Generator gen(11);
  const int K = 3, H = 10, W = 14, h = 4, w = 5;
  const auto boxes = semiseg::cutmix_boxes(gen, K, H, W);
  for (auto [hh, ww] : {std::pair{H, W}, std::pair{h, w}}) {
    Tensor x = random_tensor({2 * K, hh, ww, 2}, 12);
    Tensor m = semiseg::cutmix_mask(boxes, hh, ww, H, W).cast(DType::f32).reshape({K, hh, ww, 1});
    m = concat({m, m}, 3);  // per pixel, both channels
    Tensor A = slice(x, 0, 0, K), B = slice(x, 0, K, K), one_minus = sub(Tensor::full(m.shape(), 1.0), m);
    Tensor img1 = add(mul(A, one_minus), mul(B, m)), img2 = add(mul(A, m), mul(B, one_minus));
    CHECK(same_bits(semiseg::cutmix_mix(x, boxes, H, W), concat({img1, img2}, 0)));
    // pred_A = P1*(1-m) + P2*m, pred_B = P1*m + P2*(1-m): the same routing.
    CHECK(same_bits(semiseg::cutmix_unmix(x, boxes, H, W), concat({img1, img2}, 0)));
  }
}

TEST_CASE("cutmix: gradient checks in double") {
  Generator gen(3);
  const auto boxes = semiseg::cutmix_boxes(gen, 2, 8, 6);
  Tensor w1 = random_tensor({4, 8, 6, 2}, 31, DType::f64), w2 = random_tensor({4, 4, 3, 2}, 32, DType::f64);
  CHECK(gradcheck("cutmix_mix", [&](auto& in) { return sum(mul(semiseg::cutmix_mix(in[0], boxes, 8, 6), w1)); },
                  {random_tensor({4, 8, 6, 2}, 33, DType::f64)}));
  CHECK(gradcheck("cutmix_unmix 4x3",
                  [&](auto& in) { return sum(mul(semiseg::cutmix_unmix(in[0], boxes, 8, 6), w2)); },
                  {random_tensor({4, 4, 3, 2}, 34, DType::f64)}));
}

TEST_CASE("cutmix: errors name the op and the shapes") {
  Tensor x = Tensor::zeros({3, 4, 4, 1});
  CHECK_THROWS_WITH_AS(semiseg::cutmix_mix(x, {box(0, 0, 2, 2)}, 4, 4),
                       doctest::Contains("cutmix_mix: batch f32[3,4,4,1] cpu must hold 2K = 2"), Error);
  CHECK_THROWS_WITH_AS(semiseg::cutmix_unmix(Tensor::zeros({2, 4, 4}), {box(3, 0, 2, 2)}, 4, 4),
                       doctest::Contains("cutmix_unmix: box 0 (y0 3, x0 0, h 2, w 2) does not fit in 4x4"), Error);
  CHECK_THROWS_WITH_AS(semiseg::cutmix_mix(Tensor::zeros({2, 4}), {box(0, 0, 1, 1)}, 4, 4),
                       doctest::Contains("cutmix_mix: expects [2K,H,W,C] or [2K,H,W]"), Error);
}

TEST_CASE("cutmix: cutmix_box covers half the image, inside it, deterministic for a seed") {
  const int H = 64, W = 128;
  Generator g1(5), g2(5), g3(6);
  double sum_hf = 0;
  int y0_top = 0, x0_left = 0, differs = 0;
  const int n = 4000;
  for (int i = 0; i < n; ++i) {
    const Box b = semiseg::cutmix_box(g1, H, W), c = semiseg::cutmix_box(g2, H, W), d = semiseg::cutmix_box(g3, H, W);
    CHECK((b.y0 == c.y0 && b.x0 == c.x0 && b.h == c.h && b.w == c.w));
    differs += b.y0 != d.y0 || b.x0 != d.x0 || b.h != d.h;
    REQUIRE(b.h >= H / 2);
    REQUIRE(b.y0 >= 0);
    REQUIRE(b.x0 >= 0);
    REQUIRE(b.y0 + b.h <= H);
    REQUIRE(b.x0 + b.w <= W);
    // Area half of H*W to within rounding of w (half a column of height h).
    REQUIRE(std::abs(b.h * b.w - H * W / 2.0) <= b.h / 2.0 + 1e-9);
    sum_hf += double(b.h) / H;
    y0_top += b.y0 == 0;
    x0_left += b.x0 == 0;
  }
  CHECK(differs > n / 2);
  // E[exp(U ln 0.5)] = 0.5 / ln 2 = 0.7213; std of the fraction <= 0.15, 6 sigma of the mean.
  CHECK(std::abs(sum_hf / n - 0.5 / std::log(2.0)) < 6 * 0.15 / std::sqrt(double(n)) + 0.5 / H);
  CHECK(y0_top > 0);  // positions reach the border
  CHECK(x0_left > 0);
}

namespace {
// A batch of 2K images [H, W, C] and K boxes drawn at box resolution bh x bw, packed [K, 4].
struct S {
  int64_t K, H, W, C, bh, bw;
  std::string name() const {
    return "K" + std::to_string(K) + " " + std::to_string(H) + "x" + std::to_string(W) + "x" + std::to_string(C);
  }
  std::vector<int32_t> boxes() const {
    Generator gen(uint64_t(K * 100 + H));
    std::vector<int32_t> out;
    for (const Box& b : semiseg::cutmix_boxes(gen, K, int(bh), int(bw))) out.insert(out.end(), {b.y0, b.x0, b.h, b.w});
    return out;
  }
};
}  // namespace

// The lab's cutmix entries check f32 images and logits at the scales' shapes; here the edge
// cases: one pixel per image, odd sizes, box resolutions of other aspects, u8 crops.
TEST_CASE("cutmix kernels: emulated routing edge cases match the CPU kernel bit for bit (one pixel, other aspects, u8)") {
  for_each_fiber_order([](const char* order) {
    for (S s : {S{1, 1, 1, 1, 1, 1}, S{3, 7, 9, 5, 13, 17}, S{2, 5, 3, 1, 5, 3}}) {
      const std::string tag = std::string(order) + " " + s.name();
      const std::vector<int32_t> boxes = s.boxes();
      const int64_t n = 2 * s.K * s.H * s.W * s.C;
      std::vector<uint32_t> x(n), want(n), got(n, 0xdeadbeef);
      for (int64_t i = 0; i < n; ++i) x[i] = uint32_t(i * 2654435761u);
      kernels::cpu::cutmix_swap(x.data(), want.data(), boxes.data(), s.K, s.H, s.W, s.C, s.bh, s.bw);
      kernels::emu::cutmix_swap_b4(x.data(), got.data(), boxes.data(), s.K, s.H, s.W, s.C, s.bh, s.bw);
      CHECK_MESSAGE(got == want, tag);
      std::vector<uint8_t> xb(n), wb(n), gb(n, 7);
      for (int64_t i = 0; i < n; ++i) xb[i] = uint8_t(i * 37);
      kernels::cpu::cutmix_swap(xb.data(), wb.data(), boxes.data(), s.K, s.H, s.W, s.C, s.bh, s.bw);
      kernels::emu::cutmix_swap_b1(xb.data(), gb.data(), boxes.data(), s.K, s.H, s.W, s.C, s.bh, s.bw);
      CHECK_MESSAGE(gb == wb, (tag + " u8"));
    }
  });
}

// bf16 (cutmix_swap_b2, the kernel's 2-byte instantiation): the CPU f32 routing of the widened
// values, narrowed, bit for bit (a routing moves bits; the inputs hold quiet NaNs, +-0, +-Inf).
TEST_CASE("cutmix kernels: emulated bf16 routing equals the CPU f32 routing of the widened values") {
  for_each_fiber_order([](const char* order) {
    for (S s : {S{1, 1, 1, 1, 1, 1}, S{3, 7, 9, 5, 13, 17}, S{2, 5, 3, 1, 5, 3}, S{2, 33, 65, 19, 256, 512}}) {
      const std::string tag = std::string(order) + " " + s.name();
      const std::vector<int32_t> boxes = s.boxes();
      const int64_t n = 2 * s.K * s.H * s.W * s.C;
      const std::vector<bf16> x = random_bf16s(n, 301, -4.f, 4.f, true);
      const std::vector<float> xf = widened(x);
      std::vector<uint32_t> xw(n), ww(n);
      std::memcpy(xw.data(), xf.data(), size_t(n) * 4);
      kernels::cpu::cutmix_swap(xw.data(), ww.data(), boxes.data(), s.K, s.H, s.W, s.C, s.bh, s.bw);
      std::vector<float> want(n);
      std::memcpy(want.data(), ww.data(), size_t(n) * 4);
      std::vector<bf16> got(n, bf16{0x1234});
      kernels::emu::cutmix_swap_b2(reinterpret_cast<const uint16_t*>(x.data()), reinterpret_cast<uint16_t*>(got.data()),
                                   boxes.data(), s.K, s.H, s.W, s.C, s.bh, s.bw);
      CHECK(same_bf16("cutmix_swap_b2 " + tag, got, ref_narrow(want)));
    }
  });
}

GPU_TEST_CASE("gpu: cutmix mix and unmix match the CPU, gradients route back") {
  Generator gen(21);
  const auto boxes = semiseg::cutmix_boxes(gen, 4, 256, 512);
  Tensor img = random_tensor({8, 256, 512, 3}, 22);
  CHECK(same_bits(semiseg::cutmix_mix(img.cuda(), boxes, 256, 512), semiseg::cutmix_mix(img, boxes, 256, 512)));
  Tensor u8 = random_tensor({8, 256, 512, 3}, 23, DType::f32, 0, 255).cast(DType::u8);
  CHECK(same_bits(semiseg::cutmix_mix(u8.cuda(), boxes, 256, 512), semiseg::cutmix_mix(u8, boxes, 256, 512)));
  Tensor feat = random_tensor({8, 33, 65, 64}, 24);
  Tensor gf = feat.cuda().set_requires_grad(), cf = feat.clone().set_requires_grad();
  Tensor w = random_tensor({8, 33, 65, 64}, 25);
  Tensor ug = semiseg::cutmix_unmix(gf, boxes, 256, 512), uc = semiseg::cutmix_unmix(cf, boxes, 256, 512);
  CHECK(same_bits(ug, uc));
  sum(mul(ug, w.cuda())).backward();
  sum(mul(uc, w)).backward();
  CHECK(same_bits(gf.grad(), cf.grad()));
}

// The whole mixing path of the C3 step (semiseg/c3_step.h: draw_mixing, Mixing::mix/unmix):
// the shuffle, the pairing of slot k with k + N/2, the boxes, and the way back, checked pixel
// by pixel against METHOD.md's formulas (img1 = A inside the box and B outside, img2 the
// complement) built directly from the drawn order and boxes.
TEST_CASE("mixing: shuffle + mix puts A in its box and B around it; unmix returns every source in place") {
  const int64_t Bl = 4, Bu = 4, N = 8, K = 4, H = 12, W = 20;
  for (bool cross_set : {true, false}) {
    CAPTURE(cross_set);
    Generator gen(7);
    const Tensor X = gen.normal({N, H, W, 3}, 0, 1);
    const semiseg::Mixing m = semiseg::draw_mixing(cross_set, Bl, Bu, H, W, gen);
    std::vector<int64_t> sorted = m.order;
    std::sort(sorted.begin(), sorted.end());
    for (int64_t i = 0; i < N; ++i) REQUIRE(sorted[size_t(i)] == i);
    if (!cross_set)
      for (int64_t k = 0; k < K; ++k) CHECK((m.order[size_t(k)] < Bl) == (m.order[size_t(k + K)] < Bl));
    const auto x = vec<float>(X), mixed = vec<float>(m.mix(X));
    int64_t wrong = 0;
    for (int64_t k = 0; k < K; ++k) {
      const int64_t a = m.order[size_t(k)], b = m.order[size_t(k + K)];
      const Box& bx = m.boxes[size_t(k)];
      for (int64_t y = 0; y < H; ++y)
        for (int64_t xx = 0; xx < W; ++xx) {
          const bool in = y >= bx.y0 && y < bx.y0 + bx.h && xx >= bx.x0 && xx < bx.x0 + bx.w;
          for (int64_t c = 0; c < 3; ++c) {
            auto at = [&](int64_t img) { return size_t(((img * H + y) * W + xx) * 3 + c); };
            wrong += mixed[at(k)] != x[at(in ? a : b)];
            wrong += mixed[at(k + K)] != x[at(in ? b : a)];
          }
        }
    }
    CHECK(wrong == 0);
    CHECK(same_bits(m.unmix(m.mix(X)), X));
    // Any per-pixel function of the mixed images comes back as that function of the sources.
    const Tensor fx = add(mul(X, 2.0), 1.0);
    CHECK(same_bits(m.unmix(add(mul(m.mix(X), 2.0), 1.0)), fx));
  }
}

// The student learns from un-mixed logits (METHOD.md step 4). The supervised loss taken that
// way must be the loss of the mixed images against the labels mixed by the same boxes, with
// the unlabeled sources' pixels ignored: the same value and, for every parameter of a real
// model, the same gradient. (Each mixed pixel comes from exactly one source pixel, so they
// agree to the last bit.)
TEST_CASE("mixing: the labeled loss through un-mix has the gradient of the loss on mixed images and mixed labels") {
  const int64_t Bl = 4, Bu = 4, N = 8, H = 24, W = 40, C = 5;
  nn::DeepLabConfig cfg;
  cfg.num_classes = C;
  cfg.backbone.depth = 18;
  cfg.backbone.width = 0.125;
  cfg.backbone.frozen_bn = false;
  nn::DeepLab model(cfg, 3);
  Generator gen(11);
  const Tensor x = gen.normal({N, H, W, 3}, 0, 1);
  std::vector<uint8_t> yv(size_t(N * H * W));
  for (size_t i = 0; i < yv.size(); ++i) yv[i] = i < size_t(Bl * H * W) ? uint8_t((i * 7 + i / 13) % C) : 255;
  yv[5] = 255;  // an ignored labeled pixel too
  const Tensor y = Tensor::from_vector(yv, {N, H, W});
  const semiseg::Mixing m = semiseg::draw_mixing(true, Bl, Bu, H, W, gen);
  auto grads = [&](const Tensor& loss) {
    model.zero_grad();
    loss.backward();
    std::vector<std::vector<double>> g;
    for (const Tensor& p : model.parameters())  // the projection head is not used: no gradient
      g.push_back(p.grad().defined() ? as_doubles(p.grad()) : std::vector<double>());
    return g;
  };
  auto logits_of_mixed = [&] { return model.upsample(model.classify(model.features(m.mix(x))), H, W); };
  const Tensor l_unmix = cross_entropy(slice(m.unmix(logits_of_mixed()), 0, 0, Bl), slice(y, 0, 0, Bl));
  const double v_unmix = l_unmix.item();
  const auto g_unmix = grads(l_unmix);
  const Tensor y_mixed = m.mix(y.cast(DType::f32).reshape({N, H, W, 1})).reshape({N, H, W}).cast(DType::u8);
  const Tensor l_mixed = cross_entropy(logits_of_mixed(), y_mixed);
  CHECK(l_mixed.item() == v_unmix);
  const auto g_mixed = grads(l_mixed);
  REQUIRE(g_unmix.size() == g_mixed.size());
  int64_t differ = 0, nonzero = 0;
  for (size_t i = 0; i < g_unmix.size(); ++i) {
    REQUIRE(g_unmix[i].size() == g_mixed[i].size());
    for (size_t k = 0; k < g_unmix[i].size(); ++k) differ += g_unmix[i][k] != g_mixed[i][k], nonzero += g_mixed[i][k] != 0;
  }
  CHECK(differ == 0);
  CHECK(nonzero > 1000);  // the comparison is not between two empty gradients
}

// loss.mix_labeled = false: only the unlabeled images are mixed (among themselves); the labeled
// images reach the student as they are, so with frozen BatchNorm (no batch statistics) L_sup is
// the plain cross-entropy of the student on them. With the default, it is not.
TEST_CASE("mixing: loss.mix_labeled=false leaves the labeled images un-mixed") {
  const int64_t Bl = 2, Bu = 4, H = 32, W = 48, C = 5;
  auto step_sup = [&](bool mix_labeled, double* plain, std::vector<int32_t>* order) {
    semiseg::Config cfg = semiseg::load_config(
        "", {"model.depth=18", "model.width=0.125", "model.num_classes=5", "model.proj_dim=8", "model.frozen_bn=true",
             std::string("loss.mix_labeled=") + (mix_labeled ? "true" : "false"), "dcrs.init=0.0",
             "loss.samples_per_class=4", "loss.min_pixels=4"});
    nn::DeepLab student(cfg.model, 3), teacher(cfg.model, 3);
    teacher.eval();
    Generator gen(5);
    const semiseg::StepInputs in = c3test::random_step_inputs(gen, Bl, Bu, H, W, int(C));
    semiseg::C3Step step(cfg, Device::cpu);
    step.keep_draws = true;
    semiseg::StepOutput out = step.semi(student, teacher, in, 0, 0, gen);
    CHECK(std::isfinite(out.value("cons", NAN)));
    for (const auto& [name, t] : out.draws)
      if (name == "mix_order") *order = t.to_vector<int32_t>();
    *plain = cross_entropy(student.forward(in.x_l), in.y_l).item();
    return out.value("sup", NAN);
  };
  double plain = 0;
  std::vector<int32_t> order;
  const double sup = step_sup(false, &plain, &order);
  CHECK(sup == doctest::Approx(plain).epsilon(1e-5));  // the same convolutions in another batch: rounding only
  std::sort(order.begin(), order.end());
  CHECK(order == std::vector<int32_t>{0, 1, 2, 3});  // the shuffle runs over the unlabeled images
  const double sup_mixed = step_sup(true, &plain, &order);
  CHECK(order.size() == size_t(Bl + Bu));
  CHECK(std::abs(sup_mixed - plain) > 1e-3 * plain);  // mixed labeled images: another loss
}

// The caching allocator against a real step: the allocations and frees of two C3 steps on the
// CPU (DeepLab-v3+ ResNet-50 at half width, 2 + 2 images of 96x160), replayed on it over host
// memory. What it reserves stays within 1.3x of the most the step ever has live at once.
TEST_CASE("caching allocator: two C3 steps' allocation pattern stays within 1.3x of the live peak") {
  semiseg::Config cfg = semiseg::load_config(
      "", {"model.depth=50", "model.width=0.5", "model.num_classes=5", "model.proj_dim=32", "model.frozen_bn=false",
           "dcrs.init=0.0", "loss.samples_per_class=16", "loss.min_pixels=4"});
  nn::DeepLab student(cfg.model, 3), teacher(cfg.model, 3);
  student.pack_parameters();
  teacher.pack_parameters();
  teacher.eval();
  Generator gen(5);
  semiseg::C3Step step(cfg, Device::cpu);
  std::vector<AllocEvent> trace;
  for (int s = 0; s < 2; ++s) {
    const semiseg::StepInputs in = c3test::random_step_inputs(gen, 2, 2, 96, 160, 5);
    set_alloc_trace(&trace);
    step.semi(student, teacher, in, s, 0, gen);
    set_alloc_trace(nullptr);
  }
  struct Host : CachingAllocator::Backend {
    void* alloc(size_t n) override { return std::malloc(n); }
    void free(void* p) override { std::free(p); }
    const char* name() const override { return "host"; }
  };
  CachingAllocator a(std::make_unique<Host>());
  std::map<const void*, void*> live;
  size_t bytes = 0, peak = 0;
  for (const AllocEvent& e : trace) {
    if (e.alloc) {
      live[e.id] = a.allocate(e.bytes);
      bytes += e.bytes;
      peak = std::max(peak, bytes);
    } else if (auto it = live.find(e.id); it != live.end()) {  // frees of storages made before the trace are left out
      a.release(it->second);
      live.erase(it);
      bytes -= e.bytes;
    }
  }
  const AllocStats st = a.stats();
  MESSAGE(trace.size(), " events; live peak ", peak >> 20, " MiB, reserved at most ", st.peak_reserved >> 20, " MiB (",
          double(st.peak_reserved) / double(peak), "x), ", st.backend_allocs, " segments, ", st.hits, " cache hits");
  CHECK(peak > (64 << 20));  // a pattern with large blocks, not only small ones
  CHECK(double(st.peak_reserved) <= 1.3 * double(peak));
  for (auto& [id, p] : live) a.release(p);
}
