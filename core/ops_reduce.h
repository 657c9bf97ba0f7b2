// Reductions, differentiable.
//
// Dims may be negative (counted from the end). Over a set of dims, each run of adjacent
// dims is one sum over the middle axis of an [outer, mid, inner] view (sum_mid); a set with
// gaps is reduced run by run. Channel reductions (max_channels, argmax_channels) work on
// the last dim, which is the channel dim of NHWC activations.
#pragma once
#include <vector>

#include "core/tensor.h"

namespace c3 {

Tensor sum(const Tensor& x);  // all elements -> rank-0 tensor
// Sum over `dims` (at least one, each once). keepdim keeps them as size 1.
Tensor sum(const Tensor& x, const std::vector<int>& dims, bool keepdim = false);
Tensor mean(const Tensor& x);  // all elements -> rank-0 tensor (NaN for an empty tensor)
Tensor mean(const Tensor& x, const std::vector<int>& dims, bool keepdim = false);

// Sum over the middle axis of x viewed as [outer, mid, inner] -> shape `out_shape`.
Tensor sum_mid(const Tensor& x, int64_t outer, int64_t mid, int64_t inner, const Shape& out_shape);
// The adjoint: x viewed as [outer, inner] repeated along a new middle axis of size mid.
Tensor broadcast_mid(const Tensor& x, int64_t outer, int64_t mid, int64_t inner, const Shape& out_shape);

// The largest value over the last dim: [..., C] -> [...]. The gradient goes to the FIRST
// maximal index of each row (ties are not split). NaN propagates.
Tensor max_channels(const Tensor& x);
// The first index of the largest value over the last dim: [..., C] f32/f64 -> [...] i32.
// Not differentiable.
Tensor argmax_channels(const Tensor& x);

}  // namespace c3
