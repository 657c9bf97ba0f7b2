#include "kernels/cpu/semiseg_contrast.h"

#include <cmath>
#include <limits>

#include "kernels/launch_counter.h"
#include "kernels/semiseg_contrast_math.h"

namespace kernels::cpu {

template <class T>
void contrast_rows(const T* S, const int32_t* labels, int64_t M, double inv_tau, T* row_loss, int32_t* ok, T* dS) {
  count_launch();
#pragma omp parallel for schedule(static) if (M * M > 65536)
  for (int64_t i = 0; i < M; ++i) {
    const T* row = S + i * M;
    T* g = dS + i * M;
    const int32_t yi = labels[i];
    const T it = T(inv_tau);  // rounded like the f32 kernel's argument
    T m = -std::numeric_limits<T>::infinity();
    int64_t npos = 0, nneg = 0;
    for (int64_t j = 0; j < M; ++j) {
      const int role = contrast_role(i, j, yi, labels[j]);
      if (role == kContrastNone) continue;
      m = std::max(m, row[j] * it);
      npos += role == kContrastPos;
      nneg += role == kContrastNeg;
    }
    if (npos == 0 || nneg == 0) {
      row_loss[i] = T(0), ok[i] = 0;
      for (int64_t j = 0; j < M; ++j) g[j] = T(0);
      continue;
    }
    double neg_acc = 0;
    for (int64_t j = 0; j < M; ++j)
      if (contrast_role(i, j, yi, labels[j]) == kContrastNeg) neg_acc += c3_exp(row[j] * it - m);
    const T neg = T(neg_acc);
    double term = 0, w = 0;
    for (int64_t j = 0; j < M; ++j)
      if (contrast_role(i, j, yi, labels[j]) == kContrastPos) {
        const T a = row[j] * it - m;
        term += contrast_pos_term(a, neg);
        w += contrast_pos_inv_den(a, neg);
      }
    row_loss[i] = T(term / double(npos)), ok[i] = 1;
    const T scale = it / T(npos);
    for (int64_t j = 0; j < M; ++j)
      g[j] = contrast_grad(contrast_role(i, j, yi, labels[j]), row[j] * it - m, neg, T(w), scale);
  }
}

template <class T>
void contrast_finalize(const T* row_loss, const int32_t* ok, int64_t M, double scale, T* loss, T* coef) {
  count_launch();
  double sum = 0;
  int64_t q = 0;
  for (int64_t i = 0; i < M; ++i) sum += row_loss[i], q += ok[i];
  const double c = q > 0 ? scale / double(q) : 0.0;
  loss[0] = T(c * sum);
  coef[0] = T(c);
}

template void contrast_rows<float>(const float*, const int32_t*, int64_t, double, float*, int32_t*, float*);
template void contrast_rows<double>(const double*, const int32_t*, int64_t, double, double*, int32_t*, double*);
template void contrast_finalize<float>(const float*, const int32_t*, int64_t, double, float*, float*);
template void contrast_finalize<double>(const double*, const int32_t*, int64_t, double, double*, double*);

}  // namespace kernels::cpu
