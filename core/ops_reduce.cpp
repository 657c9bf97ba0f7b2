#include "core/ops_reduce.h"

#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/ops.h"
#include "kernels/cpu/reduce.h"
#include "kernels/cuda/reduce.h"

namespace c3 {

Tensor sum_mid(const Tensor& x, int64_t outer, int64_t mid, int64_t inner, const Shape& out_shape) {
  check_float("sum", x);
  check_cuda_dtype("sum", x);
  C3_CHECK(outer * mid * inner == x.numel() && shape_numel(out_shape) == outer * inner, "sum: view [", outer, ",",
           mid, ",", inner, "] -> ", shape_str(out_shape), " does not fit ", x.desc());
  Tensor out = Tensor::empty(out_shape, x.dtype(), x.device());
  if (x.is_cuda()) {
    C3_CHECK(inner == 1 || outer <= 65535, "sum: too many outer slices (", outer, ") for the CUDA kernel");
    C3_CUDA("sum", kernels::cuda::sum_mid_f32(x.data<float>(), out.data<float>(), outer, mid, inner));
  } else if (x.dtype() == DType::f32) {
    kernels::cpu::sum_mid(x.data<float>(), out.data<float>(), outer, mid, inner);
  } else {
    kernels::cpu::sum_mid(x.data<double>(), out.data<double>(), outer, mid, inner);
  }
  Shape in_shape = x.shape();
  record(out, "sum", {x}, [=](const Tensor& g, const Needs&) {
    return std::vector<Tensor>{broadcast_mid(g, outer, mid, inner, in_shape)};
  });
  return out;
}

Tensor broadcast_mid(const Tensor& x, int64_t outer, int64_t mid, int64_t inner, const Shape& out_shape) {
  check_float("broadcast", x);
  check_cuda_dtype("broadcast", x);
  C3_CHECK(outer * inner == x.numel() && shape_numel(out_shape) == outer * mid * inner, "broadcast: [", outer, ",",
           inner, "] -> [", outer, ",", mid, ",", inner, "] does not fit ", x.desc(), " -> ", shape_str(out_shape));
  Tensor out = Tensor::empty(out_shape, x.dtype(), x.device());
  if (x.is_cuda())
    C3_CUDA("broadcast", kernels::cuda::broadcast_mid_f32(x.data<float>(), out.data<float>(), outer, mid, inner));
  else if (x.dtype() == DType::f32)
    kernels::cpu::broadcast_mid(x.data<float>(), out.data<float>(), outer, mid, inner);
  else
    kernels::cpu::broadcast_mid(x.data<double>(), out.data<double>(), outer, mid, inner);
  Shape in_shape = x.shape();
  record(out, "broadcast", {x}, [=](const Tensor& g, const Needs&) {
    return std::vector<Tensor>{sum_mid(g, outer, mid, inner, in_shape)};
  });
  return out;
}

Tensor sum(const Tensor& x) { return sum_mid(x, 1, x.numel(), 1, {}); }

}  // namespace c3
