// Indexing ops, differentiable. Tensors are contiguous NHWC; `dim` may be negative (counts
// from the end), so for rank 4 dim 1 is H and dim -1 (3) is the channels.
#pragma once
#include <vector>

#include "core/tensor.h"

namespace c3 {

// Joins tensors along `dim`; all other dims must agree. Any dtype on the CPU, f32 on CUDA.
Tensor concat(const std::vector<Tensor>& xs, int dim);
// The `length` entries of `dim` from `start` (a copy). Backward pads the gradient with zeros.
Tensor slice(const Tensor& x, int dim, int64_t start, int64_t length);

// x / max(||x||, eps) over the last dim (PyTorch F.normalize(x, dim=-1)); eps > 0.
Tensor l2_normalize(const Tensor& x, double eps = 1e-12);

// x viewed as rows of its last dim, [R, C]; idx i32 [K] on x's device -> [K, C], row k is
// x[idx[k]]. An index outside [0, R) is an error. Backward: scatter_add_rows.
Tensor gather_rows(const Tensor& x, const Tensor& idx);
// src [K, C], idx i32 [K] -> [R, C]: zeros, then out[idx[k]] += src[k] (repeated indices
// accumulate). On CUDA the sum uses float atomics: nondeterministic in its last bits when
// indices repeat. Backward: gather_rows.
Tensor scatter_add_rows(const Tensor& src, const Tensor& idx, int64_t R);

// Out-of-range indices are errors; inside a DeferChecks scope a GPU call defers its check
// (core/deferred_checks.h).

}  // namespace c3
