#include "core/ops_norm.h"

#include <utility>

#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/ops_elementwise.h"
#include "kernels/cpu/norm.h"
#include "kernels/cuda/norm.h"

namespace c3 {

const char* batch_norm_mode_name(BatchNormMode mode) {
  switch (mode) {
    case BatchNormMode::train: return "train";
    case BatchNormMode::eval: return "eval";
    case BatchNormMode::frozen: return "frozen";
  }
  return "?";
}

namespace {

void check_inputs(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                  const Tensor& running_var, BatchNormMode mode, double momentum, double eps) {
  check_float_or_bf16("batch_norm", x);
  check_cuda_float("batch_norm", x);
  // bf16 activations take f32 parameters and statistics (precision table: follow).
  const DType pt = x.dtype() == DType::bf16 ? DType::f32 : x.dtype();
  C3_CHECK(x.rank() >= 2, "batch_norm: x must be [N, H, W, C] (channels last), got ", x.desc());
  const int64_t C = x.dim(-1);
  const std::pair<const char*, const Tensor*> params[] = {
      {"weight", &weight}, {"bias", &bias}, {"running_mean", &running_mean}, {"running_var", &running_var}};
  for (auto [name, t] : params) {
    C3_CHECK(t->defined(), "batch_norm: ", name, " is undefined (x ", x.desc(), ")");
    C3_CHECK(t->shape() == Shape{C} && t->dtype() == pt && t->device() == x.device(), "batch_norm: ", name,
             " ", t->desc(), " does not match x ", x.desc(), " (want ", dtype_name(pt), "[", C, "] ",
             device_name(x.device()), ")");
  }
  C3_CHECK(!running_mean.requires_grad() && !running_var.requires_grad(),
           "batch_norm: running_mean and running_var are buffers and must not require grad");
  C3_CHECK(eps > 0, "batch_norm: eps must be positive, got ", eps);
  C3_CHECK(momentum >= 0 && momentum <= 1, "batch_norm: momentum must be in [0, 1], got ", momentum);
  C3_CHECK(mode != BatchNormMode::train || x.numel() / C >= 2,
           "batch_norm: train mode needs more than one value per channel, got x ", x.desc());
}

template <class T>
void forward_cpu(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& rm, const Tensor& rv, bool train,
                 double momentum, double eps, bool relu, const Tensor& mean, const Tensor& invstd, const Tensor& scale,
                 const Tensor& y) {
  const int64_t C = x.dim(-1), M = x.numel() / C;
  if (train)
    kernels::cpu::bn_batch_stats(x.data<T>(), M, C, w.data<T>(), T(eps), T(momentum), rm.data<T>(), rv.data<T>(),
                                 mean.data<T>(), invstd.data<T>(), scale.data<T>());
  else
    kernels::cpu::bn_running_stats(rm.data<T>(), rv.data<T>(), w.data<T>(), C, T(eps), mean.data<T>(),
                                   invstd.data<T>(), scale.data<T>());
  kernels::cpu::bn_apply(x.data<T>(), M, C, mean.data<T>(), scale.data<T>(), b.data<T>(), y.data<T>(), relu);
}

void forward_cuda(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& rm, const Tensor& rv, bool train,
                  double momentum, double eps, bool relu, const Tensor& mean, const Tensor& invstd,
                  const Tensor& scale, const Tensor& y) {
  C3_CUDA("batch_norm", {
    const int64_t C = x.dim(-1), M = x.numel() / C;
    const bool h = x.dtype() == DType::bf16;  // bf16 activations, f32 statistics and parameters
    if (train && h) {
      Tensor ws = Tensor::empty({kernels::cuda::bn_workspace_floats(M, C)}, DType::f32, Device::cuda);
      kernels::cuda::bn_batch_stats_bf16(x.data<bf16>(), M, C, w.data<float>(), float(eps), float(momentum),
                                         rm.data<float>(), rv.data<float>(), mean.data<float>(), invstd.data<float>(),
                                         scale.data<float>(), ws.data<float>());
    } else if (train) {
      Tensor ws = Tensor::empty({kernels::cuda::bn_workspace_floats(M, C)}, DType::f32, Device::cuda);
      kernels::cuda::bn_batch_stats_f32(x.data<float>(), M, C, w.data<float>(), float(eps), float(momentum),
                                        rm.data<float>(), rv.data<float>(), mean.data<float>(), invstd.data<float>(),
                                        scale.data<float>(), ws.data<float>());
    } else {
      kernels::cuda::bn_running_stats_f32(rm.data<float>(), rv.data<float>(), w.data<float>(), C, float(eps),
                                          mean.data<float>(), invstd.data<float>(), scale.data<float>());
    }
    if (h)
      kernels::cuda::bn_apply_bf16(x.data<bf16>(), M, C, mean.data<float>(), scale.data<float>(), b.data<float>(),
                                   y.data<bf16>(), relu);
    else
      kernels::cuda::bn_apply_f32(x.data<float>(), M, C, mean.data<float>(), scale.data<float>(), b.data<float>(),
                                  y.data<float>(), relu);
  });
}

template <class T> T* opt(const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; }

// Gradients of the train/eval forward; a gradient not in `needs` stays undefined. relu_y: the
// output of a forward with fused ReLU (undefined: none), masking g.
std::vector<Tensor> backward(const Tensor& g, const Tensor& x, const Tensor& mean, const Tensor& invstd,
                             const Tensor& scale, bool train, const Tensor& relu_y, const Needs& needs) {
  if (cpu_bf16(g)) {
    std::vector<Tensor> r = backward(widen(g), widen(x), mean, invstd, scale, train, widen(relu_y), needs);
    if (r[0].defined()) r[0] = r[0].cast(DType::bf16);
    return r;
  }
  const int64_t C = x.dim(-1), M = x.numel() / C;
  Tensor dx = needs[0] ? Tensor::empty_like(x) : Tensor();
  Tensor dw = needs[1] ? Tensor::empty_like(mean) : Tensor();
  Tensor db = needs[2] ? Tensor::empty_like(mean) : Tensor();
  if (g.is_cuda()) {
    C3_CUDA("batch_norm backward", {
      Tensor ws = Tensor::empty({kernels::cuda::bn_workspace_floats(M, C)}, DType::f32, Device::cuda);
      if (g.dtype() == DType::bf16)
        kernels::cuda::bn_backward_bf16(g.data<bf16>(), x.data<bf16>(), M, C, mean.data<float>(), invstd.data<float>(),
                                        scale.data<float>(), train, opt<bf16>(dx), opt<float>(dw), opt<float>(db),
                                        ws.data<float>(), opt<bf16>(relu_y));
      else
        kernels::cuda::bn_backward_f32(g.data<float>(), x.data<float>(), M, C, mean.data<float>(), invstd.data<float>(),
                                     scale.data<float>(), train, opt<float>(dx), opt<float>(dw), opt<float>(db),
                                     ws.data<float>(), opt<float>(relu_y));
    });
  } else if (g.dtype() == DType::f32) {
    kernels::cpu::bn_backward(g.data<float>(), x.data<float>(), M, C, mean.data<float>(), invstd.data<float>(),
                              scale.data<float>(), train, opt<float>(dx), opt<float>(dw), opt<float>(db),
                              opt<float>(relu_y));
  } else {
    kernels::cpu::bn_backward(g.data<double>(), x.data<double>(), M, C, mean.data<double>(), invstd.data<double>(),
                              scale.data<double>(), train, opt<double>(dx), opt<double>(dw), opt<double>(db),
                              opt<double>(relu_y));
  }
  return {dx, dw, db};
}

// Frozen mode: dx = dy * scale per channel (dy masked by relu_y when defined).
Tensor scale_channels(const Tensor& g, const Tensor& scale, const Tensor& relu_y) {
  if (cpu_bf16(g)) return scale_channels(widen(g), scale, widen(relu_y)).cast(DType::bf16);
  const int64_t C = g.dim(-1), M = g.numel() / C;
  Tensor dx = Tensor::empty_like(g);
  if (g.is_cuda() && g.dtype() == DType::bf16)
    C3_CUDA("batch_norm backward", kernels::cuda::bn_apply_bf16(g.data<bf16>(), M, C, nullptr, scale.data<float>(),
                                                                 nullptr, dx.data<bf16>(), false, opt<bf16>(relu_y)));
  else if (g.is_cuda())
    C3_CUDA("batch_norm backward", kernels::cuda::bn_apply_f32(g.data<float>(), M, C, nullptr, scale.data<float>(),
                                                                nullptr, dx.data<float>(), false, opt<float>(relu_y)));
  else if (g.dtype() == DType::f32)
    kernels::cpu::bn_apply<float>(g.data<float>(), M, C, nullptr, scale.data<float>(), nullptr, dx.data<float>(),
                                  false, opt<float>(relu_y));
  else
    kernels::cpu::bn_apply<double>(g.data<double>(), M, C, nullptr, scale.data<double>(), nullptr, dx.data<double>(),
                                   false, opt<double>(relu_y));
  return dx;
}

}  // namespace

Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                  const Tensor& running_var, BatchNormMode mode, double momentum, double eps, bool relu) {
  check_inputs(x, weight, bias, running_mean, running_var, mode, momentum, eps);
  const bool train = mode == BatchNormMode::train;
  const int64_t C = x.dim(-1);
  // Per-channel statistics of this call (copies, so a later change of the running buffers
  // does not alter this call's backward).
  Tensor mean = Tensor::empty({C}, weight.dtype(), x.device()), invstd = Tensor::empty_like(mean);
  Tensor scale = Tensor::empty_like(mean), y = Tensor::empty_like(x);
  if (cpu_bf16(x)) {
    Tensor yf = Tensor::empty(x.shape(), DType::f32, x.device());
    forward_cpu<float>(widen(x), weight, bias, running_mean, running_var, train, momentum, eps, relu, mean, invstd,
                       scale, yf);
    y = yf.cast(DType::bf16);
  } else if (x.is_cuda())
    forward_cuda(x, weight, bias, running_mean, running_var, train, momentum, eps, relu, mean, invstd, scale, y);
  else if (x.dtype() == DType::f32)
    forward_cpu<float>(x, weight, bias, running_mean, running_var, train, momentum, eps, relu, mean, invstd, scale, y);
  else
    forward_cpu<double>(x, weight, bias, running_mean, running_var, train, momentum, eps, relu, mean, invstd, scale,
                        y);

  if (mode == BatchNormMode::frozen) {
    // weight and bias are not inputs of the graph: they get no gradient even if they ask.
    if (any_requires_grad({&x})) {
      Tensor ys = relu ? y.detach() : Tensor();  // the fused ReLU's mask
      record(y, relu ? "batch_norm_relu(frozen)" : "batch_norm(frozen)", {x},
             [scale, ys](const Tensor& g, const Needs&) { return std::vector<Tensor>{scale_channels(g, scale, ys)}; });
    }
    return y;
  }
  if (any_requires_grad({&x, &weight, &bias})) {
    Tensor xs = x.detach(), ys = relu ? y.detach() : Tensor();
    const char* name = relu ? (train ? "batch_norm_relu(train)" : "batch_norm_relu(eval)")
                            : (train ? "batch_norm(train)" : "batch_norm(eval)");
    record(y, name, {x, weight, bias}, [=](const Tensor& g, const Needs& needs) {
      return backward(g, xs, mean, invstd, scale, train, ys, needs);
    });
  }
  return y;
}

}  // namespace c3

namespace c3 {

FoldedConv fold_frozen_batch_norm(const Tensor& conv_weight, const Tensor& conv_bias, const Tensor& weight,
                                  const Tensor& bias, const Tensor& running_mean, const Tensor& running_var,
                                  double eps) {
  const char* op = "fold_frozen_batch_norm";
  check_float(op, conv_weight);
  check_cuda_dtype(op, conv_weight);
  C3_CHECK(conv_weight.rank() >= 1 && conv_weight.dim(0) > 0, op, ": the conv weight must be [K, ...], got ",
           conv_weight.desc());
  const int64_t K = conv_weight.dim(0), taps = conv_weight.numel() / K;
  const std::pair<const char*, const Tensor*> params[] = {{"conv bias", &conv_bias},   {"weight", &weight},
                                                          {"bias", &bias},             {"running_mean", &running_mean},
                                                          {"running_var", &running_var}};
  for (auto [name, t] : params) {
    if (t == &conv_bias && !t->defined()) continue;
    C3_CHECK(t->defined(), op, ": ", name, " is undefined (conv weight ", conv_weight.desc(), ")");
    C3_CHECK(t->shape() == Shape{K} && t->dtype() == conv_weight.dtype() && t->device() == conv_weight.device(), op,
             ": ", name, " ", t->desc(), " does not match the conv weight ", conv_weight.desc(), " (want ",
             dtype_name(conv_weight.dtype()), "[", K, "] ", device_name(conv_weight.device()), ")");
    C3_CHECK(t == &conv_bias || !t->requires_grad(), op, ": the BatchNorm's ", name,
             " requires grad: only a frozen BatchNorm (a constant affine map) folds into the conv");
  }
  C3_CHECK(eps > 0, op, ": eps must be positive, got ", eps);
  Tensor w_out = Tensor::empty(conv_weight.shape(), conv_weight.dtype(), conv_weight.device());
  Tensor b_out = Tensor::empty({K}, conv_weight.dtype(), conv_weight.device()), scale = Tensor::empty_like(b_out);
  auto run_cpu = [&]<class T>(T) {
    kernels::cpu::bn_fold(conv_weight.data<T>(), K, taps, opt<T>(conv_bias), weight.data<T>(), bias.data<T>(),
                          running_mean.data<T>(), running_var.data<T>(), T(eps), w_out.data<T>(), b_out.data<T>(),
                          scale.data<T>());
  };
  if (conv_weight.is_cuda())
    C3_CUDA(op, kernels::cuda::bn_fold_f32(conv_weight.data<float>(), K, taps, opt<float>(conv_bias),
                                           weight.data<float>(), bias.data<float>(), running_mean.data<float>(),
                                           running_var.data<float>(), float(eps), w_out.data<float>(),
                                           b_out.data<float>(), scale.data<float>()));
  else if (conv_weight.dtype() == DType::f32)
    run_cpu(float());
  else
    run_cpu(double());
  // d(w * scale[k])/dw = scale[k]: the per-sample broadcast of the elementwise mul ([K,1,..,1]).
  if (any_requires_grad({&conv_weight})) {
    Shape per_k(size_t(conv_weight.rank()), 1);
    per_k[0] = K;
    Tensor s = scale.reshape(per_k);
    record(w_out, "fold_frozen_batch_norm(weight)", {conv_weight},
           [s](const Tensor& g, const Needs&) { return std::vector<Tensor>{mul(g, s)}; });
  }
  if (any_requires_grad({&conv_bias}))
    record(b_out, "fold_frozen_batch_norm(bias)", {conv_bias},
           [scale](const Tensor& g, const Needs&) { return std::vector<Tensor>{mul(g, scale)}; });
  return {w_out, b_out};
}

}  // namespace c3
