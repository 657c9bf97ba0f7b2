// CPU reductions. A reduction over chosen dimensions is a sum over the middle axis of a
// [outer, mid, inner] view (contiguous tensors only). Outputs are written, not accumulated.
#pragma once
#include <cstdint>

namespace kernels::cpu {

// out[o, i] = sum_m x[o, m, i]  (accumulated in double)
template <class T> void sum_mid(const T* x, T* out, int64_t outer, int64_t mid, int64_t inner);
// The adjoint of sum_mid: out[o, m, i] = x[o, i]
template <class T> void broadcast_mid(const T* x, T* out, int64_t outer, int64_t mid, int64_t inner);

}  // namespace kernels::cpu
