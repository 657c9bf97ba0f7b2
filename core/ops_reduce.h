// Reductions, differentiable.
#pragma once
#include <vector>

#include "core/tensor.h"

namespace c3 {

Tensor sum(const Tensor& x);  // all elements -> rank-0 tensor
// Sum over the middle axis of x viewed as [outer, mid, inner] -> shape `out_shape`.
Tensor sum_mid(const Tensor& x, int64_t outer, int64_t mid, int64_t inner, const Shape& out_shape);
// The adjoint: x viewed as [outer, inner] repeated along a new middle axis of size mid.
Tensor broadcast_mid(const Tensor& x, int64_t outer, int64_t mid, int64_t inner, const Shape& out_shape);

}  // namespace c3
