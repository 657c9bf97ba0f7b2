// CPU reductions. A reduction over chosen dimensions is a sum over the middle axis of a
// [outer, mid, inner] view (contiguous tensors only). Outputs are written, not accumulated.
#pragma once
#include <cstdint>

namespace kernels::cpu {

// out[o, i] = sum_m x[o, m, i]  (accumulated in double)
template <class T> void sum_mid(const T* x, T* out, int64_t outer, int64_t mid, int64_t inner);
// The adjoint of sum_mid: out[o, m, i] = x[o, i]
template <class T> void broadcast_mid(const T* x, T* out, int64_t outer, int64_t mid, int64_t inner);

// Per row of x viewed as [rows, C] (C >= 1): vals[r] = the largest value, idx[r] = its first
// index (rule: kernels/reduce_math.h, NaN propagates). Either output may be null.
template <class T> void max_channels(const T* x, T* vals, int32_t* idx, int64_t rows, int64_t C);
// The adjoint of max_channels: gx[r, c] = (c == idx[r]) ? g[r] : 0. Writes every element of gx.
template <class T> void max_channels_backward(const T* g, const int32_t* idx, T* gx, int64_t rows, int64_t C);

}  // namespace kernels::cpu
