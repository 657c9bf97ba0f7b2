#include "semiseg/ops_contrast.h"

#include "core/dispatch.h"
#include "core/ops.h"
#include "kernels/cpu/semiseg_contrast.h"
#include "kernels/cuda/semiseg_contrast.h"

namespace c3::semiseg {
namespace {

void check_temperatures(const char* op, double tau, double tau_b) {
  C3_CHECK(tau > 0 && tau_b > 0, op, ": temperatures must be positive, got tau = ", tau, ", tau_b = ", tau_b);
}

void check_labels(const char* op, const Tensor& labels, int64_t M, const Tensor& like) {
  check_dtype(op, labels, DType::i32);
  C3_CHECK(labels.rank() == 1 && labels.dim(0) == M, op, ": labels must be [", M, "] (one per anchor), got ",
           labels.desc());
  check_same_device(op, like, labels);
}

}  // namespace

Tensor contrastive_loss_from_similarity(const Tensor& S, const Tensor& labels, double tau, double tau_b) {
  const char* op = "contrastive_loss";
  check_float(op, S);
  check_cuda_dtype(op, S);
  C3_CHECK(S.rank() == 2 && S.dim(0) == S.dim(1), op, ": similarities must be square [M, M], got ", S.desc());
  const int64_t M = S.dim(0);
  check_labels(op, labels, M, S);
  check_temperatures(op, tau, tau_b);
  C3_CHECK(M <= INT32_MAX, op, ": too many anchors: ", S.desc());
  const Device dev = S.device();
  Tensor row_loss = Tensor::empty({M}, S.dtype(), dev), ok = Tensor::empty({M}, DType::i32, dev);
  Tensor dS = Tensor::empty({M, M}, S.dtype(), dev);
  Tensor loss = Tensor::empty({}, S.dtype(), dev), coef = Tensor::empty({1}, S.dtype(), dev);
  const double inv_tau = 1.0 / tau, scale = -(tau / tau_b);
  const int32_t* y = labels.data<int32_t>();
  if (S.is_cuda()) {
    C3_CUDA(op, {
      kernels::cuda::contrast_rows_f32(S.data<float>(), y, M, float(inv_tau), row_loss.data<float>(),
                                       ok.data<int32_t>(), dS.data<float>());
      kernels::cuda::contrast_finalize_f32(row_loss.data<float>(), ok.data<int32_t>(), M, float(scale),
                                           loss.data<float>(), coef.data<float>());
    });
  } else if (S.dtype() == DType::f32) {
    kernels::cpu::contrast_rows(S.data<float>(), y, M, inv_tau, row_loss.data<float>(), ok.data<int32_t>(),
                                dS.data<float>());
    kernels::cpu::contrast_finalize(row_loss.data<float>(), ok.data<int32_t>(), M, scale, loss.data<float>(),
                                    coef.data<float>());
  } else {
    kernels::cpu::contrast_rows(S.data<double>(), y, M, inv_tau, row_loss.data<double>(), ok.data<int32_t>(),
                                dS.data<double>());
    kernels::cpu::contrast_finalize(row_loss.data<double>(), ok.data<int32_t>(), M, scale, loss.data<double>(),
                                    coef.data<double>());
  }
  // d(loss)/dS = coef * d(row loss)/dS: the 1/Q and the -(tau/tau_b) live in coef, a device
  // scalar, so the host never waits for Q.
  record(loss, op, {S}, [dS, coef](const Tensor& g, const Needs&) {
    return std::vector<Tensor>{mul(dS, mul(coef, g.reshape({1})))};
  });
  return loss;
}

Tensor contrastive_loss(const Tensor& z, const Tensor& z_contrast, const Tensor& labels, double tau, double tau_b) {
  const char* op = "contrastive_loss";
  check_float(op, z);
  C3_CHECK(z.rank() == 2, op, ": anchors must be [M, D], got ", z.desc());
  check_same_shape(op, z, z_contrast);
  check_same_device(op, z, z_contrast);
  C3_CHECK(z.dtype() == z_contrast.dtype(), op, ": dtype mismatch: ", z.desc(), " vs ", z_contrast.desc());
  check_labels(op, labels, z.dim(0), z);
  check_temperatures(op, tau, tau_b);
  // No anchor at all: a zero that still depends on z, so backward through it works.
  if (z.dim(0) == 0) return mul(sum(z), 0.0);
  return contrastive_loss_from_similarity(matmul(z, z_contrast.detach(), false, true), labels, tau, tau_b);
}

}  // namespace c3::semiseg
