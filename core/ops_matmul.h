// Matrix product of 2-D tensors, differentiable in both operands.
//   matmul(a, b, trans_a, trans_b) = op(a) @ op(b), op(t) = trans ? t^T : t, op(a) [M,K], op(b) [K,N].
// CPU: OpenBLAS (f32, f64). CUDA: cuBLAS (f32), on tensor cores in TF32 unless
// set_allow_tf32(false) (TF32 keeps 10 mantissa bits of each input: about 1e-3 relative
// error, the trade PyTorch makes for convolutions by default).
#pragma once
#include "core/tensor.h"

namespace c3 {

Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false);

// Process-wide switch for float32 GEMMs on the GPU (true by default). Thread-safe.
void set_allow_tf32(bool on);
bool allow_tf32();

}  // namespace c3
