#include "core/ops_pool.h"

#include <limits>

#include "core/autograd.h"
#include "core/dispatch.h"
#include "kernels/cpu/pool.h"
#include "kernels/cuda/pool.h"

namespace c3 {
namespace {

kernels::PoolGeom max_pool_geometry(const Tensor& x, int k, int s, int p, bool ceil_mode) {
  C3_CHECK(x.rank() == 4, "max_pool2d: x must be [N, H, W, C], got ", x.desc());
  C3_CHECK(k >= 1 && s >= 1 && p >= 0, "max_pool2d: kernel ", k, ", stride ", s, ", padding ", p,
           ": kernel and stride must be >= 1, padding >= 0");
  C3_CHECK(2 * p <= k, "max_pool2d: padding ", p, " exceeds half the kernel size ", k);
  const int64_t H = x.dim(1), W = x.dim(2);
  C3_CHECK(H + 2 * p >= k && W + 2 * p >= k, "max_pool2d: window ", k, " (padding ", p, ") larger than the input ",
           x.desc());
  C3_CHECK(H * W <= std::numeric_limits<int32_t>::max(), "max_pool2d: ", x.desc(),
           " has too many pixels per image for i32 argmax indices");
  kernels::PoolGeom g{x.dim(0), H, W, x.dim(3), 0, 0, k, s, p};
  g.Ho = kernels::pool_out_size(H, k, s, p, ceil_mode);
  g.Wo = kernels::pool_out_size(W, k, s, p, ceil_mode);
  return g;
}

Tensor max_pool_backward(const Tensor& g, const Tensor& argmax, const kernels::PoolGeom& geom) {
  if (cpu_bf16(g)) return max_pool_backward(widen(g), argmax, geom).cast(DType::bf16);
  Tensor dx = Tensor::empty({geom.N, geom.H, geom.W, geom.C}, g.dtype(), g.device());
  if (g.is_cuda() && g.dtype() == DType::bf16)
    C3_CUDA("max_pool2d backward", kernels::cuda::max_pool2d_backward_bf16(g.data<bf16>(), argmax.data<int32_t>(),
                                                                           geom, dx.data<bf16>()));
  else if (g.is_cuda())
    C3_CUDA("max_pool2d backward", kernels::cuda::max_pool2d_backward_f32(g.data<float>(), argmax.data<int32_t>(),
                                                                          geom, dx.data<float>()));
  else if (g.dtype() == DType::f32)
    kernels::cpu::max_pool2d_backward(g.data<float>(), argmax.data<int32_t>(), geom, dx.data<float>());
  else
    kernels::cpu::max_pool2d_backward(g.data<double>(), argmax.data<int32_t>(), geom, dx.data<double>());
  return dx;
}

Tensor avg_pool_backward(const Tensor& g, const Shape& in_shape) {
  if (cpu_bf16(g)) return avg_pool_backward(widen(g), in_shape).cast(DType::bf16);
  const int64_t N = in_shape[0], HW = in_shape[1] * in_shape[2], C = in_shape[3];
  Tensor dx = Tensor::empty(in_shape, g.dtype(), g.device());
  if (g.is_cuda() && g.dtype() == DType::bf16)
    C3_CUDA("global_avg_pool backward",
            kernels::cuda::global_avg_pool_backward_bf16(g.data<bf16>(), N, HW, C, dx.data<bf16>()));
  else if (g.is_cuda())
    C3_CUDA("global_avg_pool backward",
            kernels::cuda::global_avg_pool_backward_f32(g.data<float>(), N, HW, C, dx.data<float>()));
  else if (g.dtype() == DType::f32)
    kernels::cpu::global_avg_pool_backward(g.data<float>(), N, HW, C, dx.data<float>());
  else
    kernels::cpu::global_avg_pool_backward(g.data<double>(), N, HW, C, dx.data<double>());
  return dx;
}

// y and its argmax (i32, same shape)
std::pair<Tensor, Tensor> max_pool_forward(const Tensor& x, const kernels::PoolGeom& g) {
  if (cpu_bf16(x)) {
    auto [y, argmax] = max_pool_forward(widen(x), g);
    return {y.cast(DType::bf16), argmax};
  }
  check_cuda_float("max_pool2d", x);
  Tensor y = Tensor::empty({g.N, g.Ho, g.Wo, g.C}, x.dtype(), x.device());
  Tensor argmax = Tensor::empty(y.shape(), DType::i32, x.device());
  if (x.is_cuda() && x.dtype() == DType::bf16)
    C3_CUDA("max_pool2d", kernels::cuda::max_pool2d_bf16(x.data<bf16>(), g, y.data<bf16>(), argmax.data<int32_t>()));
  else if (x.is_cuda())
    C3_CUDA("max_pool2d", kernels::cuda::max_pool2d_f32(x.data<float>(), g, y.data<float>(), argmax.data<int32_t>()));
  else if (x.dtype() == DType::f32)
    kernels::cpu::max_pool2d(x.data<float>(), g, y.data<float>(), argmax.data<int32_t>());
  else
    kernels::cpu::max_pool2d(x.data<double>(), g, y.data<double>(), argmax.data<int32_t>());
  return {y, argmax};
}

Tensor avg_pool_forward(const Tensor& x) {
  if (cpu_bf16(x)) return avg_pool_forward(widen(x)).cast(DType::bf16);
  check_cuda_float("global_avg_pool", x);
  const int64_t N = x.dim(0), HW = x.dim(1) * x.dim(2), C = x.dim(3);
  Tensor y = Tensor::empty({N, 1, 1, C}, x.dtype(), x.device());
  if (x.is_cuda()) {
    C3_CHECK(N <= 65535, "global_avg_pool: batch ", N, " too large for the CUDA kernel (at most 65535)");
    if (x.dtype() == DType::bf16)
      C3_CUDA("global_avg_pool", kernels::cuda::global_avg_pool_bf16(x.data<bf16>(), N, HW, C, y.data<bf16>()));
    else
      C3_CUDA("global_avg_pool", kernels::cuda::global_avg_pool_f32(x.data<float>(), N, HW, C, y.data<float>()));
  } else if (x.dtype() == DType::f32) {
    kernels::cpu::global_avg_pool(x.data<float>(), N, HW, C, y.data<float>());
  } else {
    kernels::cpu::global_avg_pool(x.data<double>(), N, HW, C, y.data<double>());
  }
  return y;
}

}  // namespace

Tensor max_pool2d(const Tensor& x, int kernel, int stride, int padding, bool ceil_mode) {
  check_float_or_bf16("max_pool2d", x);
  const kernels::PoolGeom g = max_pool_geometry(x, kernel, stride, padding, ceil_mode);
  auto [y, argmax] = max_pool_forward(x, g);
  record(y, "max_pool2d", {x}, [argmax, g](const Tensor& grad, const Needs&) {
    return std::vector<Tensor>{max_pool_backward(grad, argmax, g)};
  });
  return y;
}

Tensor global_avg_pool(const Tensor& x) {
  check_float_or_bf16("global_avg_pool", x);
  C3_CHECK(x.rank() == 4, "global_avg_pool: x must be [N, H, W, C], got ", x.desc());
  C3_CHECK(x.dim(1) * x.dim(2) > 0, "global_avg_pool: no pixels to average in ", x.desc());
  Tensor y = avg_pool_forward(x);
  Shape in_shape = x.shape();
  record(y, "global_avg_pool", {x}, [in_shape](const Tensor& g, const Needs&) {
    return std::vector<Tensor>{avg_pool_backward(g, in_shape)};
  });
  return y;
}

}  // namespace c3
