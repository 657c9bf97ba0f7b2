// Folding frozen BatchNorm into the convolutions (nn::conv_bn) in whole models: a ResNet-50
// DeepLab-v2 and a DeepLabV3+ (its head's BatchNorms frozen too), folded against unfolded
// (nn::set_fold_frozen_bn(false)) in train and eval mode and without autograd (the teacher's
// forward): logits, loss and every parameter gradient within FP32 tolerance; under bf16 autocast
// within bf16 tolerance; trainable BatchNorm untouched (the same bits either way); fewer kernel
// launches per forward.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "core/precision.h"
#include "kernels/launch_counter.h"
#include "nn/deeplab.h"
#include "tests/helpers.h"

using namespace c3;
using namespace c3::nn;
using namespace c3test;

namespace {

// Restores folding (on by default) when a test ends, whatever happens.
struct FoldSwitch {
  ~FoldSwitch() { set_fold_frozen_bn(true); }
};

DeepLabConfig model_config(HeadKind head, bool frozen) {
  DeepLabConfig cfg;
  cfg.head = head;
  cfg.num_classes = 5;
  cfg.backbone.depth = head == HeadKind::deeplab_v2 ? 50 : 18;
  cfg.backbone.width = 0.25;
  cfg.backbone.output_stride = head == HeadKind::deeplab_v2 ? 8 : 16;
  cfg.backbone.frozen_bn = frozen;
  cfg.aspp_channels = 16;
  cfg.low_level_channels = 8;
  cfg.dropout = 0;  // no random mask: both runs see the same function
  cfg.projection_head = false;
  return cfg;
}

// BatchNorms as a pretrained model has them (not the identity of a fresh one): the affine
// and the statistics drawn per channel; with `freeze_all` every BatchNorm is frozen (the V3+
// head's too, which the config leaves trainable).
void pretrained_like_bn(DeepLab& m, uint32_t seed, bool freeze_all) {
  NoGradGuard ng;
  for (auto& [name, mod] : m.named_modules()) {
    auto* bn = const_cast<BatchNorm2d*>(dynamic_cast<const BatchNorm2d*>(mod));
    if (!bn) continue;
    const Shape s = bn->weight.shape();
    bn->weight.copy_(random_tensor(s, seed++, DType::f32, 0.3, 1.5));
    bn->bias.copy_(random_tensor(s, seed++, DType::f32, -0.3, 0.3));
    bn->running_mean.copy_(random_tensor(s, seed++, DType::f32, -0.5, 0.5));
    bn->running_var.copy_(random_tensor(s, seed++, DType::f32, 0.2, 2.0));
    if (freeze_all) bn->set_frozen(true);
  }
}

struct Run {
  Tensor logits;
  double loss;
  std::vector<std::pair<std::string, Tensor>> grads;  // each parameter with a gradient
  uint64_t forward_launches;
};

Run run(DeepLab& m, bool fold, const Tensor& x, const Tensor& labels) {
  set_fold_frozen_bn(fold);
  m.zero_grad();
  const uint64_t before = kernels::launches();
  Tensor logits = m.forward(x);
  Run r{logits, 0, {}, kernels::launches() - before};
  Tensor loss = cross_entropy(logits, labels);
  r.loss = loss.item();
  loss.backward();
  for (const NamedTensor& p : m.named_parameters())
    if (p.tensor->grad().defined()) r.grads.emplace_back(p.name, p.tensor->grad());
  return r;
}

double rel_l2(const Tensor& a, const Tensor& b) {
  const auto va = as_doubles(a), vb = as_doubles(b);
  double d = 0, n = 0;
  for (size_t i = 0; i < va.size(); ++i) d += (va[i] - vb[i]) * (va[i] - vb[i]), n += vb[i] * vb[i];
  return n > 0 ? std::sqrt(d / n) : std::sqrt(d);
}
double max_abs(const Tensor& t) {
  double s = 0;
  for (double v : as_doubles(t)) s = std::max(s, std::abs(v));
  return s;
}

// Folded against unfolded, in FP32. Each folded layer rounds differently from the unfolded
// conv + BN (the scaled weights, then the sum, against the sum, then the affine map): a few
// ulp (2^-24 = 6e-8) of that layer's output, carried through ~50 layers and the head. Measured
// here: logits within 1.9e-6 of the largest logit, the loss within 2.4e-7 relative, each
// gradient tensor within 1.7e-6 relative L2. Checked, ten times looser (other BLAS kernels
// round differently): every logit within 2e-5 of the largest, the loss within 2e-6 relative,
// each gradient within 2e-5 relative L2. An error of the folding itself (a wrong scale or
// shift in one channel, a gradient missing the scale) is far larger.
double max_diff(const Tensor& a, const Tensor& b) {
  const auto va = as_doubles(a), vb = as_doubles(b);
  double d = 0;
  for (size_t i = 0; i < va.size(); ++i) d = std::max(d, std::abs(va[i] - vb[i]));
  return d;
}

void check_fold_fp32(DeepLab& m, const Tensor& x, const Tensor& labels, const std::string& what,
                     double grad_tol = 2e-5) {
  const Run f = run(m, true, x, labels), u = run(m, false, x, labels);
  INFO(what);
  const double scale = max_abs(u.logits), d_logits = rel_l2(f.logits, u.logits);
  CHECK(close_tensors(what + " logits", f.logits, u.logits, 2e-5 * scale, 0));
  CHECK(f.loss == doctest::Approx(u.loss).epsilon(2e-6));
  REQUIRE(f.grads.size() == u.grads.size());
  REQUIRE(!f.grads.empty());
  double worst = 0;
  std::string worst_name;
  for (size_t i = 0; i < f.grads.size(); ++i) {
    REQUIRE(f.grads[i].first == u.grads[i].first);
    const double d = rel_l2(f.grads[i].second, u.grads[i].second);
    CHECK_MESSAGE(d <= grad_tol, f.grads[i].first, ": relative L2 ", d);
    if (d > worst) worst = d, worst_name = f.grads[i].first;
  }
  MESSAGE(what, ": logits relative L2 ", d_logits, ", largest difference / largest logit ",
          max_diff(f.logits, u.logits) / scale, ", loss relative difference ", std::abs(f.loss - u.loss) / u.loss,
          "; gradients (", f.grads.size(),
          " tensors) worst relative L2 ", worst, " at ", worst_name, "; forward launches folded ", f.forward_launches,
          ", unfolded ", u.forward_launches);
  CHECK(f.forward_launches < u.forward_launches);
}

}  // namespace

TEST_CASE("bn fold models: ResNet-50 DeepLab-v2 with frozen BN, folded equals unfolded in FP32, train and eval") {
  FoldSwitch restore;
  DeepLab m(model_config(HeadKind::deeplab_v2, true), 11);
  pretrained_like_bn(m, 100, false);
  const Tensor x = random_tensor({2, 41, 49, 3}, 12);
  const Tensor labels = Tensor::from_vector(std::vector<int32_t>(2 * 41 * 49, 3), {2, 41, 49});
  m.train();
  check_fold_fp32(m, x, labels, "DeepLab-v2 R50 train");
  m.eval();
  check_fold_fp32(m, x, labels, "DeepLab-v2 R50 eval");
  // The teacher's forward: eval, no autograd, detached weights.
  NoGradGuard ng;
  set_fold_frozen_bn(true);
  const Tensor yf = m.forward(x);
  set_fold_frozen_bn(false);
  const Tensor yu = m.forward(x);
  CHECK(close_tensors("teacher logits", yf, yu, 2e-5 * max_abs(yu), 0));
}

TEST_CASE("bn fold models: DeepLabV3+ with frozen BN: the backbone's, then every one (the head's ConvBnRelu too)") {
  FoldSwitch restore;
  // The image-pooling branch's trainable BatchNorm (train mode) normalizes over the batch's
  // pooled vectors, one per image, and its gradient divides by their spread: it magnifies the
  // rounding differences upstream (with two noise images of one brightness, whose pooled vectors
  // nearly coincide, by ~300x). Four images of different brightness keep that near 10x
  // (measured: 1.1e-5 relative L2 at decoder.aspp.0.conv.weight): gradients within 1e-4 there.
  const Tensor x = add(random_tensor({4, 33, 41, 3}, 22),
                       Tensor::from_vector<float>({-0.6f, -0.2f, 0.2f, 0.6f}, {4, 1, 1, 1}));
  const Tensor labels = Tensor::from_vector(std::vector<int32_t>(4 * 33 * 41, 1), {4, 33, 41});
  for (bool freeze_head : {false, true}) {
    DeepLab m(model_config(HeadKind::deeplab_v3plus, true), 21);
    pretrained_like_bn(m, 200, freeze_head);
    const std::string what = std::string("DeepLabV3+ R18 ") + (freeze_head ? "all frozen" : "frozen backbone");
    m.train();  // the trainable head's BatchNorms: batch statistics
    check_fold_fp32(m, x, labels, what + " train", freeze_head ? 2e-5 : 1e-4);
    m.eval();
    check_fold_fp32(m, x, labels, what + " eval");
  }
}

TEST_CASE("bn fold models: trainable BatchNorm is not folded: the same bits with folding on or off") {
  FoldSwitch restore;
  for (HeadKind head : {HeadKind::deeplab_v2, HeadKind::deeplab_v3plus}) {
    DeepLabConfig cfg = model_config(head, false);
    cfg.backbone.depth = 18;
    DeepLab a(cfg, 31), b(cfg, 31);
    pretrained_like_bn(a, 300, false);
    pretrained_like_bn(b, 300, false);
    const Tensor x = random_tensor({2, 33, 41, 3}, 32);
    const Tensor labels = Tensor::from_vector(std::vector<int32_t>(2 * 33 * 41, 2), {2, 33, 41});
    a.train(), b.train();  // batch statistics, running statistics updated: both the same
    const Run f = run(a, true, x, labels), u = run(b, false, x, labels);
    CHECK(as_doubles(f.logits) == as_doubles(u.logits));
    CHECK(f.loss == u.loss);
    CHECK(f.forward_launches == u.forward_launches);
    REQUIRE(f.grads.size() == u.grads.size());
    for (size_t i = 0; i < f.grads.size(); ++i)
      CHECK_MESSAGE(as_doubles(f.grads[i].second) == as_doubles(u.grads[i].second), f.grads[i].first);
    const auto sa = a.state_dict(), sb = b.state_dict();
    for (size_t i = 0; i < sa.size(); ++i) CHECK_MESSAGE(as_doubles(sa[i].second) == as_doubles(sb[i].second), sa[i].first);
  }
}

TEST_CASE("bn fold models: under bf16 autocast the folded model runs in bf16, within bf16 tolerance") {
  // bf16 keeps 8 significant bits (2^-9 = 2e-3 relative per rounding). Folded and unfolded round
  // at different points (the folded weights and bias in bf16, against the conv output before
  // the f32 affine map), so each lies about as far from the FP32 logits as the other: the
  // folded bf16 logits within 1.5x the unfolded bf16's relative L2 distance from FP32 (plus
  // 0.005), and within 0.05 of the unfolded bf16 logits; the loss within 1%.
  FoldSwitch restore;
  for (HeadKind head : {HeadKind::deeplab_v2, HeadKind::deeplab_v3plus}) {
    DeepLab m(model_config(head, true), 41);
    pretrained_like_bn(m, 400, head == HeadKind::deeplab_v3plus);
    const Tensor x = random_tensor({2, 33, 41, 3}, 42);
    const Tensor labels = Tensor::from_vector(std::vector<int32_t>(2 * 33 * 41, 4), {2, 33, 41});
    m.train();
    const Run ref = run(m, false, x, labels);  // FP32, unfolded
    Run fb, ub;
    {
      AutocastScope ac(Precision::bf16);
      fb = run(m, true, x, labels);
    }
    {
      AutocastScope ac(Precision::bf16);
      ub = run(m, false, x, labels);
    }
    const std::string what = head == HeadKind::deeplab_v2 ? "DeepLab-v2 R50 bf16" : "DeepLabV3+ R18 bf16";
    INFO(what);
    CHECK(fb.logits.dtype() == DType::bf16);
    CHECK(ub.logits.dtype() == DType::bf16);
    const double d_f = rel_l2(fb.logits, ref.logits), d_u = rel_l2(ub.logits, ref.logits);
    const double d_fu = rel_l2(fb.logits, ub.logits);
    MESSAGE(what, ": logits relative L2 from FP32: folded ", d_f, ", unfolded ", d_u, "; folded vs unfolded ", d_fu,
            "; loss ", fb.loss, " / ", ub.loss, " / FP32 ", ref.loss, "; forward launches folded ", fb.forward_launches,
            ", unfolded ", ub.forward_launches);
    CHECK(d_f <= 1.5 * d_u + 0.005);
    CHECK(d_fu <= 0.05);
    CHECK(fb.loss == doctest::Approx(ub.loss).epsilon(0.01));
    REQUIRE(fb.grads.size() == ref.grads.size());
    for (const auto& [name, g] : fb.grads) CHECK_MESSAGE(g.dtype() == DType::f32, name);
  }
}
