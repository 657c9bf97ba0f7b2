#include "core/ops_reduce.h"

#include <cstdint>

#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/ops.h"
#include "core/precision.h"
#include "kernels/cpu/reduce.h"
#include "kernels/cuda/reduce.h"

namespace c3 {

namespace {
Tensor sum_mid_raw(const Tensor& x, int64_t outer, int64_t mid, int64_t inner, const Shape& out_shape) {
  if (x.is_cuda()) {
    // f32 or bf16 in, summed in f32 (bf16: rounded once at the end), over enough blocks to
    // fill the GPU (the partial sums in `scratch`).
    check_cuda_float("sum", x);
    C3_CHECK(inner == 1 || outer <= 65535, "sum: too many outer slices (", outer, ") for the CUDA kernel");
    Tensor out = Tensor::empty(out_shape, DType::f32, x.device()), scratch;
    if (const int64_t n = kernels::sum_mid_scratch(outer, mid, inner)) scratch = Tensor::empty({n}, DType::f32, x.device());
    C3_CUDA("sum", {
      float* part = scratch.defined() ? scratch.data<float>() : nullptr;
      if (x.dtype() == DType::bf16)
        kernels::cuda::sum_mid_bf16(x.data<bf16>(), out.data<float>(), outer, mid, inner, part);
      else
        kernels::cuda::sum_mid_f32(x.data<float>(), out.data<float>(), outer, mid, inner, part);
    });
    return x.dtype() == DType::bf16 ? out.cast(DType::bf16) : out;
  }
  // bf16 on the CPU: summed in f32, rounded once.
  if (x.dtype() == DType::bf16) return sum_mid_raw(widen(x), outer, mid, inner, out_shape).cast(DType::bf16);
  Tensor out = Tensor::empty(out_shape, x.dtype(), x.device());
  if (x.dtype() == DType::f32) {
    kernels::cpu::sum_mid(x.data<float>(), out.data<float>(), outer, mid, inner);
  } else {
    kernels::cpu::sum_mid(x.data<double>(), out.data<double>(), outer, mid, inner);
  }
  return out;
}

Tensor broadcast_mid_raw(const Tensor& x, int64_t outer, int64_t mid, int64_t inner, const Shape& out_shape) {
  if (x.is_cuda()) {
    check_cuda_float("broadcast", x);
    Tensor out = Tensor::empty(out_shape, x.dtype(), x.device());
    C3_CUDA("broadcast", {
      if (x.dtype() == DType::bf16)
        kernels::cuda::broadcast_mid_bf16(x.data<bf16>(), out.data<bf16>(), outer, mid, inner);
      else
        kernels::cuda::broadcast_mid_f32(x.data<float>(), out.data<float>(), outer, mid, inner);
    });
    return out;
  }
  if (x.dtype() == DType::bf16) return broadcast_mid_raw(widen(x), outer, mid, inner, out_shape).cast(DType::bf16);
  Tensor out = Tensor::empty(out_shape, x.dtype(), x.device());
  if (x.dtype() == DType::f32)
    kernels::cpu::broadcast_mid(x.data<float>(), out.data<float>(), outer, mid, inner);
  else
    kernels::cpu::broadcast_mid(x.data<double>(), out.data<double>(), outer, mid, inner);
  return out;
}
}  // namespace

// bf16: summed in f32, rounded once.
Tensor sum_mid(const Tensor& x, int64_t outer, int64_t mid, int64_t inner, const Shape& out_shape) {
  check_float_or_bf16("sum", x);
  C3_CHECK(outer * mid * inner == x.numel() && shape_numel(out_shape) == outer * inner, "sum: view [", outer, ",",
           mid, ",", inner, "] -> ", shape_str(out_shape), " does not fit ", x.desc());
  Tensor out = sum_mid_raw(x, outer, mid, inner, out_shape);
  Shape in_shape = x.shape();
  record(out, "sum", {x}, [=](const Tensor& g, const Needs&) {
    return std::vector<Tensor>{broadcast_mid(g, outer, mid, inner, in_shape)};
  });
  return out;
}

Tensor broadcast_mid(const Tensor& x, int64_t outer, int64_t mid, int64_t inner, const Shape& out_shape) {
  check_float_or_bf16("broadcast", x);
  C3_CHECK(outer * inner == x.numel() && shape_numel(out_shape) == outer * mid * inner, "broadcast: [", outer, ",",
           inner, "] -> [", outer, ",", mid, ",", inner, "] does not fit ", x.desc(), " -> ", shape_str(out_shape));
  Tensor out = broadcast_mid_raw(x, outer, mid, inner, out_shape);
  Shape in_shape = x.shape();
  record(out, "broadcast", {x}, [=](const Tensor& g, const Needs&) {
    return std::vector<Tensor>{sum_mid(g, outer, mid, inner, in_shape)};
  });
  return out;
}

Tensor sum(const Tensor& x) { return sum_mid(x, 1, x.numel(), 1, {}); }

namespace {
// Which dims of x are reduced; checks range and repeats.
std::vector<bool> reduced_dims(const char* op, const Tensor& x, const std::vector<int>& dims) {
  const int r = x.rank();
  C3_CHECK(!dims.empty(), op, ": no dims given for ", x.desc(), " (use ", op, "(x) to reduce all)");
  std::vector<bool> red(static_cast<size_t>(r), false);
  for (int d : dims) {
    C3_CHECK(d >= -r && d < r, op, ": dim ", d, " out of range for ", x.desc());
    const int k = d < 0 ? d + r : d;
    C3_CHECK(!red[k], op, ": dim ", d, " given twice for ", x.desc());
    red[k] = true;
  }
  return red;
}
int64_t prod(const Shape& s, int from, int to) {
  int64_t p = 1;
  for (int i = from; i < to; ++i) p *= s[i];
  return p;
}
}  // namespace

Tensor sum(const Tensor& x, const std::vector<int>& dims, bool keepdim) {
  const std::vector<bool> red = reduced_dims("sum", x, dims);
  const int r = x.rank();
  // Reduce each maximal run of adjacent dims, keeping it as size 1 so the indices of the
  // other runs stay valid; the last run first, so each view is [outer, run, inner].
  Tensor y = x;
  Shape cur = x.shape();
  for (int b = r - 1; b >= 0; --b) {
    if (!red[b]) continue;
    int a = b;
    while (a > 0 && red[a - 1]) --a;
    Shape next = cur;
    for (int k = a; k <= b; ++k) next[k] = 1;
    y = sum_mid(y, prod(cur, 0, a), prod(cur, a, b + 1), prod(cur, b + 1, r), next);
    cur = next;
    b = a;
  }
  if (keepdim) return y;
  Shape out;
  for (int k = 0; k < r; ++k)
    if (!red[k]) out.push_back(cur[k]);
  return y.reshape(out);
}

Tensor mean(const Tensor& x) { return mul(sum(x), 1.0 / static_cast<double>(x.numel())); }

Tensor mean(const Tensor& x, const std::vector<int>& dims, bool keepdim) {
  const std::vector<bool> red = reduced_dims("mean", x, dims);
  int64_t count = 1;
  for (int k = 0; k < x.rank(); ++k)
    if (red[k]) count *= x.shape()[k];
  return mul(sum(x, dims, keepdim), 1.0 / static_cast<double>(count));
}

namespace {
// Shared by max_channels and argmax_channels: [..., C] -> values (optional) and indices.
void max_over_channels(const char* op, const Tensor& x, const Tensor& vals, const Tensor& idx) {
  const int64_t C = x.dim(-1), rows = idx.numel();
  if (x.is_cuda()) {
    C3_CUDA(op, kernels::cuda::max_channels_f32(x.data<float>(), vals.defined() ? vals.data<float>() : nullptr,
                                                 idx.data<int32_t>(), rows, C));
  } else if (x.dtype() == DType::f32) {
    kernels::cpu::max_channels(x.data<float>(), vals.defined() ? vals.data<float>() : nullptr,
                               idx.data<int32_t>(), rows, C);
  } else {
    kernels::cpu::max_channels(x.data<double>(), vals.defined() ? vals.data<double>() : nullptr,
                               idx.data<int32_t>(), rows, C);
  }
}
Shape channel_reduced_shape(const char* op, const Tensor& x) {
  check_float_or_bf16(op, x);
  C3_CHECK(x.rank() >= 1 && x.dim(-1) >= 1, op, ": needs a last (channel) dim of size >= 1, got ", x.desc());
  C3_CHECK(x.dim(-1) <= INT32_MAX, op, ": too many channels for i32 indices: ", x.desc());
  return Shape(x.shape().begin(), x.shape().end() - 1);
}
}  // namespace

Tensor max_channels(const Tensor& x) {
  const Shape s = channel_reduced_shape("max_channels", x);
  check_float("max_channels", x);
  check_cuda_dtype("max_channels", x);
  Tensor vals = Tensor::empty(s, x.dtype(), x.device());
  Tensor idx = Tensor::empty(s, DType::i32, x.device());
  max_over_channels("max_channels", x, vals, idx);
  if (!any_requires_grad({&x})) return vals;
  const Shape in_shape = x.shape();
  record(vals, "max_channels", {x}, [idx, in_shape](const Tensor& g, const Needs&) {
    Tensor gx = Tensor::empty(in_shape, g.dtype(), g.device());
    const int64_t C = in_shape.back(), rows = g.numel();
    if (g.is_cuda())
      C3_CUDA("max_channels backward", kernels::cuda::max_channels_backward_f32(
                                             g.data<float>(), idx.data<int32_t>(), gx.data<float>(), rows, C));
    else if (g.dtype() == DType::f32)
      kernels::cpu::max_channels_backward(g.data<float>(), idx.data<int32_t>(), gx.data<float>(), rows, C);
    else
      kernels::cpu::max_channels_backward(g.data<double>(), idx.data<int32_t>(), gx.data<double>(), rows, C);
    return std::vector<Tensor>{gx};
  });
  return vals;
}

Tensor argmax_channels(const Tensor& x) {
  const Shape s = channel_reduced_shape("argmax_channels", x);
  Tensor idx = Tensor::empty(s, DType::i32, x.device());
  const Tensor xf = precision_input("argmax_channels", x);  // f32: exact for bf16 values
  check_cuda_dtype("argmax_channels", xf);
  max_over_channels("argmax_channels", xf, Tensor(), idx);
  return idx;
}

}  // namespace c3
