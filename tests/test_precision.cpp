// Mixed precision (core/precision.h): the op table, the differentiable cast, autocast of
// convolutions with the weights cast once per scope, bf16 through the follow ops and the f32
// ops, and the autograd check that a bf16 input gets a bf16 gradient.
//
// Tolerances: a bf16 output is its f32 value rounded once, at most half a bf16 ulp away:
// 2^-9 relative. References here are computed in f64 from the bf16-rounded inputs, so an
// output within 2^-8 relative (+ a small absolute term for f32 summation near zero) is one
// correct rounding.
#include <cmath>

#include "core/ops.h"
#include "core/precision.h"
#include "nn/deeplab.h"
#include "tests/helpers.h"
#include "tests/model_helpers.h"

using namespace c3;
using namespace c3test;

namespace {

// x rounded to bf16, as f64 (the value a bf16 op sees).
Tensor bf16_value(const Tensor& x) { return cast(cast(x, DType::bf16), DType::f64); }

constexpr double kBf16Rel = 1.0 / 256;  // 2^-8: one rounding to bf16, with margin

}  // namespace

TEST_CASE("precision: the table gives each op its class; an op missing from it is an error naming it") {
  CHECK(op_precision("conv2d") == OpPrecision::lower);
  CHECK(op_precision("batch_norm") == OpPrecision::follow);
  CHECK(op_precision("add_relu") == OpPrecision::follow);
  CHECK(op_precision("cross_entropy") == OpPrecision::fp32);
  CHECK(op_precision("softmax") == OpPrecision::fp32);
  CHECK_THROWS_WITH_AS(op_precision("conv3d"), doctest::Contains("'conv3d' has no entry in the precision table"),
                       Error);
  for (const OpPolicy& p : precision_table()) CHECK_NOTHROW(op_precision(p.op));
}

TEST_CASE("precision: cast between floating dtypes is differentiable; the gradient is cast back") {
  // 1 + 2^-8 is a tie between bf16 neighbours 1 and 1 + 2^-7: it rounds to the even one, 1.
  Tensor x = Tensor::from_vector<float>({1.5f, -3.25f, 1.00390625f}, {3}).set_requires_grad();
  Tensor z = cast(cast(x, DType::bf16), DType::f32);
  CHECK(z.to_vector<float>() == std::vector<float>{1.5f, -3.25f, 1.f});
  sum(mul(z, z)).backward();  // d/dz = 2z, through bf16 (exact here) back to f32
  REQUIRE(x.grad().defined());
  CHECK(x.grad().dtype() == DType::f32);
  CHECK(x.grad().to_vector<float>() == std::vector<float>{3.f, -6.5f, 2.f});
  // Integer casts stay outside autograd.
  Tensor xi = cast(x, DType::i32);
  CHECK_FALSE(xi.requires_grad());
}

TEST_CASE("precision: autocast runs conv2d in bf16, casts a weight once per scope, and returns f32 gradients") {
  Tensor x = random_tensor({2, 6, 5, 3}, 1, DType::f32, -2, 2);
  Tensor w = random_tensor({4, 3, 3, 3}, 2).set_requires_grad();
  Tensor b = random_tensor({4}, 3).set_requires_grad();
  const Tensor ref = conv2d(bf16_value(x), bf16_value(w), bf16_value(b), 1, 1, 1);  // f64
  {
    AutocastScope ac(Precision::bf16);
    CHECK(autocast_bf16());
    Tensor y1 = conv2d(x, w, b, 1, 1, 1);
    Tensor y2 = conv2d(x, w, b, 1, 1, 1);
    CHECK(y1.dtype() == DType::bf16);
    CHECK(autocast_cached() == 2);  // the weight and the bias, once each for both calls
    CHECK(close_tensors("bf16 conv vs f64 of rounded inputs", y1, ref, 1e-5, kBf16Rel));
    CHECK(as_doubles(y1) == as_doubles(y2));
    sum(cast(add(y1, y2), DType::f32)).backward();
  }
  CHECK(autocast_cached() == 0);  // dropped with the scope
  CHECK_FALSE(autocast_bf16());
  REQUIRE(w.grad().defined());
  CHECK(w.grad().dtype() == DType::f32);
  CHECK(b.grad().dtype() == DType::f32);
  // dL/db = 2 * (number of output pixels) per channel: exact in bf16 (60 * 2 = 120).
  CHECK(b.grad().to_vector<float>() == std::vector<float>(4, 120.f));
  // dL/dw = 2 * sum of the (rounded) input over each tap's window, from the f64 reference.
  Tensor x64 = bf16_value(x), w64 = bf16_value(w).detach().set_requires_grad();
  sum(conv2d(x64, w64, Tensor(), 1, 1, 1)).backward();
  CHECK(close_tensors("weight gradient", w.grad(), mul(w64.grad(), 2.0), 1e-5, kBf16Rel));
  // Outside a scope nothing changes: f32 in, f32 out.
  CHECK(conv2d(x, w, b, 1, 1, 1).dtype() == DType::f32);
}

TEST_CASE("precision: follow ops keep bf16 (f32 statistics), each output within one rounding of f64") {
  Tensor x32 = random_tensor({2, 6, 8, 4}, 7, DType::f32, -3, 3);
  Tensor x = cast(x32, DType::bf16), x64 = bf16_value(x32);
  Tensor y = cast(random_tensor({2, 6, 8, 4}, 8), DType::bf16), y64 = cast(y, DType::f64);
  auto check = [](const char* what, const Tensor& got, const Tensor& ref) {
    CHECK_MESSAGE(got.dtype() == DType::bf16, what);
    CHECK_MESSAGE(close_tensors(what, got, ref, 1e-6, kBf16Rel), what);
  };
  check("relu", relu(x), relu(x64));
  check("add", add(x, y), add(x64, y64));
  check("add_relu", add_relu(x, y), add_relu(x64, y64));
  check("mul by a scalar", mul(x, 1.0 / 0.9), mul(x64, 1.0 / 0.9));
  check("max_pool2d", max_pool2d(x, 3, 2, 1, false), max_pool2d(x64, 3, 2, 1, false));
  check("global_avg_pool", global_avg_pool(x), global_avg_pool(x64));
  check("resize_bilinear", resize_bilinear(x, 11, 13, false), resize_bilinear(x64, 11, 13, false));
  check("concat", concat({x, y}, 3), concat({x64, y64}, 3));
  check("sum over channels", sum(x, {3}), sum(x64, {3}));

  // BatchNorm: bf16 activations with f32 weight, bias and running buffers (updated in f32).
  Tensor w = random_tensor({4}, 9, DType::f32, 0.5, 1.5), bias = random_tensor({4}, 10);
  Tensor rm = Tensor::zeros({4}), rv = Tensor::full({4}, 1.0);
  Tensor rm64 = Tensor::zeros({4}, DType::f64), rv64 = Tensor::full({4}, 1.0, DType::f64);
  Tensor bn = batch_norm(x, w, bias, rm, rv, BatchNormMode::train, 0.1, 1e-5, /*relu=*/true);
  Tensor bn64 = batch_norm(x64, cast(w, DType::f64), cast(bias, DType::f64), rm64, rv64, BatchNormMode::train, 0.1,
                           1e-5, true);
  check("batch_norm + relu (train)", bn, bn64);
  CHECK(rm.dtype() == DType::f32);
  CHECK(close_tensors("running mean (f32, from bf16 input)", rm, rm64, 1e-6, 1e-5));
  CHECK(close_tensors("running var", rv, rv64, 1e-6, 1e-5));
  CHECK_THROWS_WITH_AS(batch_norm(x, cast(w, DType::bf16), bias, rm, rv, BatchNormMode::train, 0.1, 1e-5),
                       doctest::Contains("batch_norm: weight bf16[4] cpu does not match x"), Error);
}

TEST_CASE("precision: gradients through bf16 follow ops are bf16; f32 ops widen bf16 and return f32") {
  Tensor w = random_tensor({3, 1, 1, 5}, 11).set_requires_grad();
  Tensor x = random_tensor({2, 4, 4, 5}, 12);
  Tensor labels = Tensor::from_vector<int32_t>(std::vector<int32_t>(32, 1), {2, 4, 4});
  AutocastScope ac(Precision::bf16);
  Tensor logits = conv2d(x, w, Tensor(), 1, 0, 1);  // bf16 [2,4,4,3]
  Tensor up = resize_bilinear(relu(logits), 8, 8, false);
  CHECK(up.dtype() == DType::bf16);
  Tensor p = softmax(up);
  CHECK(p.dtype() == DType::f32);
  Tensor loss = cross_entropy(resize_bilinear(logits, 4, 4, false), labels);
  CHECK(loss.dtype() == DType::f32);
  CHECK(l2_normalize(logits).dtype() == DType::f32);
  CHECK(argmax_channels(logits).dtype() == DType::i32);
  loss.backward();  // every node checks that its bf16 inputs got bf16 gradients
  CHECK(w.grad().dtype() == DType::f32);
  CHECK(std::isfinite(sum(abs(w.grad())).item()));
  CHECK(sum(abs(w.grad())).item() > 0);
}

TEST_CASE("precision: a backward that returns the wrong dtype for an input is an error naming the op") {
  Tensor x = random_tensor({3}, 13).set_requires_grad();
  Tensor h = cast(x, DType::bf16);  // requires grad, bf16
  Tensor y = Tensor::empty({3}, DType::bf16);
  record(y, "bad_op", {h}, [](const Tensor& g, const Needs&) { return std::vector<Tensor>{cast(g, DType::f32)}; });
  CHECK_THROWS_WITH_AS(sum(cast(y, DType::f32)).backward(),
                       doctest::Contains("backward of 'bad_op': gradient 0 is f32, input is bf16"), Error);
}

TEST_CASE("precision: a packed model's weights are cast in one launch per step; same numbers as unpacked") {
  nn::DeepLabConfig cfg = small_deeplab(true);
  cfg.backbone.frozen_bn = true;  // a folded backbone (nn::conv_bn) beside the head's plain convs
  nn::DeepLab packed(cfg, 3), plain(cfg, 3);
  packed.pack_parameters();
  const Tensor x = random_tensor({2, 33, 41, 3}, 14);
  const Tensor y = Tensor::from_vector<int32_t>(std::vector<int32_t>(2 * 33 * 41, 2), {2, 33, 41});
  auto step = [&](nn::DeepLab& m) {
    AutocastScope ac(Precision::bf16);
    Tensor logits = m.forward(x);
    CHECK(logits.dtype() == DType::bf16);
    cross_entropy(logits, y).backward();
    return std::make_pair(logits, autocast_cached());
  };
  const auto [lp, copies_packed] = step(packed);
  const auto [lu, copies_plain] = step(plain);
  CHECK(copies_packed == 1);  // the whole parameter arena, one cast
  // Each convolution's weight and bias, cast once; except the frozen backbone's, whose folded
  // weights and biases (nn::conv_bn) reach the conv as computed tensors, cast where used.
  size_t conv_params = 0;
  for (auto& [name, m] : plain.named_modules())
    if (auto* c = dynamic_cast<const nn::Conv2d*>(m); c && name.rfind("backbone.", 0) != 0)
      conv_params += 1 + (c->bias.defined() ? 1 : 0);
  REQUIRE(cfg.backbone.frozen_bn);
  REQUIRE(nn::fold_frozen_bn());
  CHECK(copies_plain == conv_params);
  CHECK(as_doubles(lp) == as_doubles(lu));
  const auto gp = packed.named_parameters(), gu = plain.named_parameters();
  REQUIRE(gp.size() == gu.size());
  for (size_t i = 0; i < gp.size(); ++i) {
    const Tensor a = gp[i].tensor->grad(), b = gu[i].tensor->grad();
    REQUIRE(a.defined() == b.defined());
    if (!a.defined()) continue;
    CHECK_MESSAGE(a.dtype() == DType::f32, gp[i].name);
    CHECK_MESSAGE(as_doubles(a) == as_doubles(b), gp[i].name);
  }
}
