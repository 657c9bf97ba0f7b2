#include "core/ops_elementwise.h"
#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/ops.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cuda/elementwise.h"

namespace c3 {
using kernels::Bcast;
using kernels::Binary;
using kernels::Unary;

namespace {

struct Broadcast {
  Bcast mode = Bcast::same;
  int64_t inner = 1;
};

bool ones_except(const Shape& s, size_t keep) {
  for (size_t i = 0; i < s.size(); ++i)
    if (i != keep && s[i] != 1) return false;
  return true;
}

Broadcast infer_broadcast(const char* op, const Tensor& a, const Tensor& b) {
  check_same_device(op, a, b);
  C3_CHECK(a.dtype() == b.dtype(), op, ": dtype mismatch: ", a.desc(), " vs ", b.desc());
  const Shape &sa = a.shape(), &sb = b.shape();
  if (sa == sb) return {Bcast::same, 1};
  if (b.numel() == 1) return {Bcast::scalar, 1};
  if (!sa.empty()) {
    const int64_t C = sa.back(), N = sa.front();
    if ((sb.size() == 1 && sb[0] == C) || (sb.size() == sa.size() && sb.back() == C && ones_except(sb, sb.size() - 1)))
      return {Bcast::channel, C};
    if (sb.size() == sa.size() && sb[0] == N && ones_except(sb, 0)) return {Bcast::sample, a.numel() / N};
  }
  throw Error(std::string(op) + ": cannot broadcast " + b.desc() + " onto " + a.desc() +
              " (supported: same shape, one element, per channel [C], per sample [N,1,..])");
}

// Sums a gradient of a's shape down to b's shape (the adjoint of the broadcast).
Tensor reduce_to(const Tensor& g, const Broadcast& bc, const Shape& b_shape) {
  const int64_t n = g.numel();
  switch (bc.mode) {
    case Bcast::same: return g;
    case Bcast::scalar: return sum_mid(g, 1, n, 1, b_shape);
    case Bcast::channel: return sum_mid(g, 1, n / bc.inner, bc.inner, b_shape);
    case Bcast::sample: return sum_mid(g, n / bc.inner, bc.inner, 1, b_shape);
  }
  return g;
}

Tensor binary_raw(const char* name, Binary op, const Tensor& a, const Tensor& b, const Broadcast& bc) {
  check_float_or_bf16(name, a);
  if (cpu_bf16(a)) return binary_raw(name, op, widen(a), widen(b), bc).cast(DType::bf16);
  check_cuda_float(name, a);
  Tensor out = Tensor::empty(a.shape(), a.dtype(), a.device());
  const int64_t n = a.numel();
  if (a.is_cuda() && a.dtype() == DType::bf16)
    C3_CUDA(name, kernels::cuda::binary_bf16(op, a.data<bf16>(), b.data<bf16>(), out.data<bf16>(), n, bc.mode, bc.inner));
  else if (a.is_cuda())
    C3_CUDA(name, kernels::cuda::binary_f32(op, a.data<float>(), b.data<float>(), out.data<float>(), n, bc.mode, bc.inner));
  else if (a.dtype() == DType::f32)
    kernels::cpu::binary(op, a.data<float>(), b.data<float>(), out.data<float>(), n, bc.mode, bc.inner);
  else
    kernels::cpu::binary(op, a.data<double>(), b.data<double>(), out.data<double>(), n, bc.mode, bc.inner);
  return out;
}

Tensor binary(const char* name, Binary op, const Tensor& a, const Tensor& b) {
  const Broadcast bc = infer_broadcast(name, a, b);
  Tensor out = binary_raw(name, op, a, b, bc);
  if (!any_requires_grad({&a, &b})) return out;
  const Shape b_shape = b.shape();
  // Save only what the backward reads: mul needs both inputs, div needs b and the output.
  Tensor sa = op == Binary::mul ? a.detach() : Tensor();
  Tensor sb = (op == Binary::mul || op == Binary::div) ? b.detach() : Tensor();
  Tensor so = (op == Binary::div || op == Binary::add_relu) ? out.detach() : Tensor();
  record(out, name, {a, b}, [=](const Tensor& g, const Needs& needs) {
    Tensor ga, gb;
    switch (op) {
      case Binary::add:
        if (needs[0]) ga = g;
        if (needs[1]) gb = reduce_to(g, bc, b_shape);
        break;
      case Binary::sub:
        if (needs[0]) ga = g;
        if (needs[1]) gb = reduce_to(neg(g), bc, b_shape);
        break;
      case Binary::mul:
        if (needs[0]) ga = binary_raw("mul backward", Binary::mul, g, sb, bc);
        if (needs[1]) gb = reduce_to(mul(g, sa), bc, b_shape);
        break;
      case Binary::add_relu: {  // the gradient where the output is positive, to both inputs
        Tensor gm = relu_grad_from_output(g, so);
        if (needs[0]) ga = gm;
        if (needs[1]) gb = reduce_to(gm, bc, b_shape);
        break;
      }
      case Binary::div:
        if (needs[0]) ga = binary_raw("div backward", Binary::div, g, sb, bc);
        // d(a/b)/db = -out/b
        if (needs[1]) gb = reduce_to(neg(binary_raw("div backward", Binary::div, mul(g, so), sb, bc)), bc, b_shape);
        break;
    }
    return std::vector<Tensor>{ga, gb};
  });
  return out;
}

Tensor unary_raw(const char* name, Unary op, const Tensor& x, double p0, double p1) {
  check_float_or_bf16(name, x);
  if (cpu_bf16(x)) return unary_raw(name, op, widen(x), p0, p1).cast(DType::bf16);
  check_cuda_float(name, x);
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  const int64_t n = x.numel();
  if (x.is_cuda() && x.dtype() == DType::bf16)
    C3_CUDA(name, kernels::cuda::unary_bf16(op, x.data<bf16>(), y.data<bf16>(), n, float(p0), float(p1)));
  else if (x.is_cuda())
    C3_CUDA(name, kernels::cuda::unary_f32(op, x.data<float>(), y.data<float>(), n, float(p0), float(p1)));
  else if (x.dtype() == DType::f32)
    kernels::cpu::unary(op, x.data<float>(), y.data<float>(), n, float(p0), float(p1));
  else
    kernels::cpu::unary(op, x.data<double>(), y.data<double>(), n, p0, p1);
  return y;
}

// The gradient of a unary op from its saved input and/or output (undefined: not read).
Tensor unary_backward_raw(const char* name, Unary op, const Tensor& sx, const Tensor& sy, const Tensor& g, double p0,
                          double p1) {
  if (cpu_bf16(g)) return unary_backward_raw(name, op, widen(sx), widen(sy), widen(g), p0, p1).cast(DType::bf16);
  Tensor gx = Tensor::empty(g.shape(), g.dtype(), g.device());
  const int64_t n = g.numel();
  if (g.is_cuda() && g.dtype() == DType::bf16) {
    C3_CUDA(name, kernels::cuda::unary_backward_bf16(op, sx.defined() ? sx.data<bf16>() : nullptr,
                                                      sy.defined() ? sy.data<bf16>() : nullptr, g.data<bf16>(),
                                                      gx.data<bf16>(), n, float(p0), float(p1)));
  } else if (g.is_cuda()) {
    C3_CUDA(name, kernels::cuda::unary_backward_f32(op, sx.defined() ? sx.data<float>() : nullptr,
                                                     sy.defined() ? sy.data<float>() : nullptr, g.data<float>(),
                                                     gx.data<float>(), n, float(p0), float(p1)));
  } else if (g.dtype() == DType::f32) {
    kernels::cpu::unary_backward(op, sx.defined() ? sx.data<float>() : nullptr,
                                 sy.defined() ? sy.data<float>() : nullptr, g.data<float>(), gx.data<float>(), n,
                                 float(p0), float(p1));
  } else {
    kernels::cpu::unary_backward(op, sx.defined() ? sx.data<double>() : nullptr,
                                 sy.defined() ? sy.data<double>() : nullptr, g.data<double>(), gx.data<double>(), n,
                                 p0, p1);
  }
  return gx;
}

// Which of input and output the backward formula reads (see unary_grad).
bool grad_reads_output(Unary op) { return op == Unary::exp || op == Unary::sigmoid || op == Unary::sqrt; }
bool grad_reads_input(Unary op) {
  return op == Unary::log || op == Unary::relu || op == Unary::clamp || op == Unary::square || op == Unary::abs;
}

Tensor unary(const char* name, Unary op, const Tensor& x, double p0 = 0, double p1 = 0) {
  Tensor y = unary_raw(name, op, x, p0, p1);
  if (!any_requires_grad({&x})) return y;
  Tensor sx = grad_reads_input(op) ? x.detach() : Tensor();
  Tensor sy = grad_reads_output(op) ? y.detach() : Tensor();
  record(y, name, {x}, [=](const Tensor& g, const Needs&) {
    return std::vector<Tensor>{unary_backward_raw(name, op, sx, sy, g, p0, p1)};
  });
  return y;
}

}  // namespace

Tensor relu_grad_from_output(const Tensor& g, const Tensor& y) {
  if (cpu_bf16(g)) return relu_grad_from_output(widen(g), widen(y)).cast(DType::bf16);
  Tensor gx = Tensor::empty(g.shape(), g.dtype(), g.device());
  const int64_t n = g.numel();
  if (g.is_cuda() && g.dtype() == DType::bf16)
    C3_CUDA("relu backward", kernels::cuda::unary_backward_bf16(Unary::relu, y.data<bf16>(), nullptr, g.data<bf16>(),
                                                                 gx.data<bf16>(), n, 0.f, 0.f));
  else if (g.is_cuda())
    C3_CUDA("relu backward", kernels::cuda::unary_backward_f32(Unary::relu, y.data<float>(), nullptr, g.data<float>(),
                                                                gx.data<float>(), n, 0.f, 0.f));
  else if (g.dtype() == DType::f32)
    kernels::cpu::unary_backward<float>(Unary::relu, y.data<float>(), nullptr, g.data<float>(), gx.data<float>(), n, 0.f, 0.f);
  else
    kernels::cpu::unary_backward<double>(Unary::relu, y.data<double>(), nullptr, g.data<double>(), gx.data<double>(), n, 0.0, 0.0);
  return gx;
}

Tensor add(const Tensor& a, const Tensor& b) { return binary("add", Binary::add, a, b); }
Tensor sub(const Tensor& a, const Tensor& b) { return binary("sub", Binary::sub, a, b); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary("mul", Binary::mul, a, b); }
Tensor div(const Tensor& a, const Tensor& b) { return binary("div", Binary::div, a, b); }
Tensor add_relu(const Tensor& a, const Tensor& b) { return binary("add_relu", Binary::add_relu, a, b); }
Tensor add(const Tensor& a, double s) { return unary("add_scalar", Unary::add_scalar, a, s); }
Tensor mul(const Tensor& a, double s) { return unary("scale", Unary::scale, a, s); }
Tensor neg(const Tensor& x) { return unary("neg", Unary::neg, x); }
Tensor exp(const Tensor& x) { return unary("exp", Unary::exp, x); }
Tensor log(const Tensor& x) { return unary("log", Unary::log, x); }
Tensor relu(const Tensor& x) { return unary("relu", Unary::relu, x); }
Tensor sigmoid(const Tensor& x) { return unary("sigmoid", Unary::sigmoid, x); }
Tensor clamp(const Tensor& x, double lo, double hi) {
  C3_CHECK(lo <= hi, "clamp: lower bound ", lo, " above upper bound ", hi);
  return unary("clamp", Unary::clamp, x, lo, hi);
}
Tensor sqrt(const Tensor& x) { return unary("sqrt", Unary::sqrt, x); }
Tensor square(const Tensor& x) { return unary("square", Unary::square, x); }
Tensor abs(const Tensor& x) { return unary("abs", Unary::abs, x); }

Tensor where(const Tensor& mask, const Tensor& a, const Tensor& b) {
  check_same_shape("where", a, b);
  check_dtype("where (mask)", mask, DType::u8);
  check_same_device("where", mask, a);
  C3_CHECK(mask.shape() == a.shape(), "where: mask ", mask.desc(), " does not match ", a.desc());
  check_float("where", a);
  check_cuda_dtype("where", a);
  Tensor out = Tensor::empty(a.shape(), a.dtype(), a.device());
  const int64_t n = a.numel();
  auto run = [n](const Tensor& m, const Tensor& x, const Tensor& y, const Tensor& o) {
    if (o.is_cuda())
      C3_CUDA("where", kernels::cuda::select_f32(m.data<uint8_t>(), x.data<float>(), y.data<float>(), o.data<float>(), n));
    else if (o.dtype() == DType::f32)
      kernels::cpu::select(m.data<uint8_t>(), x.data<float>(), y.data<float>(), o.data<float>(), n);
    else
      kernels::cpu::select(m.data<uint8_t>(), x.data<double>(), y.data<double>(), o.data<double>(), n);
  };
  run(mask, a, b, out);
  Tensor m = mask.detach();
  record(out, "where", {a, b}, [=](const Tensor& g, const Needs& needs) {
    Tensor z = Tensor::zeros(g.shape(), g.dtype(), g.device()), ga, gb;
    if (needs[0]) { ga = Tensor::empty_like(g); run(m, g, z, ga); }
    if (needs[1]) { gb = Tensor::empty_like(g); run(m, z, g, gb); }
    return std::vector<Tensor>{ga, gb};
  });
  return out;
}

void fill_(const Tensor& t, double v) {
  C3_CHECK(!(t.requires_grad() && grad_mode()), "fill_ on a tensor that requires grad: ", t.desc());
  const int64_t n = t.numel();
  if (t.is_cuda()) {
    C3_CUDA("fill", {
      switch (t.dtype()) {
        case DType::f32: { float f = float(v); uint32_t b; std::memcpy(&b, &f, 4); kernels::cuda::fill_bytes4(t.raw(), n, b); break; }
        case DType::i32: { int32_t i = int32_t(v); uint32_t b; std::memcpy(&b, &i, 4); kernels::cuda::fill_bytes4(t.raw(), n, b); break; }
        case DType::u8: kernels::cuda::fill_u8(t.data<uint8_t>(), n, uint8_t(v)); break;
        case DType::f64: throw Error("fill: f64 tensors are CPU-only");
        case DType::bf16: kernels::cuda::fill_bytes2(t.raw(), n, kernels::to_bf16(v).bits); break;
      }
    });
    return;
  }
  switch (t.dtype()) {
    case DType::f32: kernels::cpu::fill(t.data<float>(), n, float(v)); break;
    case DType::f64: kernels::cpu::fill(t.data<double>(), n, v); break;
    case DType::i32: kernels::cpu::fill(t.data<int32_t>(), n, int32_t(v)); break;
    case DType::u8: kernels::cpu::fill(t.data<uint8_t>(), n, uint8_t(v)); break;
    case DType::bf16: kernels::cpu::fill(t.data<bf16>(), n, kernels::to_bf16(v)); break;
  }
}

void axpy_(const Tensor& y, double alpha, const Tensor& x) {
  check_same_shape("axpy_", y, x);
  check_float("axpy_", y);
  check_cuda_dtype("axpy_", y);
  C3_CHECK(!(y.requires_grad() && grad_mode()), "axpy_ on a tensor that requires grad outside no-grad: ", y.desc());
  if (y.is_cuda()) C3_CUDA("axpy_", kernels::cuda::axpy_f32(float(alpha), x.data<float>(), y.data<float>(), y.numel()));
  else if (y.dtype() == DType::f32) kernels::cpu::axpy(float(alpha), x.data<float>(), y.data<float>(), y.numel());
  else kernels::cpu::axpy(alpha, x.data<double>(), y.data<double>(), y.numel());
}

Tensor small_i32(const std::vector<int32_t>& values, Device device) {
  const int64_t n = int64_t(values.size());
  if (device == Device::cuda && n > kernels::kSmallValues) return Tensor::from_vector(values, {n}, device);
  Tensor out = Tensor::empty({n}, DType::i32, device);
  if (device == Device::cpu) {
    std::copy(values.begin(), values.end(), out.data<int32_t>());
    return out;
  }
  auto small = std::make_unique<kernels::SmallI32>();
  small->n = int32_t(n);
  std::copy(values.begin(), values.end(), small->v);
  C3_CUDA("small_i32", kernels::cuda::write_small_i32(out.data<int32_t>(), *small));
  return out;
}

Tensor cast_raw(const Tensor& x, DType to) {
  if (x.is_cuda())
    C3_CHECK(to != DType::f64 && x.dtype() != DType::f64, "cast: f64 tensors are CPU-only, got ", x.desc(), " to ",
             dtype_name(to));
  Tensor out = Tensor::empty(x.shape(), to, x.device());
  if (x.is_cuda()) {
    C3_CUDA("cast", kernels::cuda::cast(x.raw(), int(x.dtype()), out.raw(), int(to), x.numel()));
  } else {
    kernels::cpu::cast(x.raw(), int(x.dtype()), out.raw(), int(to), x.numel());
  }
  return out;
}

Tensor cast(const Tensor& x, DType to) {
  Tensor out = cast_raw(x, to);
  const auto floating = [](DType d) { return d == DType::f32 || d == DType::f64 || d == DType::bf16; };
  if (!floating(x.dtype()) || !floating(to) || !any_requires_grad({&x})) return out;
  const DType from = x.dtype();
  record(out, "cast", {x}, [from](const Tensor& g, const Needs&) { return std::vector<Tensor>{cast(g, from)}; });
  return out;
}

}  // namespace c3
