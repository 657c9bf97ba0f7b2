// Frozen BatchNorm folded into the convolution before it (fold_frozen_batch_norm, core/ops_norm.h):
// values by hand; the folded conv against conv then frozen batch_norm (with and without the fused
// ReLU, with and without a conv bias), values and gradients; a gradient check in double; bad
// input; one launch; the emulated kernel against the CPU kernel at the shapes the kernel lab
// misses (more channels than blocks, rows longer than a block), both fiber orders.
//
// CUDA kernels run here in emulation, through kernels::emu::bn_fold_f32: fold_kernel.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/ops_conv.h"
#include "core/ops_norm.h"
#include "kernels/cpu/norm.h"
#include "kernels/cuda/emu/emu.h"
#include "kernels/cuda/norm.h"
#include "kernels/launch_counter.h"
#include "tests/emu_helpers.h"
#include "tests/helpers.h"

using namespace c3;
using namespace c3test;

namespace {

double max_abs(const Tensor& t) {
  double s = 0;
  for (double v : as_doubles(t)) s = std::max(s, std::abs(v));
  return s;
}

// A frozen BatchNorm's tensors for K channels, statistics away from the identity.
struct Bn {
  Tensor weight, bias, mean, var;
};
Bn random_bn(int64_t K, uint32_t seed, DType dt) {
  return {random_tensor({K}, seed, dt, 0.5, 1.5), random_tensor({K}, seed + 1, dt, -0.3, 0.3),
          random_tensor({K}, seed + 2, dt, -0.5, 0.5), random_tensor({K}, seed + 3, dt, 0.05, 2.0)};
}

}  // namespace

TEST_CASE("bn fold: values computed by hand") {
  // eps = 1: var + eps = 4 and 1, invstd 1/2 and 1; weight 2 and 3: scale 1 and 3.
  Tensor w = Tensor::from_vector<float>({1, 2, 3, 4}, {2, 1, 1, 2});
  Tensor weight = Tensor::from_vector<float>({2, 3}, {2}), bias = Tensor::from_vector<float>({0.5f, 0}, {2});
  Tensor mean = Tensor::from_vector<float>({1, -1}, {2}), var = Tensor::from_vector<float>({3, 0}, {2});
  FoldedConv f = fold_frozen_batch_norm(w, Tensor(), weight, bias, mean, var, 1.0);
  CHECK(f.weight.shape() == Shape{2, 1, 1, 2});
  CHECK(f.weight.to_vector<float>() == std::vector<float>{1, 2, 9, 12});
  CHECK(f.bias.to_vector<float>() == std::vector<float>{-0.5f, 3});  // (0 - mean) * scale + bias
  // With the conv's bias 3 and 1: (3 - 1) * 1 + 0.5 = 2.5, (1 + 1) * 3 = 6.
  f = fold_frozen_batch_norm(w, Tensor::from_vector<float>({3, 1}, {2}), weight, bias, mean, var, 1.0);
  CHECK(f.bias.to_vector<float>() == std::vector<float>{2.5f, 6});
}

TEST_CASE("bn fold: the folded conv is the conv then the frozen BatchNorm, values and gradients") {
  // f64: the two orders of the same arithmetic, 1e-12 of the scale. f32: the unfolded chain
  // rounds conv(x, w) (27 products) then (. - mean) * scale + bias; the folded one rounds the
  // scaled weights then the sum; both a few ulp of the largest value: 1e-5 of it.
  uint32_t seed = 500;
  for (DType dt : {DType::f64, DType::f32})
    for (bool relu : {false, true})
      for (bool conv_bias : {false, true}) {
        const double tol = dt == DType::f64 ? 1e-12 : 1e-5;
        INFO((dt == DType::f64 ? "f64" : "f32"), (relu ? " relu" : ""), (conv_bias ? " conv bias" : ""));
        Tensor x0 = random_tensor({2, 6, 7, 3}, seed++, dt), w0 = random_tensor({5, 3, 3, 3}, seed++, dt);
        Tensor cb0 = conv_bias ? random_tensor({5}, seed++, dt) : Tensor();
        const Bn bn = random_bn(5, seed, dt);
        seed += 4;
        Tensor r = random_tensor({2, 3, 4, 5}, seed++, dt);  // stride 2, pad 1: 3 x 4 outputs
        auto run = [&](bool fold) {
          Tensor x = x0.detach().set_requires_grad(), w = w0.detach().set_requires_grad();
          Tensor cb = conv_bias ? cb0.detach().set_requires_grad() : Tensor();
          Tensor y;
          if (fold) {
            FoldedConv f = fold_frozen_batch_norm(w, cb, bn.weight, bn.bias, bn.mean, bn.var, 1e-5);
            y = conv2d(x, f.weight, f.bias, 2, 1, 1, relu);
          } else {
            y = batch_norm(conv2d(x, w, cb, 2, 1), bn.weight, bn.bias, bn.mean, bn.var, BatchNormMode::frozen, 0.1,
                           1e-5, relu);
          }
          sum(mul(y, r)).backward();
          return std::vector<Tensor>{y, x.grad(), w.grad(), conv_bias ? cb.grad() : Tensor()};
        };
        const std::vector<Tensor> folded = run(true), plain = run(false);
        const char* names[] = {"y", "dx", "dw", "dcb"};
        for (int i = 0; i < 4; ++i)
          if (plain[i].defined())
            CHECK(close_tensors(names[i], folded[i], plain[i], tol * max_abs(plain[i]), 0));
      }
}

TEST_CASE("bn fold: gradient check in double") {
  Tensor x = random_tensor({2, 5, 4, 3}, 61, DType::f64), w = random_tensor({4, 3, 3, 3}, 62, DType::f64);
  Tensor cb = random_tensor({4}, 63, DType::f64), r = random_tensor({2, 5, 4, 4}, 64, DType::f64);
  const Bn bn = random_bn(4, 65, DType::f64);
  CHECK(gradcheck("folded conv", [&](auto& in) {
    FoldedConv f = fold_frozen_batch_norm(in[1], in[2], bn.weight, bn.bias, bn.mean, bn.var, 1e-5);
    return sum(mul(conv2d(in[0], f.weight, f.bias, 1, 1), r));
  }, {x, w, cb}));
}

TEST_CASE("bn fold: bad input names the op; a trainable BatchNorm does not fold; one launch") {
  Tensor w = random_tensor({4, 3, 3, 2}, 71);
  const Bn bn = random_bn(4, 72, DType::f32);
  CHECK_THROWS_WITH_AS(fold_frozen_batch_norm(w, Tensor(), bn.weight.detach().set_requires_grad(), bn.bias, bn.mean,
                                              bn.var),
                       doctest::Contains("fold_frozen_batch_norm: the BatchNorm's weight requires grad"), Error);
  CHECK_THROWS_WITH_AS(fold_frozen_batch_norm(w, Tensor(), Tensor::full({3}, 1.0), bn.bias, bn.mean, bn.var),
                       doctest::Contains("weight f32[3] cpu does not match the conv weight f32[4,3,3,2]"), Error);
  CHECK_THROWS_WITH_AS(fold_frozen_batch_norm(w, Tensor::zeros({4}, DType::f64), bn.weight, bn.bias, bn.mean, bn.var),
                       doctest::Contains("conv bias f64[4]"), Error);
  CHECK_THROWS_WITH_AS(fold_frozen_batch_norm(w, Tensor(), bn.weight, bn.bias, bn.mean, Tensor()),
                       doctest::Contains("running_var is undefined"), Error);
  CHECK_THROWS_WITH_AS(fold_frozen_batch_norm(w.cast(DType::bf16), Tensor(), bn.weight, bn.bias, bn.mean, bn.var),
                       doctest::Contains("fold_frozen_batch_norm"), Error);
  const uint64_t before = kernels::launches();
  (void)fold_frozen_batch_norm(w, Tensor(), bn.weight, bn.bias, bn.mean, bn.var);
  CHECK(kernels::launches() - before == 1);
}

TEST_CASE("bn fold kernel: emulated equals the CPU kernel, more channels than blocks and rows longer than a block") {
  // 4099 channels of 3 taps (the grid strides over channels past 4096 blocks); 3 channels of
  // 1000 taps (each thread of 128 scales several taps); one channel of one tap. The emulated
  // kernel is compiled from the same source by the same compiler: equal bits.
  struct Shape2 {
    int64_t K, taps;
  };
  for (const Shape2 s : {Shape2{4099, 3}, Shape2{3, 1000}, Shape2{1, 1}})
    for (bool with_bias : {false, true}) {
      const std::vector<float> w = random_floats(s.K * s.taps, 81), cb = random_floats(s.K, 82),
                               weight = random_floats(s.K, 83, 0.5f, 1.5f), bias = random_floats(s.K, 84),
                               mean = random_floats(s.K, 85), var = random_floats(s.K, 86, 0.05f, 2.f);
      std::vector<float> w_ref(w.size()), b_ref(s.K), s_ref(s.K);
      kernels::cpu::bn_fold(w.data(), s.K, s.taps, with_bias ? cb.data() : nullptr, weight.data(), bias.data(),
                            mean.data(), var.data(), 1e-5f, w_ref.data(), b_ref.data(), s_ref.data());
      for_each_fiber_order([&](const char* order) {
        std::vector<float> w_out(w.size(), NAN), b_out(s.K, NAN), scale(s.K, NAN);
        kernels::emu::bn_fold_f32(w.data(), s.K, s.taps, with_bias ? cb.data() : nullptr, weight.data(), bias.data(),
                                  mean.data(), var.data(), 1e-5f, w_out.data(), b_out.data(), scale.data());
        INFO(order, " K ", s.K, " taps ", s.taps, with_bias ? " with bias" : "");
        CHECK(w_out == w_ref);
        CHECK(b_out == b_ref);
        CHECK(scale == s_ref);
      });
    }
}
