// CPU pooling kernels (f32 and f64), NHWC. Conventions: kernels/pool_math.h.
// Every output is written (never accumulated).
#pragma once
#include <cstdint>

#include "kernels/pool_math.h"

namespace kernels::cpu {

// y[N, Ho, Wo, C] and argmax (spatial index h*W + w of each winner) from x[N, H, W, C].
template <class T> void max_pool2d(const T* x, const PoolGeom& g, T* y, int32_t* argmax);
// dx[N, H, W, C] from dy[N, Ho, Wo, C] and the argmax of the forward.
template <class T> void max_pool2d_backward(const T* dy, const int32_t* argmax, const PoolGeom& g, T* dx);

// y[n, c] = mean over the HW pixels of x[n, :, c] (x viewed as [N, HW, C]; sums in double).
template <class T> void global_avg_pool(const T* x, int64_t N, int64_t HW, int64_t C, T* y);
// dx[n, :, c] = dy[n, c] / HW
template <class T> void global_avg_pool_backward(const T* dy, int64_t N, int64_t HW, int64_t C, T* dx);

}  // namespace kernels::cpu
