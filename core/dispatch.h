// Helpers for ops choosing a backend. A GPU op that does not exist throws; nothing falls
// back to the CPU silently.
#pragma once
#include <string>

#include "core/tensor.h"
#include "kernels/device_api.h"

#ifdef C3_HAVE_CUDA
#define C3_CUDA(op, ...) __VA_ARGS__
#else
#define C3_CUDA(op, ...) \
  throw ::c3::Error(std::string(op) + ": this build has no CUDA backend (rebuild without CUDA=0)")
#endif

namespace c3 {
// CUDA kernels are written for f32 (f64 is for CPU gradient checks).
inline void check_cuda_dtype(const char* op, const Tensor& t, DType want = DType::f32) {
  C3_CHECK(!t.is_cuda() || t.dtype() == want, op, ": the CUDA backend supports ", dtype_name(want),
           " here, got ", t.desc());
}
// For ops with bf16 kernels too (the follow and lower ops of core/precision.h).
inline void check_cuda_float(const char* op, const Tensor& t) {
  C3_CHECK(!t.is_cuda() || t.dtype() == DType::f32 || t.dtype() == DType::bf16, op,
           ": the CUDA backend supports f32 and bf16 here, got ", t.desc());
}

// bf16 on the CPU: ops run their f32 kernel on widened copies and round each output once,
// the numerics of the bf16 CUDA kernels (which widen on load and narrow on store).
inline bool cpu_bf16(const Tensor& t) { return t.defined() && t.dtype() == DType::bf16 && !t.is_cuda(); }
// A bf16 tensor as an f32 copy (no autograd); any other tensor itself.
inline Tensor widen(const Tensor& t) { return t.defined() && t.dtype() == DType::bf16 ? t.cast(DType::f32) : t; }
}  // namespace c3
