#include "kernels/cpu/optim.h"

#include "kernels/launch_counter.h"

namespace kernels::cpu {

template <class T> void adam_step(T* p, const T* g, T* m, T* v, int64_t n, const AdamParams& a) {
  count_launch();
#pragma omp parallel for schedule(static) if (n > 32768)
  for (int64_t i = 0; i < n; ++i) adam_update(p[i], g[i], m[i], v[i], a);
}
template <class T> void sgd_step(T* p, const T* g, T* buf, int64_t n, const SgdParams& s) {
  count_launch();
  T dummy = 0;
#pragma omp parallel for schedule(static) if (n > 32768) firstprivate(dummy)
  for (int64_t i = 0; i < n; ++i) sgd_update(p[i], g[i], buf ? buf[i] : dummy, s);
}
template <class T> void ema_step(T* t, const T* s, int64_t n, float decay) {
  count_launch();
#pragma omp parallel for schedule(static) if (n > 32768)
  for (int64_t i = 0; i < n; ++i) ema_update(t[i], s[i], decay);
}

template <class T> void adam_arena(T* p, const T* g, T* m, T* v, const ArenaSpans& s, const AdamParams& a) {
  count_launch();
  for (int k = 0; k < s.n; ++k) {
    const ArenaSpan& sp = s.span[k];
    const AdamParams ak = span_params(s, sp, a);
#pragma omp parallel for schedule(static) if (sp.count > 32768)
    for (int64_t i = sp.begin; i < sp.begin + sp.count; ++i) adam_update(p[i], g[i], m[i], v[i], ak);
  }
}
template <class T> void sgd_arena(T* p, const T* g, T* buf, const ArenaSpans& s, const SgdParams& base) {
  count_launch();
  T dummy = 0;
  for (int k = 0; k < s.n; ++k) {
    const ArenaSpan& sp = s.span[k];
    const SgdParams sk = span_params(s, sp, base);
#pragma omp parallel for schedule(static) if (sp.count > 32768) firstprivate(dummy)
    for (int64_t i = sp.begin; i < sp.begin + sp.count; ++i) sgd_update(p[i], g[i], buf ? buf[i] : dummy, sk);
  }
}
template <class T> void ema_spans(const EmaSpans<T>& s, float decay) {
  count_launch();
  for (int k = 0; k < s.n; ++k) {
    T* t = s.teacher[k];
    const T* st = s.student[k];
#pragma omp parallel for schedule(static) if (s.count[k] > 32768)
    for (int64_t i = 0; i < s.count[k]; ++i) ema_update(t[i], st[i], decay);
  }
}

template void adam_step<float>(float*, const float*, float*, float*, int64_t, const AdamParams&);
template void adam_step<double>(double*, const double*, double*, double*, int64_t, const AdamParams&);
template void sgd_step<float>(float*, const float*, float*, int64_t, const SgdParams&);
template void sgd_step<double>(double*, const double*, double*, int64_t, const SgdParams&);
template void ema_step<float>(float*, const float*, int64_t, float);
template void ema_step<double>(double*, const double*, int64_t, float);
template void adam_arena<float>(float*, const float*, float*, float*, const ArenaSpans&, const AdamParams&);
template void adam_arena<double>(double*, const double*, double*, double*, const ArenaSpans&, const AdamParams&);
template void sgd_arena<float>(float*, const float*, float*, const ArenaSpans&, const SgdParams&);
template void sgd_arena<double>(double*, const double*, double*, const ArenaSpans&, const SgdParams&);
template void ema_spans<float>(const EmaSpans<float>&, float);
template void ema_spans<double>(const EmaSpans<double>&, float);

}  // namespace kernels::cpu
