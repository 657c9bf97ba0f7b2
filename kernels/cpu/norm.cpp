#include "kernels/cpu/norm.h"

#include <algorithm>
#include <cstddef>
#include <vector>

#include "kernels/launch_counter.h"
#include "kernels/norm_math.h"

namespace kernels::cpu {
namespace {

// K per-channel sums over the rows of [M, C]: add_row(r, acc) adds row r's K*C terms into
// acc. Rows are cut into fixed chunks (independent of the thread count); the chunk partials
// are then added in chunk order, so the result is the same bits on any machine.
template <int K, class F> std::vector<double> channel_sums(int64_t M, int64_t C, F add_row) {
  const int64_t chunk = std::max<int64_t>(64, (M + 63) / 64);
  const int64_t nchunks = (M + chunk - 1) / chunk;
  std::vector<double> part(static_cast<size_t>(nchunks * K * C), 0.0);
#pragma omp parallel for schedule(static) if (M * C > 65536)
  for (int64_t k = 0; k < nchunks; ++k) {
    double* acc = part.data() + k * K * C;
    for (int64_t r = k * chunk; r < std::min(M, (k + 1) * chunk); ++r) add_row(r, acc);
  }
  std::vector<double> total(static_cast<size_t>(K * C), 0.0);
  for (int64_t k = 0; k < nchunks; ++k)
    for (int64_t i = 0; i < K * C; ++i) total[i] += part[k * K * C + i];
  return total;
}

// y = (x - mean) * scale + bias: bn_apply's loop, also run by bn_backward (each counts its own launch).
template <class T>
void apply_affine(const T* x, int64_t M, int64_t C, const T* mean, const T* scale, const T* bias, T* y) {
#pragma omp parallel for schedule(static) if (M * C > 32768)
  for (int64_t r = 0; r < M; ++r) {
    const T* p = x + r * C;
    T* q = y + r * C;
    for (int64_t c = 0; c < C; ++c) q[c] = (p[c] - (mean ? mean[c] : T(0))) * scale[c] + (bias ? bias[c] : T(0));
  }
}

}  // namespace

template <class T>
void bn_batch_stats(const T* x, int64_t M, int64_t C, const T* weight, T eps, T momentum, T* running_mean,
                    T* running_var, T* mean, T* invstd, T* scale) {
  count_launch();
  // Two passes in double: the mean, then the squared deviations from it (no cancellation).
  std::vector<double> s = channel_sums<1>(M, C, [&](int64_t r, double* acc) {
    const T* p = x + r * C;
    for (int64_t c = 0; c < C; ++c) acc[c] += p[c];
  });
  std::vector<double> mu(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) mu[c] = s[c] / double(M);
  std::vector<double> ss = channel_sums<1>(M, C, [&](int64_t r, double* acc) {
    const T* p = x + r * C;
    for (int64_t c = 0; c < C; ++c) {
      const double d = double(p[c]) - mu[c];
      acc[c] += d * d;
    }
  });
  for (int64_t c = 0; c < C; ++c) {
    const double var = ss[c] / double(M);
    mean[c] = T(mu[c]);
    invstd[c] = T(bn_invstd(var, double(eps)));
    scale[c] = weight[c] * invstd[c];
    if (running_mean) bn_running_update(running_mean[c], running_var[c], T(mu[c]), T(var), T(M), momentum);
  }
}

template <class T>
void bn_running_stats(const T* running_mean, const T* running_var, const T* weight, int64_t C, T eps, T* mean,
                      T* invstd, T* scale) {
  count_launch();
  for (int64_t c = 0; c < C; ++c) {
    mean[c] = running_mean[c];
    invstd[c] = bn_invstd(running_var[c], eps);
    scale[c] = weight[c] * invstd[c];
  }
}

template <class T>
void bn_apply(const T* x, int64_t M, int64_t C, const T* mean, const T* scale, const T* bias, T* y) {
  count_launch();
  apply_affine(x, M, C, mean, scale, bias, y);
}

template <class T>
void bn_backward(const T* dy, const T* x, int64_t M, int64_t C, const T* mean, const T* invstd, const T* scale,
                 bool batch_stats, T* dx, T* dweight, T* dbias) {
  count_launch();
  if (!batch_stats && !dweight && !dbias) {  // fixed statistics, dx only: dx = scale * dy
    if (dx) apply_affine(dy, M, C, static_cast<const T*>(nullptr), scale, static_cast<const T*>(nullptr), dx);
    return;
  }
  // [sum dy | sum dy*(x - mean)] per channel
  std::vector<double> sums = channel_sums<2>(M, C, [&](int64_t r, double* acc) {
    const T *g = dy + r * C, *p = x + r * C;
    for (int64_t c = 0; c < C; ++c) {
      acc[c] += g[c];
      acc[C + c] += double(g[c]) * (double(p[c]) - double(mean[c]));
    }
  });
  if (dbias)
    for (int64_t c = 0; c < C; ++c) dbias[c] = T(sums[c]);
  if (dweight)
    for (int64_t c = 0; c < C; ++c) dweight[c] = T(sums[C + c] * double(invstd[c]));
  if (!dx) return;
  std::vector<T> A(static_cast<size_t>(C)), B(A), D(A);
  for (int64_t c = 0; c < C; ++c) {
    double a, b, d;
    bn_dx_coeffs<double>(scale[c], invstd[c], sums[c], sums[C + c], double(M), batch_stats, a, b, d);
    A[c] = T(a), B[c] = T(b), D[c] = T(d);
  }
#pragma omp parallel for schedule(static) if (M * C > 32768)
  for (int64_t r = 0; r < M; ++r) {
    const T *g = dy + r * C, *p = x + r * C;
    T* q = dx + r * C;
    for (int64_t c = 0; c < C; ++c) q[c] = A[c] * g[c] + B[c] * (p[c] - mean[c]) + D[c];
  }
}

#define C3_INSTANTIATE(T)                                                                                   \
  template void bn_batch_stats<T>(const T*, int64_t, int64_t, const T*, T, T, T*, T*, T*, T*, T*);          \
  template void bn_running_stats<T>(const T*, const T*, const T*, int64_t, T, T*, T*, T*);                  \
  template void bn_apply<T>(const T*, int64_t, int64_t, const T*, const T*, const T*, T*);                  \
  template void bn_backward<T>(const T*, const T*, int64_t, int64_t, const T*, const T*, const T*, bool, T*, \
                               T*, T*);
C3_INSTANTIATE(float)
C3_INSTANTIATE(double)
#undef C3_INSTANTIATE

}  // namespace kernels::cpu
