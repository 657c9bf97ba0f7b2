#include "core/ops_loss.h"

#include <string>
#include <type_traits>

#include "core/autograd.h"
#include "core/deferred_checks.h"
#include "core/dispatch.h"
#include "core/ops.h"
#include "core/precision.h"
#include "kernels/cpu/softmax.h"
#include "kernels/cuda/softmax.h"

namespace c3 {
namespace {

int64_t rows_of(const Tensor& x) { return x.numel() / x.dim(-1); }

void check_logits(const char* op, const Tensor& x) {
  check_float(op, x);
  check_cuda_dtype(op, x);
  C3_CHECK(x.rank() >= 1 && x.dim(-1) >= 1, op, ": needs a last (channel) dim of size >= 1, got ", x.desc());
}

// y = softmax(x) or log_softmax(x) over the last dim.
Tensor softmax_impl(const char* op, const Tensor& x, bool log) {
  check_logits(op, x);
  Tensor y = Tensor::empty_like(x);
  const int64_t C = x.dim(-1), rows = rows_of(x);
  if (x.is_cuda()) C3_CUDA(op, kernels::cuda::softmax_f32(x.data<float>(), y.data<float>(), rows, C, log));
  else if (x.dtype() == DType::f32) kernels::cpu::softmax(x.data<float>(), y.data<float>(), rows, C, log);
  else kernels::cpu::softmax(x.data<double>(), y.data<double>(), rows, C, log);
  if (!any_requires_grad({&x})) return y;
  Tensor saved = y.detach();  // both derivatives are cheapest from the output
  record(y, op, {x}, [saved, log, op](const Tensor& g, const Needs&) {
    Tensor gx = Tensor::empty_like(g);
    const int64_t C = g.dim(-1), rows = rows_of(g);
    if (g.is_cuda())
      C3_CUDA(op, kernels::cuda::softmax_backward_f32(saved.data<float>(), g.data<float>(), gx.data<float>(), rows,
                                                       C, log));
    else if (g.dtype() == DType::f32)
      kernels::cpu::softmax_backward(saved.data<float>(), g.data<float>(), gx.data<float>(), rows, C, log);
    else
      kernels::cpu::softmax_backward(saved.data<double>(), g.data<double>(), gx.data<double>(), rows, C, log);
    return std::vector<Tensor>{gx};
  });
  return y;
}

// Shape [...] of the per-pixel tensors that go with logits [..., C].
void check_per_pixel(const char* op, const char* what, const Tensor& logits, const Tensor& t) {
  check_same_device(op, logits, t);
  const Shape want(logits.shape().begin(), logits.shape().end() - 1);
  C3_CHECK(t.shape() == want, op, ": ", what, " ", t.desc(), " does not match logits ", logits.desc(),
           " (want ", shape_str(want), ")");
}

// The fused losses write out = [loss, 1/count] and the unnormalized per-pixel gradient.
// Returns the loss as a rank-0 view of out, with a backward that scales the saved gradient
// by the upstream gradient times 1/count (all on the device: no synchronization).
Tensor finish_loss(const char* op, const Tensor& logits, const Tensor& out, const Tensor& grad) {
  Tensor loss = out.narrow0(0, 1).reshape({});
  if (!grad.defined()) return loss;
  Tensor scale = out.narrow0(1, 1).reshape({});
  record(loss, op, {logits}, [grad, scale](const Tensor& g, const Needs&) {
    return std::vector<Tensor>{mul(grad, mul(g, scale))};
  });
  return loss;
}

// "[n,h,w]" of a flat pixel index in a tensor of the given shape.
std::string position(int64_t flat, const Shape& s) {
  Shape idx(s.size());
  for (int k = static_cast<int>(s.size()) - 1; k >= 0; --k) {
    idx[k] = s[k] ? flat % s[k] : 0;
    flat = s[k] ? flat / s[k] : 0;
  }
  return shape_str(idx);
}

template <class L, class T>
int64_t cross_entropy_run(const Tensor& logits, const Tensor& labels, const Tensor& weight, int64_t ignore,
                          const Tensor& grad, const Tensor& out) {
  const int64_t C = logits.dim(-1), npix = labels.numel();
  const T* w = weight.defined() ? weight.data<T>() : nullptr;
  T* gp = grad.defined() ? grad.data<T>() : nullptr;
  if (logits.is_cuda()) {
    int64_t bad = -1;
    C3_CUDA("cross_entropy", {
      if constexpr (std::is_same_v<T, float>) {
        Tensor scratch = Tensor::empty({int64_t(kernels::cuda::loss_scratch_bytes())}, DType::u8, Device::cuda);
        // Deferred: the first bad pixel goes into words 2..3 of the device's deferred flags.
        unsigned long long* defer =
            checks_deferred()
                ? reinterpret_cast<unsigned long long*>(deferred_flags(logits.device()).data<int32_t>() + 2)
                : nullptr;
        bad = kernels::cuda::cross_entropy_f32(logits.data<float>(), labels.data<L>(), w, ignore, npix, C, gp,
                                               out.data<float>(), scratch.raw(), defer);
      }
    });
    return bad;
  }
  if (!checks_deferred()) note_host_sync();  // where the GPU path reads its flag back
  return kernels::cpu::cross_entropy(logits.data<T>(), labels.data<L>(), w, ignore, npix, C, gp, out.data<T>());
}

}  // namespace

// fp32 in the precision table: bf16 logits are widened (differentiably) first.
Tensor softmax(const Tensor& x) { return softmax_impl("softmax", precision_input("softmax", x), false); }
Tensor log_softmax(const Tensor& x) { return softmax_impl("log_softmax", precision_input("log_softmax", x), true); }

Tensor cross_entropy(const Tensor& logits_in, const Tensor& labels, const Tensor& weight, int ignore_index) {
  const char* op = "cross_entropy";
  const Tensor logits = precision_input(op, logits_in);
  check_logits(op, logits);
  check_per_pixel(op, "labels", logits, labels);
  C3_CHECK(labels.dtype() == DType::u8 || labels.dtype() == DType::i32, op, ": labels must be u8 or i32, got ",
           labels.desc());
  if (weight.defined()) {
    check_same_device(op, logits, weight);
    C3_CHECK(weight.shape() == Shape{logits.dim(-1)} && weight.dtype() == logits.dtype(), op, ": weight ",
             weight.desc(), " must be [C] = [", logits.dim(-1), "] of the logits' dtype (logits ", logits.desc(), ")");
  }
  Tensor out = Tensor::empty({2}, logits.dtype(), logits.device());
  Tensor grad = any_requires_grad({&logits}) ? Tensor::empty_like(logits) : Tensor();
  const bool u8 = labels.dtype() == DType::u8, f32 = logits.dtype() == DType::f32;
  const int64_t bad = u8 ? (f32 ? cross_entropy_run<uint8_t, float>(logits, labels, weight, ignore_index, grad, out)
                                : cross_entropy_run<uint8_t, double>(logits, labels, weight, ignore_index, grad, out))
                         : (f32 ? cross_entropy_run<int32_t, float>(logits, labels, weight, ignore_index, grad, out)
                                : cross_entropy_run<int32_t, double>(logits, labels, weight, ignore_index, grad, out));
  if (bad >= 0) {
    const double value = labels.reshape({labels.numel()}).narrow0(bad, 1).item();
    throw Error(detail::concat(op, ": label ", value, " at ", position(bad, labels.shape()), " of labels ",
                               labels.desc(), " is outside [0, ", logits.dim(-1), ") and is not ignore_index ",
                               ignore_index));
  }
  return finish_loss(op, logits, out, grad);
}

Tensor soft_cross_entropy(const Tensor& logits_in, const Tensor& target, const Tensor& mask) {
  const char* op = "soft_cross_entropy";
  const Tensor logits = precision_input(op, logits_in);
  check_logits(op, logits);
  check_same_shape(op, logits, target);
  if (mask.defined()) {
    check_per_pixel(op, "mask", logits, mask);
    C3_CHECK(mask.dtype() == DType::u8 || mask.dtype() == logits.dtype(), op, ": mask must be u8 or ",
             dtype_name(logits.dtype()), " like the logits, got ", mask.desc());
  }
  Tensor out = Tensor::empty({2}, logits.dtype(), logits.device());
  Tensor grad = any_requires_grad({&logits}) ? Tensor::empty_like(logits) : Tensor();
  const int64_t C = logits.dim(-1), npix = rows_of(logits);
  const bool mask_u8 = mask.defined() && mask.dtype() == DType::u8;
  if (logits.is_cuda()) {
    C3_CUDA(op, {
      Tensor scratch = Tensor::empty({int64_t(kernels::cuda::loss_scratch_bytes())}, DType::u8, Device::cuda);
      float* gp = grad.defined() ? grad.data<float>() : nullptr;
      if (mask_u8)
        kernels::cuda::soft_cross_entropy_f32(logits.data<float>(), target.data<float>(), mask.data<uint8_t>(), npix,
                                              C, gp, out.data<float>(), scratch.raw());
      else
        kernels::cuda::soft_cross_entropy_f32(logits.data<float>(), target.data<float>(),
                                              mask.defined() ? mask.data<float>() : nullptr, npix, C, gp,
                                              out.data<float>(), scratch.raw());
    });
  } else {
    auto run = [&](auto t) {
      using T = decltype(t);
      T* gp = grad.defined() ? grad.data<T>() : nullptr;
      if (mask_u8)
        kernels::cpu::soft_cross_entropy(logits.data<T>(), target.data<T>(), mask.data<uint8_t>(), npix, C, gp,
                                         out.data<T>());
      else
        kernels::cpu::soft_cross_entropy(logits.data<T>(), target.data<T>(),
                                         mask.defined() ? mask.data<T>() : static_cast<const T*>(nullptr), npix, C,
                                         gp, out.data<T>());
    };
    if (logits.dtype() == DType::f32) run(float{});
    else run(double{});
  }
  return finish_loss(op, logits, out, grad);
}

}  // namespace c3
