// CPU indexing kernels: strided row copies (concat, slice), row gather / scatter-add, and the
// row-wise l2 normalization. Every kernel writes its output, except scatter_add_rows, which
// accumulates into `out` (the caller zeroes it first).
#pragma once
#include <cstdint>

namespace kernels::cpu {

// dst[r * dst_stride + i] = src[r * src_stride + i] for r < rows, i < len.
// Concat and slice along any dim are this copy over the [outer, dim * inner] view.
template <class T>
void copy_rows(const T* src, int64_t src_stride, T* dst, int64_t dst_stride, int64_t rows, int64_t len);

// Index of the first idx[k] outside [0, R), or -1 when all are valid.
int64_t first_bad_index(const int32_t* idx, int64_t K, int64_t R);
// out[k, :] = x[idx[k], :]; x is [R, C], out [K, C]. Indices must be valid (see first_bad_index).
template <class T> void gather_rows(const T* x, const int32_t* idx, T* out, int64_t K, int64_t C);
// out[idx[k], :] += src[k, :]; src is [K, C]. In order of k, so deterministic.
template <class T> void scatter_add_rows(const T* src, const int32_t* idx, T* out, int64_t K, int64_t C);

// y[r, :] = x[r, :] / max(||x[r, :]||, eps) for r < rows (x, y: [rows, C]); sums in double.
template <class T> void l2_normalize_rows(const T* x, T* y, int64_t rows, int64_t C, double eps);
// The gradient gx from x and the output gradient g (see kernels/index_math.h).
template <class T>
void l2_normalize_rows_backward(const T* x, const T* g, T* gx, int64_t rows, int64_t C, double eps);

}  // namespace kernels::cpu
