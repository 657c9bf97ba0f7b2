#include "core/ops_conv.h"

#include <atomic>

#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/ops.h"
#include "core/precision.h"
#include "kernels/conv_math.h"
#include "kernels/cpu/conv.h"
#include "kernels/cpu/conv_dnnl.h"
#include "kernels/cuda/conv_cudnn.h"
#include "kernels/cuda/elementwise.h"

namespace c3 {
namespace {

std::atomic<bool> g_conv_allow_tf32{true};
std::atomic<size_t> g_conv_workspace_limit{size_t(1) << 30};
std::atomic<bool> g_conv_benchmark{false};
std::atomic<bool> g_conv_deterministic{false};
std::atomic<bool> g_cpu_conv_onednn{true};

[[maybe_unused]] kernels::CudnnConvOptions cudnn_options() {
  kernels::CudnnConvOptions o;
  o.allow_tf32 = conv_allow_tf32();
  o.workspace_limit = conv_workspace_limit();
  o.benchmark = conv_benchmark();
  o.deterministic = conv_deterministic();
  return o;
}

// cuDNN scratch from the caching allocator. The block goes back to the cache when `holder`
// dies, right after the call, while the GPU may still be using it: that is safe because every
// op runs on the one default stream, so the next user of the block is queued after this conv.
[[maybe_unused]] kernels::ConvWorkspaceFn workspace_into(Tensor& holder) {
  return [&holder](size_t bytes) {
    holder = Tensor::empty({static_cast<int64_t>(bytes)}, DType::u8, Device::cuda);
    return holder.raw();
  };
}

std::string conv_params(int sh, int sw, int ph, int pw, int dh, int dw) {
  return detail::concat("stride ", sh, "x", sw, ", padding ", ph, "x", pw, ", dilation ", dh, "x", dw);
}

kernels::ConvGeom check_conv(const Tensor& x, const Tensor& w, const Tensor& bias, int sh, int sw, int ph, int pw,
                             int dh, int dw) {
  check_float_or_bf16("conv2d", x);
  check_cuda_float("conv2d", x);
  check_same_device("conv2d", x, w);
  C3_CHECK(x.rank() == 4, "conv2d: the input must be NHWC [N,H,W,Cin], got ", x.desc());
  C3_CHECK(w.rank() == 4, "conv2d: the weight must be [Cout,kh,kw,Cin], got ", w.desc());
  C3_CHECK(w.dtype() == x.dtype(), "conv2d: dtype mismatch: input ", x.desc(), ", weight ", w.desc());
  C3_CHECK(w.dim(3) == x.dim(3), "conv2d: the input has ", x.dim(3), " channels but the weight expects ", w.dim(3),
           " (input ", x.desc(), ", weight [Cout,kh,kw,Cin] ", w.desc(), ")");
  C3_CHECK(x.dim(3) > 0 && w.dim(0) > 0 && w.dim(1) > 0 && w.dim(2) > 0, "conv2d: empty channels or kernel: input ",
           x.desc(), ", weight ", w.desc());
  C3_CHECK(sh >= 1 && sw >= 1 && dh >= 1 && dw >= 1 && ph >= 0 && pw >= 0,
           "conv2d: stride and dilation must be >= 1 and padding >= 0, got ", conv_params(sh, sw, ph, pw, dh, dw));
  if (bias.defined()) {
    check_same_device("conv2d (bias)", x, bias);
    C3_CHECK(bias.dtype() == x.dtype() && bias.rank() == 1 && bias.dim(0) == w.dim(0), "conv2d: the bias must be [",
             w.dim(0), "] of ", dtype_name(x.dtype()), " (one per output channel), got ", bias.desc());
  }
  const kernels::ConvGeom g = kernels::make_conv_geom(x.dim(0), x.dim(1), x.dim(2), x.dim(3), w.dim(0), w.dim(1),
                                                      w.dim(2), sh, sw, ph, pw, dh, dw);
  C3_CHECK(g.Ho > 0 && g.Wo > 0, "conv2d: the output would be empty: input ", x.desc(), ", kernel ", w.dim(1), "x",
           w.dim(2), " (spanning ", dh * (w.dim(1) - 1) + 1, "x", dw * (w.dim(2) - 1) + 1, " with dilation), ",
           conv_params(sh, sw, ph, pw, dh, dw));
  return g;
}

// The GPU epilogue after a cuDNN convolution, in place over y [P, K]: + bias per channel,
// then the ReLU when asked; one elementwise kernel, or none.
void epilogue_cuda(const Tensor& y, const Tensor& bias, bool relu, int64_t K) {
  using kernels::Bcast, kernels::Binary, kernels::Unary;
  const int64_t n = y.numel();
  const Binary op = relu ? Binary::add_relu : Binary::add;
  C3_CUDA("conv2d", {
    if (y.dtype() == DType::bf16) {
      if (bias.defined())
        kernels::cuda::binary_bf16(op, y.data<bf16>(), bias.data<bf16>(), y.data<bf16>(), n, Bcast::channel, K);
      else if (relu)
        kernels::cuda::unary_bf16(Unary::relu, y.data<bf16>(), y.data<bf16>(), n, 0.f, 0.f);
    } else {
      if (bias.defined())  // out[i] = y[i] + bias[i % Cout] (then relu)
        kernels::cuda::binary_f32(op, y.data<float>(), bias.data<float>(), y.data<float>(), n, Bcast::channel, K);
      else if (relu)
        kernels::cuda::unary_f32(Unary::relu, y.data<float>(), y.data<float>(), n, 0.f, 0.f);
    }
  });
}

// `training`: a gradient will be asked for (oneDNN may pick another kernel for inference).
Tensor forward(const Tensor& x, const Tensor& w, const Tensor& bias, const kernels::ConvGeom& g, bool relu,
               bool training) {
  // bf16 on the CPU: widen, compute in f32 (the ReLU included), round once.
  if (cpu_bf16(x)) return forward(widen(x), widen(w), widen(bias), g, relu, training).cast(DType::bf16);
  Tensor y = Tensor::empty({g.N, g.Ho, g.Wo, g.K}, x.dtype(), x.device());
  if (x.is_cuda()) {
    C3_CUDA("conv2d", {
      Tensor ws;
      if (x.dtype() == DType::bf16) {
        kernels::cuda::conv2d_forward_bf16(x.data<bf16>(), w.data<bf16>(), y.data<bf16>(), g, cudnn_options(),
                                           workspace_into(ws));
      } else if (relu && bias.defined() &&
                 kernels::cuda::conv2d_forward_bias_relu_f32(x.data<float>(), w.data<float>(), bias.data<float>(),
                                                             y.data<float>(), g, cudnn_options(),
                                                             workspace_into(ws))) {
        return y;  // cuDNN's fused conv + bias + ReLU ran
      } else {
        kernels::cuda::conv2d_forward_f32(x.data<float>(), w.data<float>(), y.data<float>(), g, cudnn_options(),
                                          workspace_into(ws));
      }
    });
    epilogue_cuda(y, bias, relu, g.K);
  } else if (x.dtype() == DType::f32 && cpu_conv_onednn()) {
    kernels::cpu::dnnl_conv::forward(x.data<float>(), w.data<float>(), bias.defined() ? bias.data<float>() : nullptr,
                                     y.data<float>(), g, relu, training);
  } else if (x.dtype() == DType::f32) {
    kernels::cpu::conv2d_forward(x.data<float>(), w.data<float>(), bias.defined() ? bias.data<float>() : nullptr,
                                 y.data<float>(), g, relu);
  } else {
    kernels::cpu::conv2d_forward(x.data<double>(), w.data<double>(), bias.defined() ? bias.data<double>() : nullptr,
                                 y.data<double>(), g, relu);
  }
  return y;
}

// Writes dx (when `want_dx`) and dw (when `want_dw`); x is read only for dw, w only for dx.
void backward(const Tensor& x, const Tensor& w, const Tensor& dy, const kernels::ConvGeom& g, Tensor& dx,
              Tensor& dw, bool want_dx, bool want_dw) {
  if (cpu_bf16(dy)) {
    backward(widen(x), widen(w), widen(dy), g, dx, dw, want_dx, want_dw);
    if (want_dx) dx = dx.cast(DType::bf16);
    if (want_dw) dw = dw.cast(DType::bf16);
    return;
  }
  const DType dt = dy.dtype();
  if (want_dx) dx = Tensor::empty({g.N, g.H, g.W, g.C}, dt, dy.device());
  if (want_dw) dw = Tensor::empty({g.K, g.kh, g.kw, g.C}, dt, dy.device());
  if (dy.is_cuda()) {
    C3_CUDA("conv2d backward", {
      check_cuda_float("conv2d backward", dy);
      Tensor ws;
      if (dt == DType::bf16) {
        if (want_dx)
          kernels::cuda::conv2d_backward_data_bf16(dy.data<bf16>(), w.data<bf16>(), dx.data<bf16>(), g,
                                                   cudnn_options(), workspace_into(ws));
        if (want_dw)
          kernels::cuda::conv2d_backward_filter_bf16(x.data<bf16>(), dy.data<bf16>(), dw.data<bf16>(), g,
                                                     cudnn_options(), workspace_into(ws));
        return;
      }
      if (want_dx)
        kernels::cuda::conv2d_backward_data_f32(dy.data<float>(), w.data<float>(), dx.data<float>(), g,
                                                cudnn_options(), workspace_into(ws));
      if (want_dw)
        kernels::cuda::conv2d_backward_filter_f32(x.data<float>(), dy.data<float>(), dw.data<float>(), g,
                                                  cudnn_options(), workspace_into(ws));
    });
  } else if (dt == DType::f32 && cpu_conv_onednn()) {
    kernels::cpu::dnnl_conv::backward(want_dw ? x.data<float>() : nullptr, want_dx ? w.data<float>() : nullptr,
                                      dy.data<float>(), want_dx ? dx.data<float>() : nullptr,
                                      want_dw ? dw.data<float>() : nullptr, g);
  } else if (dt == DType::f32) {
    kernels::cpu::conv2d_backward(want_dw ? x.data<float>() : nullptr, want_dx ? w.data<float>() : nullptr,
                                  dy.data<float>(), want_dx ? dx.data<float>() : nullptr,
                                  want_dw ? dw.data<float>() : nullptr, g);
  } else {
    kernels::cpu::conv2d_backward(want_dw ? x.data<double>() : nullptr, want_dx ? w.data<double>() : nullptr,
                                  dy.data<double>(), want_dx ? dx.data<double>() : nullptr,
                                  want_dw ? dw.data<double>() : nullptr, g);
  }
}

}  // namespace

Tensor conv2d(const Tensor& x_in, const Tensor& w_in, const Tensor& bias_in, int stride_h, int stride_w, int pad_h,
              int pad_w, int dil_h, int dil_w, bool relu) {
  // lower in the precision table: under autocast, bf16 input, weight and bias.
  const Tensor x = precision_input("conv2d", x_in), w = precision_input("conv2d", w_in);
  const Tensor bias = precision_input("conv2d", bias_in);
  const kernels::ConvGeom g = check_conv(x, w, bias, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w);
  const bool training = any_requires_grad({&x, &w, &bias});
  Tensor y = forward(x, w, bias, g, relu, training);
  if (!training) return y;
  // dx needs only w, dw needs only x, the bias gradient needs neither; the fused ReLU's mask is y.
  Tensor sx = w.requires_grad() ? x.detach() : Tensor();
  Tensor sw = x.requires_grad() ? w.detach() : Tensor();
  Tensor sy = relu ? y.detach() : Tensor();
  // One node name with or without the ReLU: graph walkers (bench_step's FLOP count) find convs by it.
  record(y, "conv2d", {x, w, bias}, [=](const Tensor& dy_in, const Needs& needs) {
    const Tensor dy = relu ? relu_grad_from_output(dy_in, sy) : dy_in;
    Tensor dx, dw, db;
    if (needs[0] || needs[1]) backward(sx, sw, dy, g, dx, dw, needs[0], needs[1]);
    if (needs[2]) db = sum_mid(dy, 1, g.out_pixels(), g.K, {g.K});  // sum over N, Ho, Wo
    return std::vector<Tensor>{dx, dw, db};
  });
  return y;
}

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, int stride, int pad, int dilation, bool relu) {
  return conv2d(x, w, bias, stride, stride, pad, pad, dilation, dilation, relu);
}

void set_conv_allow_tf32(bool on) { g_conv_allow_tf32.store(on, std::memory_order_relaxed); }
bool conv_allow_tf32() { return g_conv_allow_tf32.load(std::memory_order_relaxed); }
void set_conv_workspace_limit(size_t bytes) { g_conv_workspace_limit.store(bytes, std::memory_order_relaxed); }
size_t conv_workspace_limit() { return g_conv_workspace_limit.load(std::memory_order_relaxed); }
void set_cpu_conv_onednn(bool on) { g_cpu_conv_onednn.store(on, std::memory_order_relaxed); }
bool cpu_conv_onednn() { return g_cpu_conv_onednn.load(std::memory_order_relaxed); }
void set_conv_benchmark(bool on) { g_conv_benchmark.store(on, std::memory_order_relaxed); }
bool conv_benchmark() { return g_conv_benchmark.load(std::memory_order_relaxed); }
void set_conv_deterministic(bool on) { g_conv_deterministic.store(on, std::memory_order_relaxed); }
bool conv_deterministic() { return g_conv_deterministic.load(std::memory_order_relaxed); }

}  // namespace c3
