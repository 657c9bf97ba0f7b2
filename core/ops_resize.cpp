#include "core/ops_resize.h"

#include "core/autograd.h"
#include "core/dispatch.h"
#include "kernels/cpu/resize.h"
#include "kernels/cuda/resize.h"

namespace c3 {
using kernels::ResizeShape;

namespace {

// Checks the input and the requested size; a rank-3 tensor (allowed for nearest) is one channel.
ResizeShape geometry(const char* op, const Tensor& x, int64_t out_h, int64_t out_w, bool allow_rank3) {
  const bool map = allow_rank3 && x.rank() == 3;
  C3_CHECK(x.rank() == 4 || map, op, ": expected ",
           allow_rank3 ? "an NHWC tensor [N,H,W,C] or a label map [N,H,W]" : "an NHWC tensor [N,H,W,C]", ", got ",
           x.desc());
  C3_CHECK(out_h >= 1 && out_w >= 1, op, ": output size ", out_h, "x", out_w, " must be at least 1x1 (input ",
           x.desc(), ")");
  const ResizeShape s{x.dim(0), x.dim(1), x.dim(2), map ? 1 : x.dim(3), out_h, out_w};
  C3_CHECK(s.h >= 1 && s.w >= 1, op, ": input ", x.desc(), " has no pixels to resize to ", out_h, "x", out_w);
  return s;
}

Shape output_shape(const Tensor& x, const ResizeShape& s) {
  if (x.rank() == 3) return {s.n, s.oh, s.ow};
  return {s.n, s.oh, s.ow, s.c};
}

void bilinear_raw(const Tensor& x, const Tensor& y, const ResizeShape& s, bool ac) {
  if (cpu_bf16(x)) {
    Tensor yf = Tensor::empty(y.shape(), DType::f32, y.device());
    bilinear_raw(widen(x), yf, s, ac);
    Tensor(y).copy_(yf.cast(DType::bf16));
    return;
  }
  if (x.is_cuda() && x.dtype() == DType::bf16)
    C3_CUDA("resize_bilinear", kernels::cuda::resize_bilinear_bf16(x.data<bf16>(), y.data<bf16>(), s, ac));
  else if (x.is_cuda()) C3_CUDA("resize_bilinear", kernels::cuda::resize_bilinear_f32(x.data<float>(), y.data<float>(), s, ac));
  else if (x.dtype() == DType::f32) kernels::cpu::resize_bilinear(x.data<float>(), y.data<float>(), s, ac);
  else kernels::cpu::resize_bilinear(x.data<double>(), y.data<double>(), s, ac);
}

// g [N,OH,OW,C] -> d(loss)/dx with x's shape.
Tensor bilinear_backward(const Tensor& g, const ResizeShape& s, bool ac, const Shape& in_shape) {
  if (cpu_bf16(g)) return bilinear_backward(widen(g), s, ac, in_shape).cast(DType::bf16);
  Tensor gx = Tensor::empty(in_shape, g.dtype(), g.device());
  if (g.is_cuda() && g.dtype() == DType::bf16)
    C3_CUDA("resize_bilinear backward",
            kernels::cuda::resize_bilinear_backward_bf16(g.data<bf16>(), gx.data<bf16>(), s, ac));
  else if (g.is_cuda())
    C3_CUDA("resize_bilinear backward",
            kernels::cuda::resize_bilinear_backward_f32(g.data<float>(), gx.data<float>(), s, ac));
  else if (g.dtype() == DType::f32) kernels::cpu::resize_bilinear_backward(g.data<float>(), gx.data<float>(), s, ac);
  else kernels::cpu::resize_bilinear_backward(g.data<double>(), gx.data<double>(), s, ac);
  return gx;
}

void nearest_raw(const Tensor& x, const Tensor& y, const ResizeShape& s) {
  if (x.is_cuda()) {
    C3_CUDA("resize_nearest", {
      switch (x.dtype()) {
        case DType::f32: kernels::cuda::resize_nearest_f32(x.data<float>(), y.data<float>(), s); break;
        case DType::i32: kernels::cuda::resize_nearest_i32(x.data<int32_t>(), y.data<int32_t>(), s); break;
        case DType::u8: kernels::cuda::resize_nearest_u8(x.data<uint8_t>(), y.data<uint8_t>(), s); break;
        case DType::f64: throw Error("resize_nearest: f64 tensors are CPU-only, got " + x.desc());
        case DType::bf16: check_not_bf16("resize_nearest", x); break;
      }
    });
    return;
  }
  switch (x.dtype()) {
    case DType::f32: kernels::cpu::resize_nearest(x.data<float>(), y.data<float>(), s); break;
    case DType::f64: kernels::cpu::resize_nearest(x.data<double>(), y.data<double>(), s); break;
    case DType::i32: kernels::cpu::resize_nearest(x.data<int32_t>(), y.data<int32_t>(), s); break;
    case DType::u8: kernels::cpu::resize_nearest(x.data<uint8_t>(), y.data<uint8_t>(), s); break;
    case DType::bf16: check_not_bf16("resize_nearest", x); break;
  }
}

Tensor nearest_backward(const Tensor& g, const ResizeShape& s, const Shape& in_shape) {
  Tensor gx = Tensor::empty(in_shape, g.dtype(), g.device());
  if (g.is_cuda())
    C3_CUDA("resize_nearest backward", kernels::cuda::resize_nearest_backward_f32(g.data<float>(), gx.data<float>(), s));
  else if (g.dtype() == DType::f32) kernels::cpu::resize_nearest_backward(g.data<float>(), gx.data<float>(), s);
  else kernels::cpu::resize_nearest_backward(g.data<double>(), gx.data<double>(), s);
  return gx;
}

}  // namespace

Tensor resize_bilinear(const Tensor& x, int64_t out_h, int64_t out_w, bool align_corners) {
  const ResizeShape s = geometry("resize_bilinear", x, out_h, out_w, false);
  check_float_or_bf16("resize_bilinear", x);
  check_cuda_float("resize_bilinear", x);
  Tensor y = Tensor::empty(output_shape(x, s), x.dtype(), x.device());
  bilinear_raw(x, y, s, align_corners);
  const Shape in_shape = x.shape();
  // The op is linear in x: its backward needs the geometry only, no saved tensor.
  record(y, "resize_bilinear", {x}, [=](const Tensor& g, const Needs&) {
    return std::vector<Tensor>{bilinear_backward(g, s, align_corners, in_shape)};
  });
  return y;
}

Tensor resize_nearest(const Tensor& x, int64_t out_h, int64_t out_w) {
  const ResizeShape s = geometry("resize_nearest", x, out_h, out_w, true);
  C3_CHECK(!x.is_cuda() || x.dtype() != DType::f64, "resize_nearest: f64 tensors are CPU-only, got ", x.desc());
  check_not_bf16("resize_nearest", x);
  Tensor y = Tensor::empty(output_shape(x, s), x.dtype(), x.device());
  nearest_raw(x, y, s);
  if (x.dtype() != DType::f32 && x.dtype() != DType::f64) return y;  // label maps carry no gradient
  const Shape in_shape = x.shape();
  record(y, "resize_nearest", {x}, [=](const Tensor& g, const Needs&) {
    return std::vector<Tensor>{nearest_backward(g, s, in_shape)};
  });
  return y;
}

}  // namespace c3
