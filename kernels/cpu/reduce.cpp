#include "kernels/cpu/reduce.h"

#include <cstddef>
#include <vector>

#include "kernels/launch_counter.h"
#include "kernels/reduce_math.h"

namespace kernels::cpu {

template <class T> void sum_mid(const T* x, T* out, int64_t outer, int64_t mid, int64_t inner) {
  count_launch();
  if (outer * inner > 0 && sum_splits(outer, mid, inner) > 1) count_launch();  // the GPU adds the splits' partials
  if (inner == 1) {
#pragma omp parallel for schedule(static) if (outer * mid > 65536)
    for (int64_t o = 0; o < outer; ++o) {
      double s = 0;
      const T* p = x + o * mid;
      for (int64_t m = 0; m < mid; ++m) s += p[m];
      out[o] = static_cast<T>(s);
    }
    return;
  }
#pragma omp parallel for schedule(static) if (outer * mid * inner > 65536)
  for (int64_t o = 0; o < outer; ++o) {
    std::vector<double> acc(static_cast<size_t>(inner), 0.0);
    for (int64_t m = 0; m < mid; ++m) {
      const T* p = x + (o * mid + m) * inner;
      for (int64_t i = 0; i < inner; ++i) acc[i] += p[i];
    }
    for (int64_t i = 0; i < inner; ++i) out[o * inner + i] = static_cast<T>(acc[i]);
  }
}

template <class T> void broadcast_mid(const T* x, T* out, int64_t outer, int64_t mid, int64_t inner) {
  count_launch();
#pragma omp parallel for collapse(2) schedule(static) if (outer * mid * inner > 65536)
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t m = 0; m < mid; ++m) {
      T* q = out + (o * mid + m) * inner;
      const T* p = x + o * inner;
      for (int64_t i = 0; i < inner; ++i) q[i] = p[i];
    }
}

template <class T> void max_channels(const T* x, T* vals, int32_t* idx, int64_t rows, int64_t C) {
  count_launch();
#pragma omp parallel for schedule(static) if (rows * C > 65536)
  for (int64_t r = 0; r < rows; ++r) {
    const T* p = x + r * C;
    T best = p[0];
    int64_t bi = 0;
    for (int64_t c = 1; c < C; ++c)
      if (argmax_better(p[c], c, best, bi)) best = p[c], bi = c;
    if (vals) vals[r] = best;
    if (idx) idx[r] = static_cast<int32_t>(bi);
  }
}

template <class T> void max_channels_backward(const T* g, const int32_t* idx, T* gx, int64_t rows, int64_t C) {
  count_launch();
#pragma omp parallel for schedule(static) if (rows * C > 65536)
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < C; ++c) gx[r * C + c] = c == idx[r] ? g[r] : T(0);
}

template void max_channels<float>(const float*, float*, int32_t*, int64_t, int64_t);
template void max_channels<double>(const double*, double*, int32_t*, int64_t, int64_t);
template void max_channels_backward<float>(const float*, const int32_t*, float*, int64_t, int64_t);
template void max_channels_backward<double>(const double*, const int32_t*, double*, int64_t, int64_t);
template void broadcast_mid<float>(const float*, float*, int64_t, int64_t, int64_t);
template void broadcast_mid<double>(const double*, double*, int64_t, int64_t, int64_t);
template void sum_mid<float>(const float*, float*, int64_t, int64_t, int64_t);
template void sum_mid<double>(const double*, double*, int64_t, int64_t, int64_t);

}  // namespace kernels::cpu
