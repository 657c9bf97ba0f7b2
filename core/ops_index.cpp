#include "core/ops_index.h"

#include <string>

#include "core/autograd.h"
#include "core/deferred_checks.h"
#include "core/dispatch.h"
#include "core/precision.h"
#include "kernels/cpu/index.h"
#include "kernels/cuda/index.h"

namespace c3 {
namespace {

// Element views of a contiguous tensor along `dim`: [outer, size(dim), inner].
struct DimView {
  int64_t outer = 1, size = 1, inner = 1;
};
DimView dim_view(const Shape& s, int d) {
  DimView v;
  for (int i = 0; i < d; ++i) v.outer *= s[i];
  v.size = s[d];
  for (size_t i = d + 1; i < s.size(); ++i) v.inner *= s[i];
  return v;
}

int normalize_dim(const char* op, const Tensor& x, int dim) {
  const int r = x.rank();
  C3_CHECK(r >= 1 && dim >= -r && dim < r, op, ": dim ", dim, " out of range for ", x.desc());
  return dim < 0 ? dim + r : dim;
}

// dst[r * dst_stride + i] = src[r * src_stride + i], offsets in elements; any CPU dtype.
void copy_rows(const Tensor& src, int64_t src_off, int64_t src_stride, const Tensor& dst, int64_t dst_off,
               int64_t dst_stride, int64_t rows, int64_t len) {
  if (dst.is_cuda() && dst.dtype() == DType::bf16) {
    C3_CUDA("copy_rows", kernels::cuda::copy_rows_bf16(src.data<bf16>() + src_off, src_stride,
                                                       dst.data<bf16>() + dst_off, dst_stride, rows, len));
    return;
  }
  if (dst.is_cuda()) {
    C3_CUDA("copy_rows", kernels::cuda::copy_rows_f32(src.data<float>() + src_off, src_stride,
                                                      dst.data<float>() + dst_off, dst_stride, rows, len));
    return;
  }
  switch (dst.dtype()) {
    case DType::f32: kernels::cpu::copy_rows(src.data<float>() + src_off, src_stride, dst.data<float>() + dst_off, dst_stride, rows, len); break;
    case DType::f64: kernels::cpu::copy_rows(src.data<double>() + src_off, src_stride, dst.data<double>() + dst_off, dst_stride, rows, len); break;
    case DType::i32: kernels::cpu::copy_rows(src.data<int32_t>() + src_off, src_stride, dst.data<int32_t>() + dst_off, dst_stride, rows, len); break;
    case DType::u8: kernels::cpu::copy_rows(src.data<uint8_t>() + src_off, src_stride, dst.data<uint8_t>() + dst_off, dst_stride, rows, len); break;
    case DType::bf16: kernels::cpu::copy_rows(src.data<bf16>() + src_off, src_stride, dst.data<bf16>() + dst_off, dst_stride, rows, len); break;
  }
}

// The entries [start, start + length) of dim d of x, no autograd.
Tensor slice_raw(const Tensor& x, int d, int64_t start, int64_t length) {
  const DimView v = dim_view(x.shape(), d);
  Shape s = x.shape();
  s[d] = length;
  Tensor out = Tensor::empty(s, x.dtype(), x.device());
  copy_rows(x, start * v.inner, v.size * v.inner, out, 0, length * v.inner, v.outer, length * v.inner);
  return out;
}

std::string shapes_str(const std::vector<Tensor>& xs) {
  std::string s;
  for (const Tensor& x : xs) s += (s.empty() ? "" : ", ") + x.desc();
  return s;
}

void check_index_tensor(const char* op, const Tensor& x, const Tensor& idx) {
  check_dtype(op, idx, DType::i32);
  C3_CHECK(idx.rank() == 1, op, ": indices must be 1-D, got ", idx.desc());
  check_same_device(op, x, idx);
}

}  // namespace

Tensor concat(const std::vector<Tensor>& xs, int dim) {
  C3_CHECK(!xs.empty(), "concat: no tensors");
  const Tensor& x0 = xs[0];
  const int d = normalize_dim("concat", x0, dim);
  check_cuda_float("concat", x0);
  Shape s = x0.shape();
  s[d] = 0;
  for (const Tensor& x : xs) {
    check_same_device("concat", x0, x);
    bool ok = x.dtype() == x0.dtype() && x.rank() == x0.rank();
    for (int i = 0; ok && i < x0.rank(); ++i) ok = i == d || x.shape()[i] == x0.shape()[i];
    C3_CHECK(ok, "concat along dim ", dim, ": tensors differ outside that dim: ", shapes_str(xs));
    s[d] += x.shape()[d];
  }
  Tensor out = Tensor::empty(s, x0.dtype(), x0.device());
  const DimView ov = dim_view(s, d);
  // Input k fills entries [starts[k], starts[k] + sizes[k]) of dim d: in the [outer, size * inner]
  // view of the output, a block of sizes[k] * inner columns of every row.
  std::vector<int64_t> starts, sizes;
  int64_t at = 0;
  for (const Tensor& x : xs) {
    const int64_t len = x.shape()[d] * ov.inner;
    copy_rows(x, 0, len, out, at * ov.inner, ov.size * ov.inner, ov.outer, len);
    starts.push_back(at);
    sizes.push_back(x.shape()[d]);
    at += x.shape()[d];
  }
  record(out, "concat", xs, [=](const Tensor& g, const Needs& needs) {
    std::vector<Tensor> gs(needs.size());
    for (size_t k = 0; k < needs.size(); ++k)
      if (needs[k]) gs[k] = slice_raw(g, d, starts[k], sizes[k]);
    return gs;
  });
  return out;
}

Tensor slice(const Tensor& x, int dim, int64_t start, int64_t length) {
  const int d = normalize_dim("slice", x, dim);
  check_cuda_float("slice", x);
  C3_CHECK(start >= 0 && length >= 0 && start + length <= x.shape()[d], "slice(dim ", dim, ", start ", start,
           ", length ", length, "): out of range for ", x.desc());
  Tensor out = slice_raw(x, d, start, length);
  const Shape in_shape = x.shape();
  record(out, "slice", {x}, [=](const Tensor& g, const Needs&) {
    // The gradient of a slice is zero outside it: write g into a zeroed tensor of x's shape.
    Tensor gx = Tensor::zeros(in_shape, g.dtype(), g.device());
    const DimView v = dim_view(in_shape, d);
    copy_rows(g, 0, length * v.inner, gx, start * v.inner, v.size * v.inner, v.outer, length * v.inner);
    return std::vector<Tensor>{gx};
  });
  return out;
}

Tensor l2_normalize(const Tensor& x_in, double eps) {
  const Tensor x = precision_input("l2_normalize", x_in);
  C3_CHECK(x.rank() >= 1, "l2_normalize: needs at least one dim, got ", x.desc());
  C3_CHECK(eps > 0, "l2_normalize: eps must be positive, got ", eps);
  check_float("l2_normalize", x);
  check_cuda_dtype("l2_normalize", x);
  const int64_t C = x.shape().back(), rows = dim_view(x.shape(), x.rank() - 1).outer;
  Tensor y = Tensor::empty_like(x);
  if (x.is_cuda())
    C3_CUDA("l2_normalize", kernels::cuda::l2_normalize_rows_f32(x.data<float>(), y.data<float>(), rows, C, float(eps)));
  else if (x.dtype() == DType::f32)
    kernels::cpu::l2_normalize_rows(x.data<float>(), y.data<float>(), rows, C, eps);
  else
    kernels::cpu::l2_normalize_rows(x.data<double>(), y.data<double>(), rows, C, eps);
  if (!any_requires_grad({&x})) return y;
  // The backward recomputes the row norms from x: one saved tensor, and exact at ||x|| < eps.
  Tensor sx = x.detach();
  record(y, "l2_normalize", {x}, [=](const Tensor& g, const Needs&) {
    Tensor gx = Tensor::empty_like(g);
    if (g.is_cuda())
      C3_CUDA("l2_normalize backward", kernels::cuda::l2_normalize_rows_backward_f32(
                                           sx.data<float>(), g.data<float>(), gx.data<float>(), rows, C, float(eps)));
    else if (g.dtype() == DType::f32)
      kernels::cpu::l2_normalize_rows_backward(sx.data<float>(), g.data<float>(), gx.data<float>(), rows, C, eps);
    else
      kernels::cpu::l2_normalize_rows_backward(sx.data<double>(), g.data<double>(), gx.data<double>(), rows, C, eps);
    return std::vector<Tensor>{gx};
  });
  return y;
}

namespace {

// On the CPU the indices are checked before any work; on the GPU the kernel raises a device
// flag, read back here (one synchronization per call: counted on the CPU too) unless the
// checks are deferred (core/deferred_checks.h).
void check_cpu_indices(const char* op, const Tensor& idx, int64_t R, const Tensor& x) {
  const int32_t* p = idx.data<int32_t>();
  const int64_t k = kernels::cpu::first_bad_index(p, idx.numel(), R);
  C3_CHECK(k < 0, op, ": index idx[", k, "] = ", k < 0 ? 0 : p[k], " outside [0, ", R, ") for ", x.desc());
  if (!checks_deferred()) note_host_sync();  // where the GPU path reads its flag
}
// The flag a GPU kernel raises: a fresh one, or word 0 of the deferred flags.
Tensor gpu_flag(Device d) {
  return checks_deferred() ? deferred_flags(d).narrow0(0, 1) : Tensor::zeros({1}, DType::i32, d);
}
void check_gpu_flag(const char* op, const Tensor& flag, int64_t R, const Tensor& x, const Tensor& idx) {
  if (checks_deferred()) return;
  C3_CHECK(flag.item() == 0, op, ": an index of ", idx.desc(), " is outside [0, ", R, ") for ", x.desc());
}

}  // namespace

Tensor gather_rows(const Tensor& x, const Tensor& idx) {
  C3_CHECK(x.rank() >= 1, "gather_rows: x needs at least one dim, got ", x.desc());
  check_index_tensor("gather_rows", x, idx);
  check_float_or_bf16("gather_rows", x);
  check_cuda_float("gather_rows", x);
  const int64_t C = x.shape().back(), R = dim_view(x.shape(), x.rank() - 1).outer, K = idx.numel();
  Tensor out = Tensor::empty({K, C}, x.dtype(), x.device());
  if (cpu_bf16(x)) {  // a copy of rows: exact in any dtype
    check_cpu_indices("gather_rows", idx, R, x);
    kernels::cpu::gather_rows(x.data<bf16>(), idx.data<int32_t>(), out.data<bf16>(), K, C);
  } else if (x.is_cuda() && x.dtype() == DType::bf16) {
    Tensor flag = gpu_flag(x.device());
    C3_CUDA("gather_rows", kernels::cuda::gather_rows_bf16(x.data<bf16>(), idx.data<int32_t>(), out.data<bf16>(), R,
                                                           K, C, flag.data<int32_t>()));
    check_gpu_flag("gather_rows", flag, R, x, idx);
  } else if (x.is_cuda()) {
    Tensor flag = gpu_flag(x.device());
    C3_CUDA("gather_rows", kernels::cuda::gather_rows_f32(x.data<float>(), idx.data<int32_t>(), out.data<float>(), R,
                                                          K, C, flag.data<int32_t>()));
    check_gpu_flag("gather_rows", flag, R, x, idx);
  } else {
    check_cpu_indices("gather_rows", idx, R, x);
    if (x.dtype() == DType::f32)
      kernels::cpu::gather_rows(x.data<float>(), idx.data<int32_t>(), out.data<float>(), K, C);
    else
      kernels::cpu::gather_rows(x.data<double>(), idx.data<int32_t>(), out.data<double>(), K, C);
  }
  const Shape in_shape = x.shape();
  Tensor si = idx.detach();
  record(out, "gather_rows", {x}, [=](const Tensor& g, const Needs&) {
    return std::vector<Tensor>{scatter_add_rows(g, si, R).reshape(in_shape)};
  });
  return out;
}

Tensor scatter_add_rows(const Tensor& src, const Tensor& idx, int64_t R) {
  check_index_tensor("scatter_add_rows", src, idx);
  check_float_or_bf16("scatter_add_rows", src);
  C3_CHECK(src.rank() == 2 && src.dim(0) == idx.numel() && R >= 0, "scatter_add_rows: src must be [K, C] with K = ",
           idx.numel(), " (the number of indices) and R >= 0; got ", src.desc(), ", R = ", R);
  if (src.dtype() == DType::bf16) {  // summed in f32, rounded once
    Tensor out;
    if (src.is_cuda()) {
      Tensor acc = Tensor::zeros({R, src.dim(1)}, DType::f32, src.device()), flag = gpu_flag(src.device());
      C3_CUDA("scatter_add_rows", kernels::cuda::scatter_add_rows_bf16(src.data<bf16>(), idx.data<int32_t>(),
                                                                       acc.data<float>(), R, src.dim(0), src.dim(1),
                                                                       flag.data<int32_t>()));
      check_gpu_flag("scatter_add_rows", flag, R, acc, idx);
      out = acc.cast(DType::bf16);
    } else {
      out = scatter_add_rows(widen(src), idx, R).cast(DType::bf16);
    }
    Tensor si = idx.detach();
    record(out, "scatter_add_rows", {src}, [=](const Tensor& g, const Needs&) {
      return std::vector<Tensor>{gather_rows(g, si)};
    });
    return out;
  }
  check_cuda_dtype("scatter_add_rows", src);
  const int64_t K = src.dim(0), C = src.dim(1);
  Tensor out = Tensor::zeros({R, C}, src.dtype(), src.device());
  if (src.is_cuda()) {
    Tensor flag = gpu_flag(src.device());
    C3_CUDA("scatter_add_rows", kernels::cuda::scatter_add_rows_f32(src.data<float>(), idx.data<int32_t>(),
                                                                    out.data<float>(), R, K, C, flag.data<int32_t>()));
    check_gpu_flag("scatter_add_rows", flag, R, out, idx);
  } else {
    check_cpu_indices("scatter_add_rows", idx, R, out);
    if (src.dtype() == DType::f32)
      kernels::cpu::scatter_add_rows(src.data<float>(), idx.data<int32_t>(), out.data<float>(), K, C);
    else
      kernels::cpu::scatter_add_rows(src.data<double>(), idx.data<int32_t>(), out.data<double>(), K, C);
  }
  Tensor si = idx.detach();
  record(out, "scatter_add_rows", {src}, [=](const Tensor& g, const Needs&) {
    return std::vector<Tensor>{gather_rows(g, si)};
  });
  return out;
}

}  // namespace c3
