// Softmax, log-softmax and the fused losses (cross_entropy, soft_cross_entropy): values
// computed by hand on two classes, ignore labels, weights, masks, errors, gradient checks in
// double, emulated CUDA kernels against the CPU kernels, and the GPU against the CPU.
//
// CUDA kernels run here in emulation, through their kernels::emu entry points, against
// the CPU kernels:
//   softmax_kernel, softmax_backward_kernel, cross_entropy_kernel, soft_cross_entropy_kernel,
//   finish_mean_kernel.
#include <cmath>

#include "kernels/cpu/softmax.h"
#include "kernels/cuda/softmax.h"
#include "tests/emu_helpers.h"
#include "tests/helpers.h"

using namespace c3;
using namespace c3test;

namespace {
const double ln3 = std::log(3.0), ln4 = std::log(4.0), ln43 = std::log(4.0 / 3.0);
// Two classes, logits [0, ln 3] in every pixel: p = [1/4, 3/4].
Tensor two_class_logits(int64_t npix, DType dt = DType::f64) {
  std::vector<double> v;
  for (int64_t i = 0; i < npix; ++i) v.insert(v.end(), {0.0, ln3});
  Tensor t = Tensor::from_vector(v, {1, 1, npix, 2});
  return dt == DType::f64 ? t : t.cast(dt);
}
}  // namespace

TEST_CASE("softmax: values computed by hand, stable for large logits") {
  Tensor x = Tensor::from_vector<double>({0, ln3, 1000, 1000 + ln3, -1000, -1000 + ln3}, {3, 2});
  auto p = softmax(x).to_vector<double>();
  auto lp = log_softmax(x).to_vector<double>();
  for (int r = 0; r < 3; ++r) {  // the shift by the row max makes +-1000 harmless
    CHECK(p[2 * r] == doctest::Approx(0.25).epsilon(1e-12));
    CHECK(p[2 * r + 1] == doctest::Approx(0.75).epsilon(1e-12));
    CHECK(lp[2 * r] == doctest::Approx(-ln4).epsilon(1e-12));
    CHECK(lp[2 * r + 1] == doctest::Approx(-ln43).epsilon(1e-9));
  }
  Tensor one = softmax(Tensor::from_vector<float>({5.f, -3.f}, {2, 1}));  // C = 1: always 1
  CHECK(one.to_vector<float>() == std::vector<float>{1.f, 1.f});
  CHECK_THROWS_WITH_AS(softmax(Tensor::scalar(1)), doctest::Contains("softmax: needs a last"), Error);
}

TEST_CASE("loss: cross_entropy by hand: ignore label, weights, gradient") {
  // 4 pixels, labels 1, 0, ignore (255), 1. CE: ln(4/3), ln 4, -, ln(4/3); 3 valid pixels.
  Tensor z = two_class_logits(4).set_requires_grad();
  Tensor y8 = Tensor::from_vector<uint8_t>({1, 0, 255, 1}, {1, 1, 4});
  Tensor loss = cross_entropy(z, y8);
  CHECK(loss.rank() == 0);
  CHECK(loss.item() == doctest::Approx((2 * ln43 + ln4) / 3).epsilon(1e-12));
  mul(loss, 2.0).backward();  // upstream gradient 2: d/dz = 2 (p - onehot) / 3
  const std::vector<double> want{2 * 0.25 / 3, -2 * 0.25 / 3, -2 * 0.75 / 3, 2 * 0.75 / 3, 0, 0,
                                 2 * 0.25 / 3, -2 * 0.25 / 3};
  CHECK(close_arrays("ce grad", z.grad().to_vector<double>().data(), want.data(), 8, 1e-14, 1e-12));
  // Weights [2, 0.5]: sum w CE / (number of valid pixels), not / (sum of weights).
  Tensor w = Tensor::from_vector<double>({2, 0.5}, {2});
  Tensor y32 = Tensor::from_vector<int32_t>({1, 0, -1, 1}, {1, 1, 4});
  CHECK(cross_entropy(z, y32, w, -1).item() == doctest::Approx((0.5 * 2 * ln43 + 2 * ln4) / 3).epsilon(1e-12));
  // f32 gives the same within float precision.
  CHECK(cross_entropy(two_class_logits(4, DType::f32), y8).item() ==
        doctest::Approx((2 * ln43 + ln4) / 3).epsilon(1e-6));
}

TEST_CASE("loss: no valid pixel gives 0 and a zero gradient; ignore_index wins over the class range") {
  Tensor z = two_class_logits(3).set_requires_grad();
  Tensor loss = cross_entropy(z, Tensor::from_vector<uint8_t>({255, 255, 255}, {1, 1, 3}));
  CHECK(loss.item() == 0.0);
  loss.backward();
  for (double g : z.grad().to_vector<double>()) CHECK(g == 0.0);
  // ignore_index 0 lies inside [0, C): label 0 is ignored, label 1 counts.
  CHECK(cross_entropy(z, Tensor::from_vector<int32_t>({0, 1, 0}, {1, 1, 3}), {}, 0).item() ==
        doctest::Approx(ln43).epsilon(1e-12));
}

TEST_CASE("loss: bad labels and shapes are errors naming the value and position") {
  Tensor z = two_class_logits(4, DType::f32).reshape({1, 2, 2, 2});
  CHECK_THROWS_WITH_AS(cross_entropy(z, Tensor::from_vector<uint8_t>({0, 1, 7, 9}, {1, 2, 2})),
                       doctest::Contains("cross_entropy: label 7 at [0,1,0] of labels u8[1,2,2] cpu is outside [0, 2) "
                                         "and is not ignore_index 255"),
                       Error);
  CHECK_THROWS_WITH_AS(cross_entropy(z, Tensor::from_vector<int32_t>({0, -3, 1, 1}, {1, 2, 2})),
                       doctest::Contains("label -3 at [0,0,1]"), Error);
  CHECK_THROWS_WITH_AS(cross_entropy(z, Tensor::zeros({1, 2, 3}, DType::u8)),
                       doctest::Contains("labels u8[1,2,3] cpu does not match logits f32[1,2,2,2] cpu"), Error);
  CHECK_THROWS_WITH_AS(cross_entropy(z, Tensor::zeros({1, 2, 2})), doctest::Contains("must be u8 or i32"), Error);
  CHECK_THROWS_WITH_AS(cross_entropy(z, Tensor::zeros({1, 2, 2}, DType::u8), Tensor::zeros({3})),
                       doctest::Contains("weight f32[3] cpu must be [C] = [2]"), Error);
  CHECK_THROWS_WITH_AS(soft_cross_entropy(z, Tensor::zeros({1, 2, 2, 3})), doctest::Contains("soft_cross_entropy: shape"),
                       Error);
  CHECK_THROWS_WITH_AS(soft_cross_entropy(z, z, Tensor::zeros({1, 2, 2}, DType::i32)),
                       doctest::Contains("mask must be u8 or f32"), Error);
}

TEST_CASE("loss: soft_cross_entropy by hand: mask, all-zero mask, gradient") {
  // Targets [1/2, 1/2] on logits [0, ln 3]: CE = (ln 4 + ln(4/3)) / 2; gradient p - t.
  Tensor z = two_class_logits(3).set_requires_grad();
  Tensor t = Tensor::full({1, 1, 3, 2}, 0.5, DType::f64);
  Tensor m = Tensor::from_vector<double>({1, 0, 0.5}, {1, 1, 3});
  const double ce = (ln4 + ln43) / 2;
  CHECK(soft_cross_entropy(z, t).item() == doctest::Approx(ce).epsilon(1e-12));
  Tensor loss = soft_cross_entropy(z, t, m);  // (1 ce + 0.5 ce) / 1.5
  CHECK(loss.item() == doctest::Approx(ce).epsilon(1e-12));
  loss.backward();
  const std::vector<double> want{-0.25 / 1.5, 0.25 / 1.5, 0, 0, -0.125 / 1.5, 0.125 / 1.5};
  CHECK(close_arrays("soft ce grad", z.grad().to_vector<double>().data(), want.data(), 6, 1e-14, 1e-12));
  // A one-hot target equals the hard-label loss; a u8 mask of zeros gives 0.
  Tensor onehot = Tensor::from_vector<double>({0, 1, 1, 0, 0, 1}, {1, 1, 3, 2});
  CHECK(soft_cross_entropy(z, onehot).item() == doctest::Approx((2 * ln43 + ln4) / 3).epsilon(1e-12));
  CHECK(soft_cross_entropy(z, onehot, Tensor::zeros({1, 1, 3}, DType::u8)).item() == 0.0);
}

TEST_CASE("softmax: gradient checks in double (softmax, log_softmax, both losses)") {
  const Shape s{2, 3, 2, 5};
  Tensor x = random_tensor(s, 71, DType::f64, -2, 2), w = random_tensor(s, 72, DType::f64);
  CHECK(gradcheck("softmax", [&](auto& in) { return sum(mul(softmax(in[0]), w)); }, {x}));
  CHECK(gradcheck("log_softmax", [&](auto& in) { return sum(mul(log_softmax(in[0]), w)); }, {x}));
  // Labels with ignore pixels (255) and class weights; the loss feeds a further op so the
  // upstream gradient is not 1.
  std::vector<uint8_t> lab(12);
  for (int i = 0; i < 12; ++i) lab[i] = i % 4 == 3 ? 255 : uint8_t((i * 3) % 5);
  Tensor y8 = Tensor::from_vector(lab, {2, 3, 2});
  Tensor y32 = cast(y8, DType::i32), cw = random_tensor({5}, 73, DType::f64, 0.2, 3);
  CHECK(gradcheck("cross_entropy", [&](auto& in) { return mul(cross_entropy(in[0], y8, cw), 1.7); }, {x}));
  CHECK(gradcheck("cross_entropy i32", [&](auto& in) { return square(cross_entropy(in[0], y32, {}, 255)); }, {x}));
  Tensor tgt = softmax(random_tensor(s, 74, DType::f64, -2, 2));
  Tensor mask = random_tensor({2, 3, 2}, 75, DType::f64, 0, 1);
  Tensor mask8 = Tensor::from_vector<uint8_t>({1, 0, 1, 1, 0, 1, 1, 1, 0, 0, 1, 1}, {2, 3, 2});
  CHECK(gradcheck("soft_cross_entropy", [&](auto& in) { return mul(soft_cross_entropy(in[0], tgt, mask), -0.8); }, {x}));
  CHECK(gradcheck("soft_cross_entropy u8", [&](auto& in) { return square(soft_cross_entropy(in[0], tgt, mask8)); },
                  {x}));
}

namespace {
struct Rows { int64_t rows, C; };
// The shapes the lab's scales miss (its softmax, cross_entropy and soft_cross_entropy entries
// check 2x61x125 and 2x7x11 pixels of 19 and 3 classes, u8 labels without weights, a u8 mask):
// one element; one pixel of 19 classes; rows not a multiple of the 8 rows per block; C below,
// at and above a warp; C = 256 (feature rows). Also log_softmax, the softmax backward, class
// weights, i32 labels, invalid labels, no mask and an f32 mask.
const Rows kRows[] = {{1, 1}, {1, 19}, {257, 19}, {13, 32}, {9, 33}, {300, 256}};
std::string tag_of(const char* order, Rows r) {
  return std::string(order) + " [" + std::to_string(r.rows) + "," + std::to_string(r.C) + "]";
}
// Labels: mostly valid, every 7th pixel ignored (255), and `bad` (if >= 0) made invalid.
template <class L> std::vector<L> make_labels(int64_t npix, int64_t C, int64_t bad) {
  std::vector<L> y(static_cast<size_t>(npix));
  for (int64_t i = 0; i < npix; ++i) y[i] = i % 7 == 3 ? L(255) : L((i * 5 + 1) % C);
  if (bad >= 0) y[bad] = L(C + 1 == 255 ? C + 2 : C + 1);
  return y;
}
// Device scratch for the emulated losses (emulated device memory is host memory).
std::vector<uint64_t> emu_scratch() {
  return std::vector<uint64_t>(kernels::emu::loss_scratch_bytes() / 8 + 1, ~0ull);
}
}  // namespace

TEST_CASE("softmax kernels: emulated softmax, log_softmax and backward edge cases match the CPU") {
  for_each_fiber_order([](const char* order) {
    for (Rows r : kRows) {
      const int64_t n = r.rows * r.C;
      auto x = random_floats(n, 81, -8.f, 8.f), g = random_floats(n, 82);
      for (bool log : {false, true}) {
        const std::string tag = tag_of(order, r) + (log ? " log" : "");
        std::vector<float> yw(n), yg(n, -99.f), gw(n), gg(n, -99.f);
        kernels::cpu::softmax(x.data(), yw.data(), r.rows, r.C, log);
        kernels::emu::softmax_f32(x.data(), yg.data(), r.rows, r.C, log);
        CHECK(close_arrays("softmax " + tag, yg.data(), yw.data(), n, 1e-6, 1e-5));
        kernels::cpu::softmax_backward(yw.data(), g.data(), gw.data(), r.rows, r.C, log);
        kernels::emu::softmax_backward_f32(yw.data(), g.data(), gg.data(), r.rows, r.C, log);
        CHECK(close_arrays("softmax backward " + tag, gg.data(), gw.data(), n, 1e-6, 1e-5));
      }
    }
  });
}

TEST_CASE("loss kernels: emulated cross_entropy edge cases match the CPU (weights, i32 labels, invalid labels)") {
  for_each_fiber_order([](const char* order) {
    for (Rows r : kRows) {
      const int64_t n = r.rows * r.C;
      auto x = random_floats(n, 83, -6.f, 6.f), w = random_floats(r.C, 84, 0.2f, 3.f);
      for (int variant = 0; variant < 3; ++variant) {
        // 0: u8 labels with weights; 1: i32 labels, no weights, no gradient; 2: an invalid label.
        const std::string tag = tag_of(order, r) + " variant " + std::to_string(variant);
        const int64_t bad = variant == 2 ? r.rows / 2 : -1;
        std::vector<float> gw(n), gg(n, -99.f), ow(2), og(2, -99.f);
        auto s = emu_scratch();
        int64_t fw, fg;
        if (variant == 1 || (variant == 2 && r.C >= 255)) {  // every u8 value is a class or 255 there
          auto y = make_labels<int32_t>(r.rows, r.C, bad);
          fw = kernels::cpu::cross_entropy(x.data(), y.data(), (const float*)nullptr, 255, r.rows, r.C,
                                           (float*)nullptr, ow.data());
          fg = kernels::emu::cross_entropy_f32(x.data(), y.data(), nullptr, 255, r.rows, r.C, nullptr, og.data(),
                                               s.data());
        } else {
          auto y = make_labels<uint8_t>(r.rows, r.C, bad);
          fw = kernels::cpu::cross_entropy(x.data(), y.data(), w.data(), 255, r.rows, r.C, gw.data(), ow.data());
          fg = kernels::emu::cross_entropy_f32(x.data(), y.data(), w.data(), 255, r.rows, r.C, gg.data(), og.data(),
                                               s.data());
          CHECK(close_arrays("ce grad " + tag, gg.data(), gw.data(), n, 1e-6, 1e-5));
        }
        CHECK(fw == bad);
        CHECK(fg == bad);
        CHECK(close_arrays("ce loss " + tag, og.data(), ow.data(), 2, 1e-6, 1e-5));
      }
    }
  });
}

TEST_CASE("loss kernels: emulated soft_cross_entropy edge cases match the CPU (no mask, u8 mask, f32 mask)") {
  for_each_fiber_order([](const char* order) {
    for (Rows r : kRows) {
      const int64_t n = r.rows * r.C;
      auto x = random_floats(n, 85, -6.f, 6.f), t = random_floats(n, 86, 0.f, 1.f);
      auto mf = random_floats(r.rows, 87, 0.f, 1.f);
      std::vector<uint8_t> m8(r.rows);
      for (int64_t i = 0; i < r.rows; ++i) m8[i] = i % 3 != 1, mf[i] = i % 5 == 2 ? 0.f : mf[i];
      for (int variant = 0; variant < 3; ++variant) {  // 0: no mask, 1: u8, 2: f32
        const std::string tag = tag_of(order, r) + " mask variant " + std::to_string(variant);
        std::vector<float> gw(n), gg(n, -99.f), ow(2), og(2, -99.f);
        auto s = emu_scratch();
        if (variant == 1) {
          kernels::cpu::soft_cross_entropy(x.data(), t.data(), m8.data(), r.rows, r.C, gw.data(), ow.data());
          kernels::emu::soft_cross_entropy_f32(x.data(), t.data(), m8.data(), r.rows, r.C, gg.data(), og.data(),
                                               s.data());
        } else {
          const float* m = variant == 2 ? mf.data() : nullptr;
          kernels::cpu::soft_cross_entropy(x.data(), t.data(), m, r.rows, r.C, gw.data(), ow.data());
          kernels::emu::soft_cross_entropy_f32(x.data(), t.data(), m, r.rows, r.C, gg.data(), og.data(), s.data());
        }
        CHECK(close_arrays("soft ce grad " + tag, gg.data(), gw.data(), n, 1e-6, 1e-5));
        CHECK(close_arrays("soft ce loss " + tag, og.data(), ow.data(), 2, 1e-6, 1e-5));
      }
    }
  });
}

GPU_TEST_CASE("gpu: softmax and the losses match the CPU, deterministically") {
  const Shape s{2, 33, 65, 19}, px{2, 33, 65};
  Tensor x = random_tensor(s, 91, DType::f32, -6, 6), g = random_tensor(s, 92);
  Tensor gx = x.cuda();
  CHECK(close_tensors("softmax", softmax(gx), softmax(x), 1e-6, 1e-5));
  CHECK(close_tensors("log_softmax", log_softmax(gx), log_softmax(x), 1e-5, 1e-5));
  for (bool log : {false, true}) {  // backward through the op
    Tensor a = x.clone().set_requires_grad(), b = x.cuda().set_requires_grad();
    sum(mul(log ? log_softmax(a) : softmax(a), g)).backward();
    sum(mul(log ? log_softmax(b) : softmax(b), g.cuda())).backward();
    CHECK(close_tensors(log ? "log_softmax grad" : "softmax grad", b.grad(), a.grad(), 1e-6, 1e-5));
  }
  Tensor y = Tensor::from_vector(make_labels<uint8_t>(2 * 33 * 65, 19, -1), px), w = random_tensor({19}, 93, DType::f32, 0.2, 3);
  Tensor a = x.clone().set_requires_grad(), b = x.cuda().set_requires_grad();
  Tensor la = cross_entropy(a, y, w), lb = cross_entropy(b, y.cuda(), w.cuda());
  CHECK(close_tensors("ce", lb, la, 1e-6, 1e-5));
  CHECK(cross_entropy(gx, y.cuda(), w.cuda()).item() == lb.item());  // same bits twice
  mul(la, 3.0).backward();
  mul(lb, 3.0).backward();
  CHECK(close_tensors("ce grad", b.grad(), a.grad(), 1e-7, 1e-5));
  auto bad = make_labels<int32_t>(2 * 33 * 65, 19, 1000);
  CHECK_THROWS_WITH_AS(cross_entropy(gx, Tensor::from_vector(bad, px, Device::cuda)),
                       doctest::Contains("label 20 at [0,15,25]"), Error);
  Tensor t = softmax(random_tensor(s, 94, DType::f32, -3, 3)), m = random_tensor(px, 95, DType::f32, 0, 1);
  Tensor c = x.clone().set_requires_grad(), d = x.cuda().set_requires_grad();
  Tensor sc = soft_cross_entropy(c, t, m), sd = soft_cross_entropy(d, t.cuda(), m.cuda());
  CHECK(close_tensors("soft ce", sd, sc, 1e-6, 1e-5));
  CHECK(soft_cross_entropy(gx, t.cuda(), m.cuda()).item() == sd.item());
  sc.backward();
  sd.backward();
  CHECK(close_tensors("soft ce grad", d.grad(), c.grad(), 1e-7, 1e-5));
}
