#include "nn/layers.h"

#include <atomic>
#include <cmath>

#include "core/dist.h"
#include "core/ops_conv.h"
#include "core/ops_reduce.h"

namespace c3::nn {

Conv2d::Conv2d(int64_t in, int64_t out, int k, int s, int p, int d, bool with_bias)
    : in_channels(in), out_channels(out), kernel(k), stride(s), padding(p), dilation(d) {
  C3_CHECK(in > 0 && out > 0 && k > 0 && s > 0 && p >= 0 && d > 0, "Conv2d: invalid configuration in=", in,
           " out=", out, " kernel=", k, " stride=", s, " padding=", p, " dilation=", d);
  weight = Tensor::zeros({out, k, k, in}).set_requires_grad();
  register_parameter("weight", &weight, ParamLayout::conv_ohwi);
  if (with_bias) {
    bias = Tensor::zeros({out}).set_requires_grad();
    register_parameter("bias", &bias);
  }
}

Tensor Conv2d::forward(const Tensor& x) const { return conv2d(x, weight, bias, stride, padding, dilation); }

namespace {
void assign(Tensor& param, const Tensor& value) {
  NoGradGuard ng;
  param.copy_(value.to(param.device()));
}
}  // namespace

void Conv2d::init_kaiming(Generator& g) {
  const double fan_out = double(out_channels) * kernel * kernel;
  assign(weight, g.normal(weight.shape(), 0.0, std::sqrt(2.0 / fan_out)));
  if (bias.defined()) fill_(bias.detach(), 0);
}

void Conv2d::init_normal(Generator& g, double std) {
  assign(weight, g.normal(weight.shape(), 0.0, std));
  if (bias.defined()) fill_(bias.detach(), 0);
}

BatchNorm2d::BatchNorm2d(int64_t c, double eps_, double momentum_) : eps(eps_), momentum(momentum_) {
  weight = Tensor::full({c}, 1.0).set_requires_grad();
  bias = Tensor::zeros({c}).set_requires_grad();
  running_mean = Tensor::zeros({c});
  running_var = Tensor::full({c}, 1.0);
  num_batches_tracked = Tensor::zeros({}, DType::i32);
  register_parameter("weight", &weight);
  register_parameter("bias", &bias);
  register_buffer("running_mean", &running_mean);
  register_buffer("running_var", &running_var);
  register_buffer("num_batches_tracked", &num_batches_tracked);
}

void BatchNorm2d::set_frozen(bool on) {
  frozen_ = on;
  // A frozen affine is a constant: it must not enter an optimizer's parameter groups.
  weight = weight.detach().set_requires_grad(!on);
  bias = bias.detach().set_requires_grad(!on);
}

BatchNormMode BatchNorm2d::mode() const {
  if (frozen_) return BatchNormMode::frozen;
  return is_training() ? BatchNormMode::train : BatchNormMode::eval;
}

Tensor BatchNorm2d::forward(const Tensor& x, bool relu) {
  const BatchNormMode m = mode();
  if (m == BatchNormMode::train && grad_mode()) {
    // PyTorch counts the batches seen in train mode; kept for checkpoint compatibility
    // (exact up to 2^24 batches through the f32 round trip, on either device).
    NoGradGuard ng;
    num_batches_tracked.copy_(cast(add(cast(num_batches_tracked, DType::f32), 1.0), DType::i32));
  }
  if (m == BatchNormMode::train && sync.size() > 1) {
    // SyncBN is a composite of ops (its own normalization pass): the ReLU follows as an op.
    Tensor y = sync_batch_norm(x, weight, bias, running_mean, running_var, momentum, eps, sync);
    return relu ? c3::relu(y) : y;
  }
  return batch_norm(x, weight, bias, running_mean, running_var, m, momentum, eps, relu);
}

namespace {
std::atomic<bool> g_fold_frozen_bn{true};
}  // namespace

void set_fold_frozen_bn(bool on) { g_fold_frozen_bn.store(on, std::memory_order_relaxed); }
bool fold_frozen_bn() { return g_fold_frozen_bn.load(std::memory_order_relaxed); }

Tensor conv_bn(const Conv2d& conv, BatchNorm2d& bn, const Tensor& x, bool relu) {
  if (!bn.frozen() || !fold_frozen_bn()) return bn.forward(conv.forward(x), relu);
  const FoldedConv f = fold_frozen_batch_norm(conv.weight, conv.bias, bn.weight, bn.bias, bn.running_mean,
                                              bn.running_var, bn.eps);
  return conv2d(x, f.weight, f.bias, conv.stride, conv.padding, conv.dilation, relu);
}

Tensor sync_batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                       const Tensor& running_var, double momentum, double eps, const dist::Comm& comm) {
  check_float("sync_batch_norm", x);
  C3_CHECK(x.rank() >= 2 && weight.defined() && weight.shape() == Shape{x.dim(-1)}, "sync_batch_norm: x ", x.desc(),
           " needs channels last and weight [C], got weight ", weight.defined() ? weight.desc() : "none");
  const int64_t C = x.dim(-1), M = x.numel() / C;
  std::vector<double> count = {double(M)};
  comm.all_reduce_sum(count);
  const double total = count[0];
  C3_CHECK(total >= 2, "sync_batch_norm: train mode needs more than one value per channel over all ranks, got ",
           total, " (x ", x.desc(), ")");
  // Two passes (mean, then squared deviations): the variance does not cancel catastrophically.
  Tensor xf = x.reshape({M, C});
  Tensor mu = mul(comm.all_reduce_sum_grad(sum(xf, {0})), 1.0 / total);
  Tensor xc = sub(xf, mu);
  Tensor var = mul(comm.all_reduce_sum_grad(sum(square(xc), {0})), 1.0 / total);
  Tensor scale = div(weight, sqrt(add(var, eps)));
  Tensor y = add(mul(xc, scale), bias).reshape(x.shape());
  {
    NoGradGuard ng;
    Tensor rm = running_mean, rv = running_var;
    rm.copy_(add(mul(rm, 1.0 - momentum), mul(mu.detach(), momentum)));
    rv.copy_(add(mul(rv, 1.0 - momentum), mul(var.detach(), momentum * total / (total - 1))));
  }
  return y;
}

void set_sync_batch_norm(Module& root, const dist::Comm& comm) {
  for (auto& [name, m] : root.named_modules())
    if (auto* bn = dynamic_cast<const BatchNorm2d*>(m)) const_cast<BatchNorm2d*>(bn)->sync = comm;
}

Tensor Dropout::forward(const Tensor& x) const {
  if (!is_training() || p_ <= 0) return x;
  C3_CHECK(p_ < 1, "Dropout: p must be below 1, got ", p_);
  Tensor keep = cast(gen_->bernoulli_mask(x.shape(), 1.0 - p_, x.device()), x.dtype());
  return mul(mul(x, keep), 1.0 / (1.0 - p_));
}

}  // namespace c3::nn
