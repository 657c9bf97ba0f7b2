// Elementwise ops and sums: hand-computed values, broadcast rules, gradient checks,
// emulated CUDA kernels against the CPU kernels, and the GPU against the CPU.
//
// CUDA kernels run here in emulation, through their kernels::emu entry points, against
// the CPU kernels:
//   binary_kernel, unary_kernel, unary_backward_kernel, select_kernel, axpy_kernel, fill4_kernel,
//   fill2_kernel, fill1_kernel, cast_kernel, sum_rows_kernel, sum_cols_kernel, broadcast_mid_kernel
//   (the templated ones for f32 and for bf16).
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>

#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/reduce.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/reduce.h"
#include "tests/bf16_helpers.h"
#include "tests/emu_helpers.h"
#include "tests/helpers.h"

using namespace c3;
using namespace c3test;
using kernels::Bcast;
using kernels::Binary;
using kernels::Unary;

TEST_CASE("elementwise: values computed by hand, four broadcast modes") {
  Tensor a = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 1, 1, 3});
  CHECK(add(a, Tensor::from_vector<float>({10, 20, 30, 40, 50, 60}, {2, 1, 1, 3})).to_vector<float>() ==
        std::vector<float>{11, 22, 33, 44, 55, 66});
  CHECK(mul(a, Tensor::scalar(2)).to_vector<float>() == std::vector<float>{2, 4, 6, 8, 10, 12});
  CHECK(sub(a, Tensor::from_vector<float>({1, 2, 3}, {3})).to_vector<float>() == std::vector<float>{0, 0, 0, 3, 3, 3});
  CHECK(div(a, Tensor::from_vector<float>({1, 2}, {2, 1, 1, 1})).to_vector<float>() ==
        std::vector<float>{1, 2, 3, 2, 2.5f, 3});
  CHECK(relu(Tensor::from_vector<float>({-1, 0, 2}, {3})).to_vector<float>() == std::vector<float>{0, 0, 2});
  // A NaN goes through relu (as in PyTorch): a diverging run must not turn it into zeros,
  // which hid a NaN weight from the loss and the run's non-finite check.
  for (float x : {NAN, -NAN}) {
    CHECK(std::isnan(relu(Tensor::from_vector<float>({x}, {1})).item()));
    float y = 0;
    kernels::emu::unary_f32(Unary::relu, &x, &y, 1, 0.f, 0.f);
    CHECK(std::isnan(y));
  }
  CHECK(clamp(Tensor::from_vector<float>({-5, 0.5f, 7}, {3}), 0, 1).to_vector<float>() ==
        std::vector<float>{0, 0.5f, 1});
  auto s = sigmoid(Tensor::from_vector<float>({0, 2}, {2})).to_vector<float>();
  CHECK(s[0] == doctest::Approx(0.5));
  CHECK(s[1] == doctest::Approx(1 / (1 + std::exp(-2.0))).epsilon(1e-6));
  Tensor m = Tensor::from_vector<uint8_t>({1, 0, 1}, {3});
  CHECK(where(m, Tensor::from_vector<float>({1, 2, 3}, {3}), Tensor::from_vector<float>({7, 8, 9}, {3}))
            .to_vector<float>() == std::vector<float>{1, 8, 3});
  Tensor y = Tensor::from_vector<float>({1, 1, 1}, {3});
  axpy_(y, 2.0, Tensor::from_vector<float>({1, 2, 3}, {3}));
  CHECK(y.to_vector<float>() == std::vector<float>{3, 5, 7});
  CHECK(cast(Tensor::from_vector<float>({1.7f, 255.f}, {2}), DType::u8).to_vector<uint8_t>() ==
        std::vector<uint8_t>{1, 255});
  CHECK(sum(a).item() == 21);
  CHECK(sum_mid(a, 1, 2, 3, {3}).to_vector<float>() == std::vector<float>{5, 7, 9});
  CHECK(sum_mid(a, 2, 3, 1, {2}).to_vector<float>() == std::vector<float>{6, 15});
}

TEST_CASE("elementwise: add_relu is relu(add) in one op, forward, backward and NaN") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  Tensor a = Tensor::from_vector<float>({1.f, -2.f, 0.5f, 3.f, nan, -1.f}, {2, 3}).set_requires_grad();
  Tensor b = Tensor::from_vector<float>({-3.f, 1.f, 0.25f, -1.f, 1.f, 1.f}, {2, 3}).set_requires_grad();
  Tensor y = add_relu(a, b);
  const auto v = y.to_vector<float>();
  CHECK(v[0] == 0.f);
  CHECK(v[1] == 0.f);
  CHECK(v[2] == 0.75f);
  CHECK(v[3] == 2.f);
  CHECK(std::isnan(v[4]));  // as relu(NaN)
  CHECK(v[5] == 0.f);       // exactly zero: no gradient (as relu at 0)
  sum(mul(y, Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3}))).backward();
  const std::vector<float> want = {0, 0, 3, 4, 0, 0};
  CHECK(a.grad().to_vector<float>() == want);
  CHECK(b.grad().to_vector<float>() == want);
  // Against the two-op form on random inputs, f64 and f32: the same values and gradients.
  for (DType dt : {DType::f32, DType::f64}) {
    Tensor x1 = random_tensor({2, 5, 4, 3}, 7, dt).set_requires_grad(), x2 = random_tensor({2, 5, 4, 3}, 8, dt).set_requires_grad();
    Tensor w = random_tensor({2, 5, 4, 3}, 9, dt);
    Tensor fused = add_relu(x1, x2);
    sum(mul(fused, w)).backward();
    const Tensor g1 = x1.grad().clone(), g2 = x2.grad().clone();
    x1.zero_grad(), x2.zero_grad();
    Tensor plain = relu(add(x1, x2));
    sum(mul(plain, w)).backward();
    CHECK(close_tensors("add_relu forward", fused, plain, 0, 0));
    CHECK(close_tensors("add_relu grad a", g1, x1.grad(), 0, 0));
    CHECK(close_tensors("add_relu grad b", g2, x2.grad(), 0, 0));
  }
  Tensor c = random_tensor({4, 6}, 10, DType::f64), d = random_tensor({4, 6}, 11, DType::f64);
  Tensor wd = random_tensor({4, 6}, 12, DType::f64);
  CHECK(gradcheck("add_relu", [&](auto& in) { return sum(mul(add_relu(in[0], in[1]), wd)); }, {c, d}));
}

TEST_CASE("elementwise: mismatches name the op and both shapes") {
  Tensor a = Tensor::zeros({2, 3}), b = Tensor::zeros({3, 2});
  CHECK_THROWS_WITH_AS(add(a, b), doctest::Contains("add: cannot broadcast f32[3,2] cpu onto f32[2,3] cpu"), Error);
  CHECK_THROWS_WITH_AS(mul(a, Tensor::zeros({2, 3}, DType::f64)), doctest::Contains("mul: dtype mismatch"), Error);
  CHECK_THROWS_WITH_AS(where(Tensor::zeros({2, 3}), a, a), doctest::Contains("where (mask): expected u8"), Error);
  CHECK_THROWS_WITH_AS(Tensor::zeros({1, 2, 3, 4, 5}), doctest::Contains("rank must be 0 to 4"), Error);
}

TEST_CASE("elementwise: gradient checks in double") {
  const Shape s{2, 3, 2, 4};
  Tensor a = random_tensor(s, 1, DType::f64), b = random_tensor(s, 2, DType::f64, 0.5, 2.0);
  Tensor w = random_tensor(s, 3, DType::f64);  // weights make the loss sensitive to every element
  auto weighted = [&](const Tensor& t) { return sum(mul(t, w)); };
  CHECK(gradcheck("add", [&](auto& in) { return weighted(add(in[0], in[1])); }, {a, b}));
  CHECK(gradcheck("sub", [&](auto& in) { return weighted(sub(in[0], in[1])); }, {a, b}));
  CHECK(gradcheck("mul", [&](auto& in) { return weighted(mul(in[0], in[1])); }, {a, b}));
  CHECK(gradcheck("div", [&](auto& in) { return weighted(div(in[0], in[1])); }, {a, b}));
  Tensor ch = random_tensor({4}, 4, DType::f64, 0.5, 2), smp = random_tensor({2, 1, 1, 1}, 5, DType::f64, 0.5, 2);
  Tensor sc = random_tensor({1}, 6, DType::f64, 0.5, 2);
  for (Tensor bb : {ch, smp, sc}) {
    CHECK(gradcheck("mul bcast", [&](auto& in) { return weighted(mul(in[0], in[1])); }, {a, bb}));
    CHECK(gradcheck("div bcast", [&](auto& in) { return weighted(div(in[0], in[1])); }, {a, bb}));
    CHECK(gradcheck("sub bcast", [&](auto& in) { return weighted(sub(in[0], in[1])); }, {a, bb}));
  }
  // Inputs kept away from the kinks of relu, clamp and abs (|x| >= 0.1 from them).
  std::vector<double> safe(a.numel());
  for (int64_t i = 0; i < a.numel(); ++i) safe[i] = (i % 2 ? 1 : -1) * (0.1 + 0.05 * (i % 7));
  Tensor k = Tensor::from_vector(safe, s);
  CHECK(gradcheck("relu", [&](auto& in) { return weighted(relu(in[0])); }, {k}));
  CHECK(gradcheck("abs", [&](auto& in) { return weighted(abs(in[0])); }, {k}));
  CHECK(gradcheck("clamp", [&](auto& in) { return weighted(clamp(in[0], -0.22, 0.22)); }, {k}));
  CHECK(gradcheck("exp", [&](auto& in) { return weighted(exp(in[0])); }, {a}));
  CHECK(gradcheck("log", [&](auto& in) { return weighted(log(in[0])); }, {b}));
  CHECK(gradcheck("sqrt", [&](auto& in) { return weighted(sqrt(in[0])); }, {b}));
  CHECK(gradcheck("sigmoid", [&](auto& in) { return weighted(sigmoid(in[0])); }, {a}));
  CHECK(gradcheck("square/neg/scalar", [&](auto& in) { return weighted(neg(square(in[0]) * 3.0 + 1.0)); }, {a}));
  Tensor mask = cast(Tensor::from_vector(random_floats(a.numel(), 9, 0, 2), s), DType::u8);
  CHECK(gradcheck("where", [&](auto& in) { return weighted(where(mask, in[0], in[1])); }, {a, b}));
  CHECK(gradcheck("sum_mid", [&](auto& in) { return sum(mul(sum_mid(in[0], 2, 6, 4, {2, 4}), sum_mid(w, 2, 6, 4, {2, 4}))); }, {a}));
}

namespace {
struct Case {
  int64_t n;
  Bcast bc;
  int64_t inner;
};
// Sizes: one element, not multiples of the block (255, 257), several blocks, and a
// realistic logits shape (2 x 33 x 65 x 19, per-channel).
const Case kCases[] = {{1, Bcast::same, 1},        {255, Bcast::scalar, 1},  {257, Bcast::channel, 19},
                       {1000, Bcast::sample, 250}, {4097, Bcast::same, 1},   {2 * 33 * 65 * 19, Bcast::channel, 19}};
int64_t b_len(const Case& c) {
  switch (c.bc) {
    case Bcast::same: return c.n;
    case Bcast::scalar: return 1;
    case Bcast::channel: return c.inner;
    case Bcast::sample: return c.n / c.inner;
  }
  return c.n;
}
}  // namespace

// small_i32: a step's few values (mixing order, boxes) carried to the device in a kernel's
// arguments, not a host sync; the emulated kernel (write_small_kernel, through
// write_small_i32) writes exactly the values given, in both fiber orders.
TEST_CASE("elementwise kernels: small_i32 writes its values through kernel arguments, no host sync") {
  std::vector<int32_t> v;
  for (int i = 0; i < 777; ++i) v.push_back(i * 37 - 5000);
  const uint64_t before = host_syncs();
  Tensor t = small_i32(v, Device::cpu);
  CHECK(host_syncs() == before);
  CHECK(t.shape() == Shape{777});
  CHECK(t.to_vector<int32_t>() == v);
  for (int n : {1, 255, 256, kernels::kSmallValues}) {
    auto small = std::make_unique<kernels::SmallI32>();
    small->n = n;
    for (int i = 0; i < n; ++i) small->v[i] = i ^ 0x5a5a;
    std::vector<int32_t> out(size_t(n) + 1, -7);
    c3test::for_each_fiber_order([&](const char* order) {
      kernels::emu::write_small_i32(out.data(), *small);
      for (int i = 0; i < n; ++i) REQUIRE_MESSAGE(out[size_t(i)] == (i ^ 0x5a5a), order);
      CHECK(out[size_t(n)] == -7);  // nothing past n
    });
  }
  static_assert(sizeof(kernels::SmallI32) <= 4096, "kernel arguments are limited to 4 KB");
}

GPU_TEST_CASE("gpu: small_i32 carries its values to the device without a host sync") {
  std::vector<int32_t> v(300);
  for (int i = 0; i < 300; ++i) v[size_t(i)] = 3 * i - 11;
  const uint64_t before = host_syncs();
  Tensor t = small_i32(v, Device::cuda);
  CHECK(host_syncs() == before);
  CHECK(t.to_vector<int32_t>() == v);
  std::vector<int32_t> big(2000, 4);
  CHECK(small_i32(big, Device::cuda).to_vector<int32_t>() == big);  // more than 1000: an upload
}

TEST_CASE("elementwise kernels: emulated CUDA matches the CPU kernels") {
  for_each_fiber_order([](const char* order) {
    for (const Case& c : kCases) {
      const std::string tag = std::string(order) + " n=" + std::to_string(c.n);
      auto a = random_floats(c.n, 11, 0.1f, 2.f), b = random_floats(b_len(c), 12, 0.5f, 2.f);
      std::vector<float> want(c.n), got(c.n, -99.f), g = random_floats(c.n, 13);
      for (Binary op : {Binary::add, Binary::sub, Binary::mul, Binary::div}) {
        kernels::cpu::binary(op, a.data(), b.data(), want.data(), c.n, c.bc, c.inner);
        kernels::emu::binary_f32(op, a.data(), b.data(), got.data(), c.n, c.bc, c.inner);
        CHECK(close_arrays("binary " + tag, got.data(), want.data(), c.n, 1e-6, 1e-6));
      }
      for (Unary op : {Unary::neg, Unary::exp, Unary::log, Unary::relu, Unary::sigmoid, Unary::clamp, Unary::scale,
                       Unary::add_scalar, Unary::sqrt, Unary::square, Unary::abs}) {
        kernels::cpu::unary(op, a.data(), want.data(), c.n, 0.3f, 1.5f);
        kernels::emu::unary_f32(op, a.data(), got.data(), c.n, 0.3f, 1.5f);
        CHECK(close_arrays("unary " + tag, got.data(), want.data(), c.n, 1e-6, 1e-6));
        std::vector<float> gw(c.n), gg(c.n);
        kernels::cpu::unary_backward(op, a.data(), want.data(), g.data(), gw.data(), c.n, 0.3f, 1.5f);
        kernels::emu::unary_backward_f32(op, a.data(), want.data(), g.data(), gg.data(), c.n, 0.3f, 1.5f);
        CHECK(close_arrays("unary backward " + tag, gg.data(), gw.data(), c.n, 1e-6, 1e-6));
      }
      std::vector<uint8_t> mask(c.n);
      for (int64_t i = 0; i < c.n; ++i) mask[i] = (i * 7) % 3 == 0;
      std::vector<float> bb = random_floats(c.n, 14);
      kernels::cpu::select(mask.data(), a.data(), bb.data(), want.data(), c.n);
      kernels::emu::select_f32(mask.data(), a.data(), bb.data(), got.data(), c.n);
      CHECK(close_arrays("select " + tag, got.data(), want.data(), c.n, 0, 0));
      want = a; got = a;
      kernels::cpu::axpy(0.7f, g.data(), want.data(), c.n);
      kernels::emu::axpy_f32(0.7f, g.data(), got.data(), c.n);
      CHECK(close_arrays("axpy " + tag, got.data(), want.data(), c.n, 1e-6, 1e-6));
      float f = 2.5f; uint32_t bits; std::memcpy(&bits, &f, 4);
      kernels::emu::fill_bytes4(got.data(), c.n, bits);
      CHECK(std::count(got.begin(), got.end(), 2.5f) == c.n);
      std::vector<uint8_t> filled(c.n, 0);
      kernels::emu::fill_u8(filled.data(), c.n, 7);
      CHECK(std::count(filled.begin(), filled.end(), uint8_t(7)) == c.n);
      std::vector<uint8_t> u8w(c.n), u8g(c.n);
      kernels::cpu::cast(a.data(), 0, u8w.data(), 3, c.n);
      kernels::emu::cast(a.data(), 0, u8g.data(), 3, c.n);
      CHECK(u8w == u8g);
    }
  });
}

// The 16-byte kernels (binary16_kernel, unary16_kernel, unary_backward16_kernel) run when every
// buffer is 16-byte aligned; the scalar ones (binary_kernel, unary_kernel,
// unary_backward_kernel) otherwise. Both, at every tail length n % V (V = 4 float, 8 bf16),
// against the CPU kernels: a buffer one element off alignment takes the scalar path, and
// nothing is written outside [0, n). One size spans more groups than the grid has threads.
TEST_CASE("elementwise kernels: 16-byte and scalar paths, every tail, nothing written outside") {
  for_each_fiber_order([](const char* order) {
    std::vector<int64_t> sizes;
    for (int64_t n = 1; n <= 17; ++n) sizes.push_back(n);
    for (int64_t n : {255, 4099}) sizes.push_back(n);
    for (int64_t n : sizes)
      for (int off : {0, 1}) {  // 1: every pointer one element past a 16-byte boundary
        const std::string tag = std::string(order) + " n=" + std::to_string(n) + " offset " + std::to_string(off);
        const auto a = random_floats(n + off, 21, -2.f, 2.f), b = random_floats(n + off, 22, 0.5f, 2.f),
                   g = random_floats(n + off, 23);
        std::vector<float> want(n), got(size_t(n + off) + 1, -99.f);
        kernels::cpu::binary(Binary::add_relu, a.data() + off, b.data() + off, want.data(), n, Bcast::same, 1);
        kernels::emu::binary_f32(Binary::add_relu, a.data() + off, b.data() + off, got.data() + off, n, Bcast::same,
                                 1);
        CHECK(close_arrays("add_relu " + tag, got.data() + off, want.data(), n, 0, 0));
        CHECK(got[size_t(n + off)] == -99.f);
        if (off) CHECK(got[0] == -99.f);
        kernels::cpu::binary(Binary::mul, a.data() + off, b.data(), want.data(), n, Bcast::scalar, 1);
        kernels::emu::binary_f32(Binary::mul, a.data() + off, b.data(), got.data() + off, n, Bcast::scalar, 1);
        CHECK(close_arrays("mul by a scalar " + tag, got.data() + off, want.data(), n, 0, 0));
        kernels::cpu::unary(Unary::sigmoid, a.data() + off, want.data(), n, 0.f, 0.f);
        kernels::emu::unary_f32(Unary::sigmoid, a.data() + off, got.data() + off, n, 0.f, 0.f);
        CHECK(close_arrays("sigmoid " + tag, got.data() + off, want.data(), n, 1e-6, 1e-6));
        CHECK(got[size_t(n + off)] == -99.f);
        const std::vector<float> y(got.begin() + off, got.begin() + off + n);
        kernels::cpu::unary_backward(Unary::sigmoid, static_cast<const float*>(nullptr), y.data(), g.data() + off,
                                     want.data(), n, 0.f, 0.f);
        kernels::emu::unary_backward_f32(Unary::sigmoid, nullptr, y.data(), g.data() + off, got.data() + off, n, 0.f,
                                         0.f);
        CHECK(close_arrays("sigmoid backward " + tag, got.data() + off, want.data(), n, 1e-6, 1e-6));
        CHECK(got[size_t(n + off)] == -99.f);
        // bf16: 8 per group; the same kernels' bits as the CPU f32 kernel on widened inputs.
        const auto ab = random_bf16s(n + off, 31, -3.f, 3.f, true), bb = random_bf16s(n + off, 32, -3.f, 3.f, true);
        const auto af = widened(ab), bf = widened(bb);
        std::vector<bf16> gotb(size_t(n + off) + 1, kernels::to_bf16(-99.f));
        kernels::cpu::binary(Binary::add_relu, af.data() + off, bf.data() + off, want.data(), n, Bcast::same, 1);
        kernels::emu::binary_bf16(Binary::add_relu, ab.data() + off, bb.data() + off, gotb.data() + off, n,
                                  Bcast::same, 1);
        const std::vector<bf16> outb(gotb.begin() + off, gotb.begin() + off + n);
        CHECK(same_bf16("bf16 add_relu " + tag, outb, ref_narrow(want)));
        CHECK(kernels::widen(gotb[size_t(n + off)]) == -99.f);
      }
  });
  // More element groups than the grid's threads (1024 blocks of 256): the grid strides on.
  const int64_t n = 4 * 1024 * 256 + 4 * 5 + 3;
  const auto a = random_floats(n, 24), b = random_floats(n, 25);
  std::vector<float> want(n), got(n);
  kernels::cpu::binary(Binary::sub, a.data(), b.data(), want.data(), n, Bcast::same, 1);
  kernels::emu::binary_f32(Binary::sub, a.data(), b.data(), got.data(), n, Bcast::same, 1);
  CHECK(close_arrays("sub over more than one grid", got.data(), want.data(), n, 0, 0));
}

// The bf16 kernels are the f32 kernels' code on widened elements, rounded once on store: each
// must equal the CPU f32 kernel run on the widened inputs, narrowed once, bit for bit (the
// same f32 operations in the same order; any NaN matches any NaN, as the payload an
// operation keeps may depend on operand order). Inputs carry NaN, -NaN, +-0, +-Inf and tiny
// negatives (relu, add_relu and clamp at their edges, NaN through relu), over every Bcast
// mode and sizes off the block.
TEST_CASE("elementwise kernels: emulated bf16 kernels equal the CPU f32 kernels on widened inputs, rounded once") {
  const Unary kUnary[] = {Unary::neg,   Unary::exp,        Unary::log,  Unary::relu,   Unary::sigmoid, Unary::clamp,
                          Unary::scale, Unary::add_scalar, Unary::sqrt, Unary::square, Unary::abs};
  for_each_fiber_order([&](const char* order) {
    for (const Case& c : kCases) {
      const std::string tag = std::string(order) + " n=" + std::to_string(c.n) + " bcast=" + std::to_string(int(c.bc));
      const auto a = random_bf16s(c.n, 41, -3.f, 3.f, true), b = random_bf16s(b_len(c), 42, -3.f, 3.f, true),
                 g = random_bf16s(c.n, 43, -2.f, 2.f, true);
      const auto af = widened(a), bf = widened(b), gf = widened(g);
      std::vector<float> want(c.n);
      std::vector<bf16> got(c.n);
      for (Binary op : {Binary::add, Binary::sub, Binary::mul, Binary::div, Binary::add_relu}) {
        kernels::cpu::binary(op, af.data(), bf.data(), want.data(), c.n, c.bc, c.inner);
        kernels::emu::binary_bf16(op, a.data(), b.data(), got.data(), c.n, c.bc, c.inner);
        CHECK(same_bf16("binary " + std::to_string(int(op)) + " " + tag, got, ref_narrow(want)));
      }
      for (Unary op : kUnary) {
        const std::string name = "unary " + std::to_string(int(op)) + " " + tag;
        kernels::cpu::unary(op, af.data(), want.data(), c.n, 0.3f, 1.5f);
        kernels::emu::unary_bf16(op, a.data(), got.data(), c.n, 0.3f, 1.5f);
        CHECK(same_bf16(name, got, ref_narrow(want)));
        // The backward reads the bf16 output the forward stored, as an op saves it; then once
        // more with only the input its gradient needs (the other pointer null).
        const std::vector<bf16> y = got;
        const std::vector<float> yf = widened(y);
        std::vector<float> gw(c.n);
        std::vector<bf16> gg(c.n);
        kernels::cpu::unary_backward(op, af.data(), yf.data(), gf.data(), gw.data(), c.n, 0.3f, 1.5f);
        kernels::emu::unary_backward_bf16(op, a.data(), y.data(), g.data(), gg.data(), c.n, 0.3f, 1.5f);
        CHECK(same_bf16(name + " backward", gg, ref_narrow(gw)));
        const bool reads_y = op == Unary::exp || op == Unary::sigmoid || op == Unary::sqrt;
        kernels::cpu::unary_backward(op, reads_y ? nullptr : af.data(), reads_y ? yf.data() : nullptr, gf.data(),
                                     gw.data(), c.n, 0.3f, 1.5f);
        kernels::emu::unary_backward_bf16(op, reads_y ? nullptr : a.data(), reads_y ? y.data() : nullptr, g.data(),
                                          gg.data(), c.n, 0.3f, 1.5f);
        CHECK(same_bf16(name + " backward, one input", gg, ref_narrow(gw)));
      }
      // fill_bytes2 writes the n elements and nothing past them.
      std::vector<uint16_t> filled(size_t(c.n) + 1, 0x1234);
      kernels::emu::fill_bytes2(filled.data(), c.n, kernels::to_bf16(-2.5f).bits);
      CHECK(std::count(filled.begin(), filled.end() - 1, uint16_t(0xc020)) == c.n);
      CHECK(filled.back() == 0x1234);
    }
  });
}

// The common shapes ([1, pixels, channels] and [images, pixels, 1]) are the kernel lab's
// reduce entries (bench/lab/k_reduce.cpp); below, the ones its scales miss, on signed values.
TEST_CASE("reduce kernels: emulated sum_mid and broadcast_mid edge cases match the CPU (one element, several outer slices)") {
  struct R { int64_t outer, mid, inner; };
  for_each_fiber_order([](const char* order) {
    // One element; several outer slices with inner > 1 (sum_cols_kernel's grid in y, and
    // broadcast_mid's outer index), mid below the 8 rows of threads.
    for (R r : {R{1, 1, 1}, R{5, 7, 33}}) {
      const std::string tag = std::string(order) + " [" + std::to_string(r.outer) + "," + std::to_string(r.mid) + "," +
                              std::to_string(r.inner) + "]";
      const int64_t n = r.outer * r.mid * r.inner, m = r.outer * r.inner;
      auto x = random_floats(n, 21);
      std::vector<float> want(m), got(m, -99.f);
      kernels::cpu::sum_mid(x.data(), want.data(), r.outer, r.mid, r.inner);
      kernels::emu::sum_mid_f32(x.data(), got.data(), r.outer, r.mid, r.inner, nullptr);  // one split
      CHECK(close_arrays("sum_mid " + tag, got.data(), want.data(), m, 1e-4, 1e-5));
      std::vector<float> bw(n), bg(n, -99.f);
      kernels::cpu::broadcast_mid(want.data(), bw.data(), r.outer, r.mid, r.inner);
      kernels::emu::broadcast_mid_f32(want.data(), bg.data(), r.outer, r.mid, r.inner);
      CHECK(close_arrays("broadcast_mid " + tag, bg.data(), bw.data(), n, 0, 0));
    }
  });
}

// A sum over few outputs spreads over blocks by splitting mid (sum_rows_kernel, sum_cols_kernel
// with S > 1, then sum_splits_kernel adds the partials in order): f32 and bf16 inputs against
// the CPU's double sums, the same bits in both fiber orders (no atomics), broadcast_mid in bf16
// a copy, and a missing scratch refused.
TEST_CASE("reduce kernels: split sums over few outputs, f32 and bf16, deterministic") {
  struct R { int64_t outer, mid, inner; };
  for (R r : {R{1, 70000, 19}, R{2, 300000, 1}, R{3, 5000, 40}}) {
    const std::string tag =
        "[" + std::to_string(r.outer) + "," + std::to_string(r.mid) + "," + std::to_string(r.inner) + "]";
    CAPTURE(tag);
    REQUIRE(kernels::sum_splits(r.outer, r.mid, r.inner) > 1);
    const int64_t n = r.outer * r.mid * r.inner, m = r.outer * r.inner;
    const auto x = random_floats(n, 51);
    const auto xb = random_bf16s(n, 52, -1.f, 1.f);
    const auto xbf = widened(xb);
    std::vector<double> want(m), wantb(m);
    for (int64_t o = 0; o < r.outer; ++o)
      for (int64_t k = 0; k < r.mid; ++k)
        for (int64_t i = 0; i < r.inner; ++i) {
          want[o * r.inner + i] += x[(o * r.mid + k) * r.inner + i];
          wantb[o * r.inner + i] += xbf[(o * r.mid + k) * r.inner + i];
        }
    std::vector<float> scratch(kernels::sum_mid_scratch(r.outer, r.mid, r.inner));
    std::vector<std::vector<float>> runs;
    for_each_fiber_order([&](const char* order) {
      std::vector<float> got(m, -99.f), gotb(m, -99.f);
      kernels::emu::sum_mid_f32(x.data(), got.data(), r.outer, r.mid, r.inner, scratch.data());
      kernels::emu::sum_mid_bf16(xb.data(), gotb.data(), r.outer, r.mid, r.inner, scratch.data());
      // Sums of up to 300000 values in [-1, 1] (|sum| up to ~350): the f32 running sums were off
      // by at most 2.1e-4 here; 5e-4 absolute, three orders below one dropped term (~0.5).
      CHECK(close_arrays(std::string("f32 ") + order, got.data(), want.data(), m, 5e-4, 0));
      CHECK(close_arrays(std::string("bf16 ") + order, gotb.data(), wantb.data(), m, 5e-4, 0));
      got.insert(got.end(), gotb.begin(), gotb.end());
      runs.push_back(got);
    });
    REQUIRE(runs.size() == 2);
    CHECK(runs[0] == runs[1]);  // the same bits whatever the order threads ran in
    std::vector<float> out(m);
    CHECK_THROWS_WITH_AS(kernels::emu::sum_mid_f32(x.data(), out.data(), r.outer, r.mid, r.inner, nullptr),
                         doctest::Contains("splits need sum_mid_scratch"), std::invalid_argument);
  }
  const auto g = random_bf16s(19, 53, -2.f, 2.f);
  std::vector<bf16> b(5 * 19);
  kernels::emu::broadcast_mid_bf16(g.data(), b.data(), 1, 5, 19);
  for (int64_t k = 0; k < 5 * 19; ++k) CHECK(b[size_t(k)].bits == g[size_t(k % 19)].bits);
}

GPU_TEST_CASE("gpu: elementwise ops and sums match the CPU") {
  const Shape s{2, 33, 65, 19};
  Tensor a = random_tensor(s, 31, DType::f32, 0.1, 2), b = random_tensor({19}, 32, DType::f32, 0.5, 2);
  Tensor ga = a.cuda(), gb = b.cuda();
  CHECK(close_tensors("add", add(ga, gb), add(a, b), 1e-6, 1e-6));
  CHECK(close_tensors("div", div(ga, gb), div(a, b), 1e-6, 1e-6));
  CHECK(close_tensors("exp", exp(ga), exp(a), 1e-6, 1e-5));
  CHECK(close_tensors("sigmoid", sigmoid(ga), sigmoid(a), 1e-6, 1e-5));
  CHECK(close_tensors("sum", sum(ga), sum(a), 1e-2, 1e-5));
  Tensor x = a.clone().set_requires_grad(), gx = ga.clone().set_requires_grad();
  sum(mul(exp(x), b)).backward();
  sum(mul(exp(gx), gb)).backward();
  CHECK(close_tensors("grad", gx.grad(), x.grad(), 1e-5, 1e-5));
  // Per-channel sums over every pixel (a conv's bias gradient), split over blocks; bf16 read
  // as it is, summed in f32, rounded once: within one bf16 rounding (2^-8 relative) of the CPU's.
  Tensor big = random_tensor({16, 65, 129, 19}, 33, DType::f32, -1, 1);
  CHECK(close_tensors("per-channel sum", sum(big.cuda(), {0, 1, 2}), sum(big, {0, 1, 2}), 2e-3, 1e-5));
  Tensor big16 = big.cast(DType::bf16);
  CHECK(close_tensors("per-channel sum, bf16", sum(big16.cuda(), {0, 1, 2}), sum(big16, {0, 1, 2}), 2e-3, 8e-3));
  CHECK(close_tensors("sum, bf16", sum(big16.cuda()), sum(big16), 2e-2, 8e-3));
}
