// Batch normalization (NHWC): values computed by hand in the three modes, the running-stat
// update, errors, gradient checks in double, the fused ReLU against BN then relu, emulated
// CUDA kernels against the CPU kernels, and the GPU against the CPU.
//
// CUDA kernels run here in emulation, through their kernels::emu entry points, against
// the CPU kernels:
//   stats_partial_kernel, stats_final_kernel, running_stats_kernel, apply_kernel,
//   apply4_kernel (apply_kernel 16 bytes wide: C a multiple of 4, aligned buffers; the
//   shapes with 64 and 100 channels), grad_partial_kernel, grad_final_kernel, dx_kernel
// (apply_kernel with the fused ReLU, and with the ReLU mask for frozen statistics;
// grad_partial_kernel and dx_kernel with the mask: also the lab's bn_apply_relu,
// bn_backward_relu and bn_frozen_bwd_relu entries). Their bf16 instantiations
// (stats_partial_kernel, apply_kernel, apply4_kernel 8 bf16 wide, grad_partial_kernel,
// dx_kernel) through the _bf16 entry points, against the CPU f32 kernels on the widened input
// (also the lab's *_bf16 entries, bench/lab/k_norm_bf16.cpp, which the race detector runs).
#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/cpu/norm.h"
#include "kernels/cuda/norm.h"
#include "kernels/norm_math.h"
#include "nn/layers.h"
#include "tests/bf16_helpers.h"
#include "tests/emu_helpers.h"
#include "tests/helpers.h"

using namespace c3;
using namespace c3test;

namespace {

// x [1, 2, 2, 2]: channel 0 = {1, 2, 3, 6}: mean 3, squared deviations 4+1+0+9 = 14, biased
// var 3.5, unbiased 14/3. Channel 1 = {0, -2, 4, 2}: mean 1, deviations -1,-3,3,1, squares
// sum 20, biased var 5, unbiased 20/3.
const std::vector<double> kX{1, 0, 2, -2, 3, 4, 6, 2};
const double kMean[2] = {3, 1}, kVar[2] = {3.5, 5}, kUnbiased[2] = {14.0 / 3, 20.0 / 3};
const double kW[2] = {2, -1}, kB[2] = {0.5, 1}, kRm[2] = {0.5, -1}, kRv[2] = {2, 3};
constexpr double kEps = 1e-5;

struct Params {
  Tensor w, b, rm, rv;
};
Params make_params(DType dt) {
  auto t = [dt](const double* v) {
    Tensor d = Tensor::from_vector(std::vector<double>(v, v + 2), {2});
    return dt == DType::f64 ? d : d.cast(dt);
  };
  return {t(kW), t(kB), t(kRm), t(kRv)};
}
Tensor hand_x(DType dt) {
  Tensor d = Tensor::from_vector(kX, {1, 2, 2, 2});
  return dt == DType::f64 ? d : d.cast(dt);
}
// y = (x - mean) / sqrt(var + eps) * w + b, per channel (c = i % 2)
std::vector<double> hand_y(const double* mean, const double* var) {
  std::vector<double> y(kX.size());
  for (size_t i = 0; i < kX.size(); ++i) {
    const size_t c = i % 2;
    y[i] = (kX[i] - mean[c]) / std::sqrt(var[c] + kEps) * kW[c] + kB[c];
  }
  return y;
}

}  // namespace

TEST_CASE("norm: train mode by hand (batch mean and biased var), running stats update") {
  for (DType dt : {DType::f64, DType::f32}) {
    const double tol = dt == DType::f64 ? 1e-12 : 2e-6;
    Params p = make_params(dt);
    Tensor y = batch_norm(hand_x(dt), p.w, p.b, p.rm, p.rv, BatchNormMode::train, 0.1, kEps);
    const std::vector<double> want = hand_y(kMean, kVar);
    CHECK(close_arrays("train y", as_doubles(y).data(), want.data(), 8, tol, tol));
    // running = 0.9 * running + 0.1 * batch (unbiased var): 0.9*0.5 + 0.1*3 = 0.75,
    // 0.9*(-1) + 0.1*1 = -0.8; 0.9*2 + 0.1*14/3, 0.9*3 + 0.1*20/3.
    const double rm[2] = {0.75, -0.8}, rv[2] = {1.8 + 0.1 * kUnbiased[0], 2.7 + 0.1 * kUnbiased[1]};
    CHECK(close_arrays("running_mean", as_doubles(p.rm).data(), rm, 2, tol, tol));
    CHECK(close_arrays("running_var", as_doubles(p.rv).data(), rv, 2, tol, tol));
  }
}

TEST_CASE("norm: eval and frozen modes use the running stats and leave them unchanged") {
  for (BatchNormMode mode : {BatchNormMode::eval, BatchNormMode::frozen}) {
    CAPTURE(batch_norm_mode_name(mode));
    Params p = make_params(DType::f64);
    Tensor y = batch_norm(hand_x(DType::f64), p.w, p.b, p.rm, p.rv, mode, 0.1, kEps);
    const std::vector<double> want = hand_y(kRm, kRv);
    CHECK(close_arrays("y", as_doubles(y).data(), want.data(), 8, 1e-12, 1e-12));
    CHECK(p.rm.to_vector<double>() == std::vector<double>{kRm[0], kRm[1]});
    CHECK(p.rv.to_vector<double>() == std::vector<double>{kRv[0], kRv[1]});
  }
  // Under no-grad, train mode still updates the running stats (as PyTorch's training flag).
  Params p = make_params(DType::f64);
  NoGradGuard ng;
  batch_norm(hand_x(DType::f64), p.w, p.b, p.rm, p.rv, BatchNormMode::train, 0.5, kEps);
  CHECK(p.rm.to_vector<double>() == std::vector<double>{0.5 * 0.5 + 0.5 * 3, 0.5 * -1 + 0.5 * 1});
}

TEST_CASE("norm: gradients by hand; frozen mode gives no weight or bias gradient") {
  // loss = sum(y). Train: sum(xhat) is 0 whatever x, so dx = 0 and dweight = sum(xhat) = 0;
  // dbias = M = 4 in every mode.
  Params p = make_params(DType::f64);
  Tensor x = hand_x(DType::f64).set_requires_grad();
  p.w.set_requires_grad();
  p.b.set_requires_grad();
  sum(batch_norm(x, p.w, p.b, p.rm, p.rv, BatchNormMode::train)).backward();
  CHECK(close_arrays("train dx", x.grad().data<double>(), std::vector<double>(8, 0.0).data(), 8, 1e-12, 0));
  CHECK(close_arrays("train dw", p.w.grad().data<double>(), std::vector<double>(2, 0.0).data(), 2, 1e-12, 0));
  CHECK(p.b.grad().to_vector<double>() == std::vector<double>{4, 4});
  // Eval: dx = w / sqrt(rv + eps); dweight = sum (x - rm) / sqrt(rv + eps) = (12 - 4*0.5) and
  // (4 + 4*1) over sqrt(rv + eps).
  for (Tensor* t : {&x, &p.w, &p.b}) t->zero_grad();
  p = make_params(DType::f64);
  p.w.set_requires_grad();
  p.b.set_requires_grad();
  sum(batch_norm(x, p.w, p.b, p.rm, p.rv, BatchNormMode::eval, 0.1, kEps)).backward();
  const double s0 = 1 / std::sqrt(2 + kEps), s1 = 1 / std::sqrt(3 + kEps);
  std::vector<double> dx_want(8);
  for (int i = 0; i < 8; ++i) dx_want[i] = i % 2 ? -s1 : 2 * s0;
  CHECK(close_arrays("eval dx", x.grad().data<double>(), dx_want.data(), 8, 1e-12, 1e-12));
  const double dw_want[2] = {10 * s0, 8 * s1};
  CHECK(close_arrays("eval dw", p.w.grad().data<double>(), dw_want, 2, 1e-12, 1e-12));
  CHECK(p.b.grad().to_vector<double>() == std::vector<double>{4, 4});
  // Frozen: same dx, but weight and bias are not part of the graph.
  x.zero_grad();
  p = make_params(DType::f64);
  p.w.set_requires_grad();
  p.b.set_requires_grad();
  Tensor y = batch_norm(x, p.w, p.b, p.rm, p.rv, BatchNormMode::frozen, 0.1, kEps);
  sum(y).backward();
  CHECK(close_arrays("frozen dx", x.grad().data<double>(), dx_want.data(), 8, 1e-12, 1e-12));
  CHECK_FALSE(p.w.grad().defined());
  CHECK_FALSE(p.b.grad().defined());
  // With x not requiring grad either, frozen BN records nothing at all.
  CHECK_FALSE(batch_norm(hand_x(DType::f64), p.w, p.b, p.rm, p.rv, BatchNormMode::frozen).requires_grad());
}

TEST_CASE("norm: bad input names the op and the shapes") {
  Params p = make_params(DType::f32);
  Tensor x = Tensor::zeros({2, 3, 3, 2});
  CHECK_THROWS_WITH_AS(batch_norm(Tensor::zeros({2, 3, 3, 5}), p.w, p.b, p.rm, p.rv, BatchNormMode::eval),
                       doctest::Contains("batch_norm: weight f32[2] cpu does not match x f32[2,3,3,5] cpu"), Error);
  CHECK_THROWS_WITH_AS(batch_norm(x, p.w, p.b, p.rm, Tensor::zeros({2}, DType::f64), BatchNormMode::eval),
                       doctest::Contains("batch_norm: running_var f64[2] cpu does not match"), Error);
  CHECK_THROWS_WITH_AS(batch_norm(Tensor::zeros({1, 1, 1, 2}), p.w, p.b, p.rm, p.rv, BatchNormMode::train),
                       doctest::Contains("train mode needs more than one value per channel"), Error);
  CHECK_NOTHROW(batch_norm(Tensor::zeros({1, 1, 1, 2}), p.w, p.b, p.rm, p.rv, BatchNormMode::eval));
  CHECK_THROWS_WITH_AS(batch_norm(Tensor::zeros({2}), p.w, p.b, p.rm, p.rv, BatchNormMode::eval),
                       doctest::Contains("channels last"), Error);
  Tensor rm_grad = p.rm.clone().set_requires_grad();
  CHECK_THROWS_WITH_AS(batch_norm(x, p.w, p.b, rm_grad, p.rv, BatchNormMode::train),
                       doctest::Contains("must not require grad"), Error);
  CHECK_THROWS_WITH_AS(batch_norm(x, p.w, p.b, p.rm, p.rv, BatchNormMode::eval, 0.1, 0.0),
                       doctest::Contains("eps must be positive"), Error);
  CHECK_THROWS_WITH_AS(batch_norm(x, p.w, Tensor(), p.rm, p.rv, BatchNormMode::eval),
                       doctest::Contains("batch_norm: bias is undefined"), Error);
}

TEST_CASE("norm: gradient checks in double, train, eval and frozen") {
  const Shape s{2, 3, 2, 4};
  Tensor x = random_tensor(s, 41, DType::f64, -1, 3);
  Tensor w = random_tensor({4}, 42, DType::f64, 0.5, 1.5), b = random_tensor({4}, 43, DType::f64);
  Tensor rm = random_tensor({4}, 44, DType::f64), rv = random_tensor({4}, 45, DType::f64, 0.5, 2);
  Tensor gw = random_tensor(s, 46, DType::f64);  // weights make the loss sensitive to every element
  for (BatchNormMode mode : {BatchNormMode::train, BatchNormMode::eval}) {
    CAPTURE(batch_norm_mode_name(mode));
    CHECK(gradcheck(std::string("batch_norm ") + batch_norm_mode_name(mode),
                    [&](auto& in) { return sum(mul(batch_norm(in[0], in[1], in[2], rm, rv, mode), gw)); },
                    {x, w, b}));
  }
  // Frozen: only x is an input of the graph (weight and bias are constants).
  CHECK(gradcheck("batch_norm frozen",
                  [&](auto& in) { return sum(mul(batch_norm(in[0], w, b, rm, rv, BatchNormMode::frozen), gw)); },
                  {x}));
  // Rank 2 ([rows, C]) takes the same path.
  Tensor x2 = random_tensor({5, 3}, 47, DType::f64);
  Tensor w3 = random_tensor({3}, 48, DType::f64, 0.5, 1.5), b3 = random_tensor({3}, 49, DType::f64);
  Tensor rm3 = Tensor::zeros({3}, DType::f64), rv3 = Tensor::full({3}, 1.0, DType::f64);
  Tensor g2 = random_tensor({5, 3}, 50, DType::f64);
  CHECK(gradcheck("batch_norm rank 2",
                  [&](auto& in) { return sum(mul(batch_norm(in[0], in[1], in[2], rm3, rv3, BatchNormMode::train), g2)); },
                  {x2, w3, b3}));
}

namespace {

// x, weight, bias, running stats of one fused-vs-unfused comparison; nan_at >= 0 puts a NaN there.
struct BnInputs {
  Tensor x, w, b, rm, rv;
};
BnInputs bn_inputs(const Shape& s, DType dt, uint32_t seed, int64_t nan_at) {
  const int64_t C = s.back();
  auto v = random_floats(shape_numel(s), seed, -1.f, 3.f);
  if (nan_at >= 0) v[nan_at] = std::numeric_limits<float>::quiet_NaN();
  Tensor x = Tensor::from_vector(v, s);
  return {dt == DType::f32 ? x : x.cast(dt), random_tensor({C}, seed + 1, dt, 0.5, 1.5),
          random_tensor({C}, seed + 2, dt, -0.5, 0.5), random_tensor({C}, seed + 3, dt),
          random_tensor({C}, seed + 4, dt, 0.5, 2)};
}
BnInputs clone_inputs(const BnInputs& in) {
  return {in.x.clone(), in.w.clone(), in.b.clone(), in.rm.clone(), in.rv.clone()};
}

}  // namespace

// The fused ReLU's arithmetic (kernels/norm_math.h, written to compile without a branch) is the
// relu op's (Unary::relu): the same bits for every kind of value, its backward too.
TEST_CASE("norm: the fused ReLU is the relu op's function, bit for bit (NaN, signed zeros, infinities)") {
  auto check = [](auto zero) {
    using T = decltype(zero);
    using L = std::numeric_limits<T>;
    for (T v : {L::quiet_NaN(), -L::quiet_NaN(), T(0), -T(0), L::infinity(), -L::infinity(), L::denorm_min(),
                -L::denorm_min(), L::min(), T(1), T(-1), L::max(), L::lowest()}) {
      CAPTURE(v);
      const T fused = kernels::bn_relu(v), op = kernels::unary_apply(kernels::Unary::relu, v, T(0), T(0));
      CHECK(std::memcmp(&fused, &op, sizeof(T)) == 0);
      // The fused backward reads the output, the relu op's its input.
      const T g = kernels::bn_relu_grad(op, T(3));
      const T g_op = kernels::unary_grad(kernels::Unary::relu, v, op, T(3), T(0), T(0));
      CHECK(std::memcmp(&g, &g_op, sizeof(T)) == 0);
    }
  };
  check(0.f);
  check(0.0);
}

// relu(batch_norm(x)) through two ops against batch_norm(x, ..., relu = true) in one: forward
// values, running statistics, gradients of x, weight and bias. Both compute the same arithmetic
// in the same order, so they agree bit for bit on this build; the tolerances allow for a
// compiler contracting one form and not the other: forward 1 ulp-ish (rtol 2.4e-7 f32, 4.5e-16
// f64), gradients rtol 1e-6 (f32) / 1e-12 (f64) with atol of the same size (gradients near 0).
// The NaN case: relu(NaN) = NaN in the forward (as PyTorch's relu), no gradient through it.
TEST_CASE("norm: batch_norm with fused ReLU equals relu(batch_norm) in every mode, f32 and f64, NaN input") {
  const Shape s{2, 5, 3, 6};
  const Tensor gw = random_tensor(s, 70, DType::f64);  // weights make the loss sensitive to every element
  for (BatchNormMode mode : {BatchNormMode::train, BatchNormMode::eval, BatchNormMode::frozen})
    for (DType dt : {DType::f32, DType::f64})
      for (int64_t nan_at : {int64_t(-1), int64_t(13)}) {  // 13: channel 1 of row 2
        const std::string mode_name = batch_norm_mode_name(mode), dtype = dtype_name(dt);
        CAPTURE(mode_name);
        CAPTURE(dtype);
        CAPTURE(nan_at);
        const double fwd_tol = dt == DType::f32 ? 2.4e-7 : 4.5e-16, grad_tol = dt == DType::f32 ? 1e-6 : 1e-12;
        const BnInputs in = bn_inputs(s, dt, 71, nan_at);
        BnInputs f = clone_inputs(in), u = clone_inputs(in);  // fused, unfused
        for (BnInputs* p : {&f, &u})
          for (Tensor* t : {&p->x, &p->w, &p->b}) t->set_requires_grad();
        Tensor yf = batch_norm(f.x, f.w, f.b, f.rm, f.rv, mode, 0.1, kEps, true);
        Tensor yu = relu(batch_norm(u.x, u.w, u.b, u.rm, u.rv, mode, 0.1, kEps));
        CHECK(close_tensors("y", yf, yu, 0, fwd_tol));
        CHECK(close_tensors("running_mean", f.rm, u.rm, 0, fwd_tol));
        CHECK(close_tensors("running_var", f.rv, u.rv, 0, fwd_tol));
        // The ReLU did something: zeros and positive values; NaN stays NaN.
        const std::vector<double> y = as_doubles(yf);
        int64_t zeros = 0, positive = 0;
        for (double v : y) zeros += v == 0, positive += v > 0;
        CHECK(zeros > 10);
        CHECK(positive > 10);
        if (nan_at >= 0) CHECK(std::isnan(y[size_t(nan_at)]));
        const Tensor g = gw.cast(dt);
        sum(mul(yf, g)).backward();
        sum(mul(yu, g)).backward();
        CHECK(close_tensors("dx", f.x.grad(), u.x.grad(), grad_tol, grad_tol));
        if (mode == BatchNormMode::frozen) {
          CHECK_FALSE(f.w.grad().defined());
          CHECK_FALSE(f.b.grad().defined());
        } else {
          CHECK(close_tensors("dweight", f.w.grad(), u.w.grad(), grad_tol, grad_tol));
          CHECK(close_tensors("dbias", f.b.grad(), u.b.grad(), grad_tol, grad_tol));
        }
        // Where the output is 0 no gradient reaches x, except through the batch statistics in
        // train mode; in eval and frozen modes dx is exactly 0 there. (At a NaN input eval's dx
        // is NaN, fused or not: its dx pass adds 0 * (x - mean).)
        if (mode != BatchNormMode::train) {
          const std::vector<double> dx = as_doubles(f.x.grad());
          bool masked = true;
          for (size_t i = 0; i < y.size(); ++i)
            if (int64_t(i) != nan_at) masked &= y[i] > 0 ? dx[i] != 0 : dx[i] == 0;
          CHECK(masked);
        }
      }
}

TEST_CASE("norm: gradient checks in double of the fused BatchNorm + ReLU, away from the kink") {
  const Shape s{2, 3, 2, 4};
  // The first seed whose BN outputs are all at least 0.01 from 0 in every mode: a central
  // difference (step 1e-6) never crosses the ReLU's kink.
  auto margin = [&](const BnInputs& in) {
    NoGradGuard ng;
    double m = INFINITY;
    for (BatchNormMode mode : {BatchNormMode::train, BatchNormMode::eval}) {
      Tensor rm = in.rm.clone(), rv = in.rv.clone();
      for (double v : as_doubles(batch_norm(in.x, in.w, in.b, rm, rv, mode))) m = std::min(m, std::abs(v));
    }
    return m;
  };
  uint32_t seed = 80;
  while (seed < 200 && margin(bn_inputs(s, DType::f64, seed, -1)) < 0.01) seed += 5;
  CAPTURE(seed);
  BnInputs in = bn_inputs(s, DType::f64, seed, -1);
  REQUIRE(margin(in) >= 0.01);
  Tensor gw = random_tensor(s, 46, DType::f64);
  for (BatchNormMode mode : {BatchNormMode::train, BatchNormMode::eval}) {
    const std::string mode_name = batch_norm_mode_name(mode);
    CAPTURE(mode_name);
    Tensor rm = in.rm.clone(), rv = in.rv.clone();  // train mode updates them at every call
    CHECK(gradcheck(
        std::string("batch_norm relu ") + batch_norm_mode_name(mode),
        [&](auto& t) { return sum(mul(batch_norm(t[0], t[1], t[2], rm, rv, mode, 0.1, kEps, true), gw)); },
        {in.x, in.w, in.b}));
  }
  // Frozen: only x is an input of the graph.
  CHECK(gradcheck(
      "batch_norm relu frozen",
      [&](auto& t) {
        return sum(mul(batch_norm(t[0], in.w, in.b, in.rm, in.rv, BatchNormMode::frozen, 0.1, kEps, true), gw));
      },
      {in.x}));
}

TEST_CASE("norm: BatchNorm2d::forward(x, relu) is relu(forward(x)) in train, eval and frozen modes") {
  const Tensor x = random_tensor({2, 3, 4, 5}, 90, DType::f32, -1, 3);
  for (BatchNormMode mode : {BatchNormMode::train, BatchNormMode::eval, BatchNormMode::frozen}) {
    const std::string mode_name = batch_norm_mode_name(mode);
    CAPTURE(mode_name);
    nn::BatchNorm2d fused(5), plain(5);
    for (nn::BatchNorm2d* bn : {&fused, &plain}) {
      fill_(bn->bias.detach(), 0.1);  // not symmetric about 0
      bn->train(mode == BatchNormMode::train);
      bn->set_frozen(mode == BatchNormMode::frozen);
    }
    Tensor yf = fused.forward(x, true), yu = relu(plain.forward(x));
    CHECK(close_tensors("y", yf, yu, 0, 0));
    CHECK(close_tensors("running_var", fused.running_var, plain.running_var, 0, 0));
    CHECK(fused.num_batches_tracked.item() == plain.num_batches_tracked.item());
  }
}

namespace {
struct BnShape {
  int64_t n, h, w, c;
};
// The shapes the kernel lab's scales miss (its entries check bn_batch_stats, bn_apply and
// bn_backward at 2x9x17x131 and 2x1x3x257): one element per channel (no running update),
// odd sizes not multiples of 32 channels or 8 rows of threads, a long thin one (many row
// ranges, C = 3). Also what no lab entry runs: bn_running_stats, frozen statistics
// (batch_stats false) and the dx-only backward, each also through the fused ReLU's mask.
const BnShape kBnShapes[] = {{1, 1, 1, 3}, {2, 9, 11, 64}, {3, 17, 5, 19}, {1, 3, 5, 100}, {4, 33, 65, 3}};
}  // namespace

TEST_CASE("norm kernels: emulated batch norm edge cases match the CPU (one row, odd sizes, frozen statistics, dx only)") {
  for_each_fiber_order([](const char* order) {
    for (const BnShape& s : kBnShapes) {
      const int64_t M = s.n * s.h * s.w, C = s.c;
      const std::string tag = std::string(order) + " [" + std::to_string(s.n) + "," + std::to_string(s.h) + "," +
                              std::to_string(s.w) + "," + std::to_string(s.c) + "]";
      CAPTURE(tag);
      // Offset values (mean ~ 3) exercise the centred statistics.
      auto x = random_floats(M * C, 51, 2.f, 4.f), dy = random_floats(M * C, 52);
      auto w = random_floats(C, 53, 0.5f, 1.5f), b = random_floats(C, 54);
      auto rm_cpu = random_floats(C, 55), rv_cpu = random_floats(C, 56, 0.5f, 2.f);
      auto rm_emu = rm_cpu, rv_emu = rv_cpu;
      std::vector<float> ws(kernels::emu::bn_workspace_floats(M, C), std::numeric_limits<float>::quiet_NaN());
      std::vector<float> mean(C), invstd(C), scale(C), mean_e(C), invstd_e(C), scale_e(C);
      const bool update = M >= 2;  // the running update needs an unbiased variance
      kernels::cpu::bn_batch_stats(x.data(), M, C, w.data(), 1e-5f, 0.1f, update ? rm_cpu.data() : nullptr,
                                   rv_cpu.data(), mean.data(), invstd.data(), scale.data());
      kernels::emu::bn_batch_stats_f32(x.data(), M, C, w.data(), 1e-5f, 0.1f, update ? rm_emu.data() : nullptr,
                                       rv_emu.data(), mean_e.data(), invstd_e.data(), scale_e.data(), ws.data());
      CHECK(close_arrays("mean", mean_e.data(), mean.data(), C, 1e-6, 1e-6));
      CHECK(close_arrays("invstd", invstd_e.data(), invstd.data(), C, 1e-6, 1e-4));
      CHECK(close_arrays("scale", scale_e.data(), scale.data(), C, 1e-6, 1e-4));
      CHECK(close_arrays("running_mean", rm_emu.data(), rm_cpu.data(), C, 1e-6, 1e-6));
      CHECK(close_arrays("running_var", rv_emu.data(), rv_cpu.data(), C, 1e-6, 1e-5));
      std::vector<float> y(M * C), y_e(M * C, -99.f);
      kernels::cpu::bn_apply(x.data(), M, C, mean.data(), scale.data(), b.data(), y.data());
      kernels::emu::bn_apply_f32(x.data(), M, C, mean.data(), scale.data(), b.data(), y_e.data());
      CHECK(close_arrays("y", y_e.data(), y.data(), M * C, 1e-6, 1e-6));
      // Fused ReLU; its output is the mask of the masked backwards below.
      std::vector<float> yr(M * C), yr_e(M * C, -99.f);
      kernels::cpu::bn_apply(x.data(), M, C, mean.data(), scale.data(), b.data(), yr.data(), true);
      kernels::emu::bn_apply_f32(x.data(), M, C, mean.data(), scale.data(), b.data(), yr_e.data(), true);
      CHECK(close_arrays("relu y", yr_e.data(), yr.data(), M * C, 1e-6, 1e-6));
      kernels::emu::bn_running_stats_f32(rm_cpu.data(), rv_cpu.data(), w.data(), C, 1e-5f, mean_e.data(),
                                         invstd_e.data(), scale_e.data());
      kernels::cpu::bn_running_stats(rm_cpu.data(), rv_cpu.data(), w.data(), C, 1e-5f, mean.data(), invstd.data(),
                                     scale.data());
      CHECK(close_arrays("running invstd", invstd_e.data(), invstd.data(), C, 0, 1e-6));
      for (bool batch_stats : {true, false}) {
        CAPTURE(batch_stats);
        std::vector<float> dx(M * C), dx_e(M * C, -99.f), dw(C), dw_e(C), db(C), db_e(C);
        kernels::cpu::bn_backward(dy.data(), x.data(), M, C, mean.data(), invstd.data(), scale.data(), batch_stats,
                                  dx.data(), dw.data(), db.data());
        kernels::emu::bn_backward_f32(dy.data(), x.data(), M, C, mean.data(), invstd.data(), scale.data(),
                                      batch_stats, dx_e.data(), dw_e.data(), db_e.data(), ws.data());
        // Sums of ~M terms of size 1 in float: absolute error ~ 1e-7 * M.
        const double sum_tol = 1e-6 * std::max<int64_t>(M, 100);
        CHECK(close_arrays("dbias", db_e.data(), db.data(), C, sum_tol, 1e-5));
        CHECK(close_arrays("dweight", dw_e.data(), dw.data(), C, sum_tol, 1e-5));
        CHECK(close_arrays("dx", dx_e.data(), dx.data(), M * C, 1e-5, 1e-4));
        // dx only, with fixed statistics: the shortcut dx = scale * dy.
        std::fill(dx_e.begin(), dx_e.end(), -99.f);
        kernels::cpu::bn_backward<float>(dy.data(), x.data(), M, C, mean.data(), invstd.data(), scale.data(),
                                         batch_stats, dx.data(), nullptr, nullptr);
        kernels::emu::bn_backward_f32(dy.data(), x.data(), M, C, mean.data(), invstd.data(), scale.data(),
                                      batch_stats, dx_e.data(), nullptr, nullptr, ws.data());
        CHECK(close_arrays("dx only", dx_e.data(), dx.data(), M * C, 1e-5, 1e-4));
        // The same through the fused ReLU's mask (yr): sums and dx, then dx only.
        std::fill(dx_e.begin(), dx_e.end(), -99.f);
        kernels::cpu::bn_backward(dy.data(), x.data(), M, C, mean.data(), invstd.data(), scale.data(), batch_stats,
                                  dx.data(), dw.data(), db.data(), yr.data());
        kernels::emu::bn_backward_f32(dy.data(), x.data(), M, C, mean.data(), invstd.data(), scale.data(),
                                      batch_stats, dx_e.data(), dw_e.data(), db_e.data(), ws.data(), yr.data());
        CHECK(close_arrays("masked dbias", db_e.data(), db.data(), C, sum_tol, 1e-5));
        CHECK(close_arrays("masked dweight", dw_e.data(), dw.data(), C, sum_tol, 1e-5));
        CHECK(close_arrays("masked dx", dx_e.data(), dx.data(), M * C, 1e-5, 1e-4));
        std::fill(dx_e.begin(), dx_e.end(), -99.f);
        kernels::cpu::bn_backward<float>(dy.data(), x.data(), M, C, mean.data(), invstd.data(), scale.data(),
                                         batch_stats, dx.data(), nullptr, nullptr, yr.data());
        kernels::emu::bn_backward_f32(dy.data(), x.data(), M, C, mean.data(), invstd.data(), scale.data(),
                                      batch_stats, dx_e.data(), nullptr, nullptr, ws.data(), yr.data());
        CHECK(close_arrays("masked dx only", dx_e.data(), dx.data(), M * C, 1e-5, 1e-4));
      }
    }
  });
}

namespace {
// bf16 also runs C = 24, a multiple of 8 but not of 32: apply4_kernel<bf16> takes 8 channels per
// 16 bytes, here 3 groups per row (C = 64 takes it too; C = 100, a multiple of 4 only, takes
// apply_kernel in bf16 where f32 takes apply4_kernel).
const BnShape kBnBf16Shapes[] = {{1, 1, 1, 3}, {2, 9, 11, 64}, {3, 17, 5, 19}, {1, 3, 5, 100}, {4, 33, 65, 3},
                                 {2, 3, 5, 24}};
}  // namespace

// The bf16 kernels against the CPU f32 kernels on the widened activations, each output rounded
// once (ref_narrow), with the f32 statistics and parameters shared by both. Bit-exact where the
// arithmetic is the same float operations in the same order (apply, with and without the fused
// ReLU; the eval and frozen dx, A = scale with B = D = 0; this build has no FMA to contract
// either side). Where the CPU sums in double in another order (statistics, dweight, dbias: float
// results, the f32 test's tolerances; the train dx through the batch sums: within 1 bf16 ulp of
// the rounded reference, since the two f32 values differ by a few f32 ulps and rounding them can
// pick neighbouring bf16 values, or, near zero where a few f32 ulps of the O(1) terms summed
// span more bf16 ulps, within 1e-6 of the unrounded reference; here 3 values of all the
// shapes differ at all). Those are also checked bit for bit against the emulated f32 kernels on
// the widened input: the same source and order, so the bf16 kernel is the f32 kernel rounded once.
TEST_CASE("norm kernels: emulated bf16 batch norm is the CPU f32 kernel on the widened input rounded once (train, eval, frozen; fused ReLU; apply4 alignment)") {
  for_each_fiber_order([](const char* order) {
    for (const BnShape& s : kBnBf16Shapes) {
      const int64_t M = s.n * s.h * s.w, C = s.c, n = M * C;
      const std::string tag = std::string(order) + " [" + std::to_string(s.n) + "," + std::to_string(s.h) + "," +
                              std::to_string(s.w) + "," + std::to_string(s.c) + "]";
      CAPTURE(tag);
      const std::vector<bf16> xb = random_bf16s(n, 51, 2.f, 4.f), dyb = random_bf16s(n, 52);
      const std::vector<float> x = widened(xb), dy = widened(dyb);
      const auto w = random_floats(C, 53, 0.5f, 1.5f), b = random_floats(C, 54);
      const auto rm = random_floats(C, 55), rv = random_floats(C, 56, 0.5f, 2.f);
      std::vector<float> ws(kernels::emu::bn_workspace_floats(M, C), std::numeric_limits<float>::quiet_NaN());

      // Train statistics: Welford in float (emulated) against two passes in double (CPU).
      const bool update = M >= 2;
      std::vector<float> rm_c = rm, rv_c = rv, rm_e = rm, rv_e = rv, rm_f = rm, rv_f = rv;
      std::vector<float> tmean(C), tinvstd(C), tscale(C), mean_e(C), invstd_e(C), scale_e(C), mean_f(C),
          invstd_f(C), scale_f(C);
      kernels::cpu::bn_batch_stats(x.data(), M, C, w.data(), 1e-5f, 0.1f, update ? rm_c.data() : nullptr,
                                   rv_c.data(), tmean.data(), tinvstd.data(), tscale.data());
      kernels::emu::bn_batch_stats_bf16(xb.data(), M, C, w.data(), 1e-5f, 0.1f, update ? rm_e.data() : nullptr,
                                        rv_e.data(), mean_e.data(), invstd_e.data(), scale_e.data(), ws.data());
      kernels::emu::bn_batch_stats_f32(x.data(), M, C, w.data(), 1e-5f, 0.1f, update ? rm_f.data() : nullptr,
                                       rv_f.data(), mean_f.data(), invstd_f.data(), scale_f.data(), ws.data());
      CHECK(close_arrays("mean", mean_e.data(), tmean.data(), C, 1e-6, 1e-6));
      CHECK(close_arrays("invstd", invstd_e.data(), tinvstd.data(), C, 1e-6, 1e-4));
      CHECK(close_arrays("scale", scale_e.data(), tscale.data(), C, 1e-6, 1e-4));
      CHECK(close_arrays("running_mean", rm_e.data(), rm_c.data(), C, 1e-6, 1e-6));
      CHECK(close_arrays("running_var", rv_e.data(), rv_c.data(), C, 1e-6, 1e-5));
      CHECK(mean_e == mean_f);
      CHECK(invstd_e == invstd_f);
      CHECK(scale_e == scale_f);
      CHECK(rm_e == rm_f);
      CHECK(rv_e == rv_f);
      // Eval and frozen statistics come from the running stats (bn_running_stats_f32 serves both
      // dtypes: no activations).
      std::vector<float> rmean(C), rinvstd(C), rscale(C);
      kernels::cpu::bn_running_stats(rm.data(), rv.data(), w.data(), C, 1e-5f, rmean.data(), rinvstd.data(),
                                     rscale.data());

      for (BatchNormMode mode : {BatchNormMode::train, BatchNormMode::eval, BatchNormMode::frozen}) {
        const std::string mode_name = batch_norm_mode_name(mode);
        CAPTURE(mode_name);
        const bool train = mode == BatchNormMode::train;
        const std::vector<float>& mean = train ? tmean : rmean;
        const std::vector<float>& invstd = train ? tinvstd : rinvstd;
        const std::vector<float>& scale = train ? tscale : rscale;
        // Apply, plain and with the fused ReLU; x holds a NaN, which stays NaN (the same bits).
        std::vector<bf16> xnb = xb;
        xnb[size_t(n / 2)] = kernels::narrow<bf16>(std::numeric_limits<float>::quiet_NaN());
        const std::vector<float> xn = widened(xnb);
        std::vector<bf16> relu_yb;  // the fused forward's output: the mask of the backwards
        for (bool relu : {false, true}) {
          CAPTURE(relu);
          std::vector<float> y(n);
          kernels::cpu::bn_apply(xn.data(), M, C, mean.data(), scale.data(), b.data(), y.data(), relu);
          const std::vector<bf16> want = ref_narrow(y);
          std::vector<bf16> got(n, bf16{0x7f80});
          kernels::emu::bn_apply_bf16(xnb.data(), M, C, mean.data(), scale.data(), b.data(), got.data(), relu);
          CHECK(same_bf16("y", got, want));
          // The same from buffers that are not 16-byte aligned (apply_kernel instead of apply4_kernel):
          // x and y one element off, then only the mask.
          if (C % 8 == 0) {
            std::vector<bf16> xo(n + 1), yo(n + 1, bf16{0x7f80});
            std::copy(xnb.begin(), xnb.end(), xo.begin() + 1);
            kernels::emu::bn_apply_bf16(xo.data() + 1, M, C, mean.data(), scale.data(), b.data(), yo.data() + 1,
                                        relu);
            CHECK(same_bf16("y, unaligned x and y", yo.data() + 1, want.data(), n));
          }
          if (relu) relu_yb = want;
        }
        REQUIRE(relu_yb.size() == size_t(n));
        const std::vector<float> relu_y = widened(relu_yb);
        // The backward, with and without the fused ReLU's mask.
        for (bool masked : {false, true}) {
          CAPTURE(masked);
          const float* mask = masked ? relu_y.data() : nullptr;
          const bf16* maskb = masked ? relu_yb.data() : nullptr;
          std::vector<float> dx(n), dw(C), db(C), dx_f(n), dw_f(C), db_f(C), dw_e(C, -99.f), db_e(C, -99.f);
          std::vector<bf16> dx_e(n, bf16{0x7f80});
          if (mode == BatchNormMode::frozen) {  // dx only, fixed statistics: dx = scale * dy
            kernels::cpu::bn_backward<float>(dy.data(), x.data(), M, C, mean.data(), invstd.data(), scale.data(),
                                             false, dx.data(), nullptr, nullptr, mask);
            kernels::emu::bn_backward_bf16(dyb.data(), xb.data(), M, C, mean.data(), invstd.data(), scale.data(),
                                           false, dx_e.data(), nullptr, nullptr, ws.data(), maskb);
            CHECK(same_bf16("frozen dx", dx_e, ref_narrow(dx)));
            if (C % 8 == 0 && masked) {  // the mask alone not 16-byte aligned
              std::vector<bf16> mo(n + 1);
              std::copy(relu_yb.begin(), relu_yb.end(), mo.begin() + 1);
              std::fill(dx_e.begin(), dx_e.end(), bf16{0x7f80});
              kernels::emu::bn_backward_bf16(dyb.data(), xb.data(), M, C, mean.data(), invstd.data(), scale.data(),
                                             false, dx_e.data(), nullptr, nullptr, ws.data(), mo.data() + 1);
              CHECK(same_bf16("frozen dx, unaligned mask", dx_e, ref_narrow(dx)));
            }
            continue;
          }
          kernels::cpu::bn_backward(dy.data(), x.data(), M, C, mean.data(), invstd.data(), scale.data(), train,
                                    dx.data(), dw.data(), db.data(), mask);
          kernels::emu::bn_backward_bf16(dyb.data(), xb.data(), M, C, mean.data(), invstd.data(), scale.data(), train,
                                         dx_e.data(), dw_e.data(), db_e.data(), ws.data(), maskb);
          kernels::emu::bn_backward_f32(dy.data(), x.data(), M, C, mean.data(), invstd.data(), scale.data(), train,
                                        dx_f.data(), dw_f.data(), db_f.data(), ws.data(), mask);
          const double sum_tol = 1e-6 * std::max<int64_t>(M, 100);  // as the f32 case above
          CHECK(close_arrays("dbias", db_e.data(), db.data(), C, sum_tol, 1e-5));
          CHECK(close_arrays("dweight", dw_e.data(), dw.data(), C, sum_tol, 1e-5));
          CHECK(db_e == db_f);
          CHECK(dw_e == dw_f);
          const std::vector<bf16> want = ref_narrow(dx);
          if (train) CHECK(within_bf16_ulps("train dx", dx_e, want, 1, &dx, 1e-6));
          else CHECK(same_bf16("eval dx", dx_e, want));
          CHECK(same_bf16("dx against the emulated f32 kernel", dx_e, ref_narrow(dx_f)));
        }
      }
    }
  });
}

GPU_TEST_CASE("norm: GPU batch norm matches the CPU at a realistic shape, deterministically") {
  const Shape s{16, 33, 65, 2048};
  const int64_t C = s[3];
  Tensor x = random_tensor(s, 61, DType::f32, -1, 3), dy = random_tensor(s, 62);
  Tensor w = random_tensor({C}, 63, DType::f32, 0.5, 1.5), b = random_tensor({C}, 64);
  Tensor rm = random_tensor({C}, 65), rv = random_tensor({C}, 66, DType::f32, 0.5, 2);
  for (BatchNormMode mode : {BatchNormMode::train, BatchNormMode::eval, BatchNormMode::frozen}) {
    CAPTURE(batch_norm_mode_name(mode));
    Tensor rm_c = rm.clone(), rv_c = rv.clone(), rm_g = rm.cuda(), rv_g = rv.cuda();
    Tensor xc = x.clone().set_requires_grad(), wc = w.clone().set_requires_grad(), bc = b.clone().set_requires_grad();
    Tensor xg = x.cuda().set_requires_grad(), wg = w.cuda().set_requires_grad(), bg = b.cuda().set_requires_grad();
    Tensor yc = batch_norm(xc, wc, bc, rm_c, rv_c, mode), yg = batch_norm(xg, wg, bg, rm_g, rv_g, mode);
    CHECK(close_tensors("y", yg, yc, 1e-5, 1e-4));
    CHECK(close_tensors("running_mean", rm_g, rm_c, 1e-6, 1e-5));
    CHECK(close_tensors("running_var", rv_g, rv_c, 1e-6, 1e-5));
    sum(mul(yc, dy)).backward();
    sum(mul(yg, dy.cuda())).backward();
    CHECK(close_tensors("dx", xg.grad(), xc.grad(), 1e-5, 1e-3));
    if (mode == BatchNormMode::frozen) {
      CHECK_FALSE(wg.grad().defined());
    } else {
      // Sums over M = 34320 rows: float absolute error of order 1e-7 * M.
      CHECK(close_tensors("dweight", wg.grad(), wc.grad(), 1e-2, 1e-4));
      CHECK(close_tensors("dbias", bg.grad(), bc.grad(), 1e-2, 1e-4));
    }
  }
  // The fused ReLU on the GPU against BN then relu on the GPU (against the CPU, a value within
  // rounding of 0 could take the other side of the kink): the same arithmetic, so the same
  // values up to rounding; the CPU tests above check this in detail.
  for (BatchNormMode mode : {BatchNormMode::train, BatchNormMode::eval, BatchNormMode::frozen}) {
    const std::string mode_name = batch_norm_mode_name(mode);
    CAPTURE(mode_name);
    Tensor rm_f = rm.cuda(), rv_f = rv.cuda(), rm_u = rm.cuda(), rv_u = rv.cuda(), dyg = dy.cuda();
    Tensor xf = x.cuda().set_requires_grad(), wf = w.cuda().set_requires_grad(), bf = b.cuda().set_requires_grad();
    Tensor xu = x.cuda().set_requires_grad(), wu = w.cuda().set_requires_grad(), bu = b.cuda().set_requires_grad();
    Tensor yf = batch_norm(xf, wf, bf, rm_f, rv_f, mode, 0.1, 1e-5, true);
    Tensor yu = relu(batch_norm(xu, wu, bu, rm_u, rv_u, mode));
    CHECK(close_tensors("relu y", yf, yu, 0, 2.4e-7));
    sum(mul(yf, dyg)).backward();
    sum(mul(yu, dyg)).backward();
    CHECK(close_tensors("relu dx", xf.grad(), xu.grad(), 1e-6, 1e-6));
    if (mode != BatchNormMode::frozen) {
      CHECK(close_tensors("relu dweight", wf.grad(), wu.grad(), 1e-6, 1e-6));
      CHECK(close_tensors("relu dbias", bf.grad(), bu.grad(), 1e-6, 1e-6));
    }
  }
  // Deterministic: the same input gives the same bits.
  Tensor xg = x.cuda(), wg = w.cuda(), bg = b.cuda(), rm1 = rm.cuda(), rv1 = rv.cuda(), rm2 = rm.cuda(),
         rv2 = rv.cuda();
  Tensor y1 = batch_norm(xg, wg, bg, rm1, rv1, BatchNormMode::train);
  Tensor y2 = batch_norm(xg, wg, bg, rm2, rv2, BatchNormMode::train);
  CHECK(y1.cpu().to_vector<float>() == y2.cpu().to_vector<float>());
  CHECK(rv1.cpu().to_vector<float>() == rv2.cpu().to_vector<float>());
}
