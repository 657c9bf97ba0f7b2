#include "kernels/cpu/optim.h"

namespace kernels::cpu {

template <class T> void adam_step(T* p, const T* g, T* m, T* v, int64_t n, const AdamParams& a) {
#pragma omp parallel for schedule(static) if (n > 32768)
  for (int64_t i = 0; i < n; ++i) adam_update(p[i], g[i], m[i], v[i], a);
}
template <class T> void sgd_step(T* p, const T* g, T* buf, int64_t n, const SgdParams& s) {
  T dummy = 0;
#pragma omp parallel for schedule(static) if (n > 32768) firstprivate(dummy)
  for (int64_t i = 0; i < n; ++i) sgd_update(p[i], g[i], buf ? buf[i] : dummy, s);
}
template <class T> void ema_step(T* t, const T* s, int64_t n, float decay) {
#pragma omp parallel for schedule(static) if (n > 32768)
  for (int64_t i = 0; i < n; ++i) ema_update(t[i], s[i], decay);
}

template void adam_step<float>(float*, const float*, float*, float*, int64_t, const AdamParams&);
template void adam_step<double>(double*, const double*, double*, double*, int64_t, const AdamParams&);
template void sgd_step<float>(float*, const float*, float*, int64_t, const SgdParams&);
template void sgd_step<double>(double*, const double*, double*, int64_t, const SgdParams&);
template void ema_step<float>(float*, const float*, int64_t, float);
template void ema_step<double>(double*, const double*, int64_t, float);

}  // namespace kernels::cpu
