#include "kernels/cpu/pool.h"

#include <cstddef>
#include <vector>

#include "kernels/launch_counter.h"

namespace kernels::cpu {

template <class T> void max_pool2d(const T* x, const PoolGeom& g, T* y, int32_t* argmax) {
  count_launch();
#pragma omp parallel for collapse(2) schedule(static) if (g.N * g.Ho * g.Wo * g.C > 32768)
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t oh = 0; oh < g.Ho; ++oh)
      for (int64_t ow = 0; ow < g.Wo; ++ow) {
        const int64_t o = ((n * g.Ho + oh) * g.Wo + ow) * g.C;
        for (int64_t c = 0; c < g.C; ++c) max_pool_window(x, g, n, oh, ow, c, y[o + c], argmax[o + c]);
      }
}

template <class T> void max_pool2d_backward(const T* dy, const int32_t* argmax, const PoolGeom& g, T* dx) {
  count_launch();
#pragma omp parallel for collapse(2) schedule(static) if (g.N * g.H * g.W * g.C > 32768)
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t ih = 0; ih < g.H; ++ih)
      for (int64_t iw = 0; iw < g.W; ++iw) {
        T* q = dx + ((n * g.H + ih) * g.W + iw) * g.C;
        for (int64_t c = 0; c < g.C; ++c) q[c] = max_pool_grad_at(dy, argmax, g, n, ih, iw, c);
      }
}

template <class T> void global_avg_pool(const T* x, int64_t N, int64_t HW, int64_t C, T* y) {
  count_launch();
#pragma omp parallel for schedule(static) if (N * HW * C > 65536)
  for (int64_t n = 0; n < N; ++n) {
    std::vector<double> acc(static_cast<size_t>(C), 0.0);
    for (int64_t m = 0; m < HW; ++m) {
      const T* p = x + (n * HW + m) * C;
      for (int64_t c = 0; c < C; ++c) acc[c] += p[c];
    }
    for (int64_t c = 0; c < C; ++c) y[n * C + c] = static_cast<T>(acc[c] / double(HW));
  }
}

template <class T> void global_avg_pool_backward(const T* dy, int64_t N, int64_t HW, int64_t C, T* dx) {
  count_launch();
#pragma omp parallel for collapse(2) schedule(static) if (N * HW * C > 65536)
  for (int64_t n = 0; n < N; ++n)
    for (int64_t m = 0; m < HW; ++m) {
      T* q = dx + (n * HW + m) * C;
      for (int64_t c = 0; c < C; ++c) q[c] = dy[n * C + c] / T(HW);
    }
}

#define C3_INSTANTIATE(T)                                                                      \
  template void max_pool2d<T>(const T*, const PoolGeom&, T*, int32_t*);                        \
  template void max_pool2d_backward<T>(const T*, const int32_t*, const PoolGeom&, T*);         \
  template void global_avg_pool<T>(const T*, int64_t, int64_t, int64_t, T*);                   \
  template void global_avg_pool_backward<T>(const T*, int64_t, int64_t, int64_t, T*);
C3_INSTANTIATE(float)
C3_INSTANTIATE(double)
#undef C3_INSTANTIATE

}  // namespace kernels::cpu
