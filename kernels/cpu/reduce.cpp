#include "kernels/cpu/reduce.h"

#include <cstddef>
#include <vector>

namespace kernels::cpu {

template <class T> void sum_mid(const T* x, T* out, int64_t outer, int64_t mid, int64_t inner) {
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
#pragma omp parallel for collapse(2) schedule(static) if (outer * mid * inner > 65536)
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t m = 0; m < mid; ++m) {
      T* q = out + (o * mid + m) * inner;
      const T* p = x + o * inner;
      for (int64_t i = 0; i < inner; ++i) q[i] = p[i];
    }
}

template void broadcast_mid<float>(const float*, float*, int64_t, int64_t, int64_t);
template void broadcast_mid<double>(const double*, double*, int64_t, int64_t, int64_t);
template void sum_mid<float>(const float*, float*, int64_t, int64_t, int64_t);
template void sum_mid<double>(const double*, double*, int64_t, int64_t, int64_t);

}  // namespace kernels::cpu
