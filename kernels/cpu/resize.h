// CPU resize kernels over NHWC tensors (semantics in kernels/resize_math.h). Every function
// writes its whole output (never accumulates). Backward passes are deterministic gathers.
#pragma once
#include <cstdint>

#include "kernels/resize_math.h"

namespace kernels::cpu {

// x [n,h,w,c] -> y [n,oh,ow,c]; T = float or double.
template <class T> void resize_bilinear(const T* x, T* y, const ResizeShape& s, bool align_corners);
// gy [n,oh,ow,c] -> gx [n,h,w,c] (the adjoint of resize_bilinear).
template <class T> void resize_bilinear_backward(const T* gy, T* gx, const ResizeShape& s, bool align_corners);
// x [n,h,w,c] -> y [n,oh,ow,c]; T = float, double, int32_t or uint8_t.
template <class T> void resize_nearest(const T* x, T* y, const ResizeShape& s);
// gy [n,oh,ow,c] -> gx [n,h,w,c]; T = float or double.
template <class T> void resize_nearest_backward(const T* gy, T* gx, const ResizeShape& s);

}  // namespace kernels::cpu
