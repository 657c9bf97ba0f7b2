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

// y = (x - mean) * scale + bias, then ReLU (Relu), with x masked by relu_y (Mask). The options
// are template flags so that each variant is a plain loop with no per-element test of them.
template <bool Relu, bool Mask, class T>
void apply_rows(const T* x, int64_t M, int64_t C, const T* mean, const T* scale, const T* bias, T* y,
                const T* relu_y) {
#pragma omp parallel for schedule(static) if (M * C > 32768)
  for (int64_t r = 0; r < M; ++r) {
    const T* p = x + r * C;
    T* q = y + r * C;
    for (int64_t c = 0; c < C; ++c) {
      T v = p[c];
      if constexpr (Mask) v = bn_relu_grad(relu_y[r * C + c], v);
      q[c] = bn_apply_one(v, mean ? mean[c] : T(0), scale[c], bias ? bias[c] : T(0), Relu);
    }
  }
}

// bn_apply's loop, also run by bn_backward (each counts its own launch).
template <class T>
void apply_affine(const T* x, int64_t M, int64_t C, const T* mean, const T* scale, const T* bias, T* y, bool relu,
                  const T* relu_y) {
  if (relu_y && relu) apply_rows<true, true>(x, M, C, mean, scale, bias, y, relu_y);
  else if (relu_y) apply_rows<false, true>(x, M, C, mean, scale, bias, y, relu_y);
  else if (relu) apply_rows<true, false>(x, M, C, mean, scale, bias, y, relu_y);
  else apply_rows<false, false>(x, M, C, mean, scale, bias, y, relu_y);
}

// bn_backward's passes over dy (the sums and dx); Mask: dy masked by relu_y.
template <bool Mask, class T>
void backward_passes(const T* dy, const T* x, int64_t M, int64_t C, const T* mean, const T* invstd, const T* scale,
                     bool batch_stats, T* dx, T* dweight, T* dbias, const T* relu_y) {
  auto grad = [dy, relu_y](int64_t i) {
    if constexpr (Mask) return bn_relu_grad(relu_y[i], dy[i]);
    else return dy[i];
  };
  // [sum dy | sum dy*(x - mean)] per channel
  std::vector<double> sums = channel_sums<2>(M, C, [&](int64_t r, double* acc) {
    const T* p = x + r * C;
    for (int64_t c = 0; c < C; ++c) {
      const T g = grad(r * C + c);
      acc[c] += g;
      acc[C + c] += double(g) * (double(p[c]) - double(mean[c]));
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
    const T* p = x + r * C;
    T* q = dx + r * C;
    for (int64_t c = 0; c < C; ++c) q[c] = A[c] * grad(r * C + c) + B[c] * (p[c] - mean[c]) + D[c];
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
void bn_apply(const T* x, int64_t M, int64_t C, const T* mean, const T* scale, const T* bias, T* y, bool relu,
              const T* relu_y) {
  count_launch();
  apply_affine(x, M, C, mean, scale, bias, y, relu, relu_y);
}

template <class T>
void bn_backward(const T* dy, const T* x, int64_t M, int64_t C, const T* mean, const T* invstd, const T* scale,
                 bool batch_stats, T* dx, T* dweight, T* dbias, const T* relu_y) {
  count_launch();
  if (!batch_stats && !dweight && !dbias) {  // fixed statistics, dx only: dx = scale * dy
    if (dx) apply_affine(dy, M, C, static_cast<const T*>(nullptr), scale, static_cast<const T*>(nullptr), dx, false,
                         relu_y);
    return;
  }
  if (relu_y) backward_passes<true>(dy, x, M, C, mean, invstd, scale, batch_stats, dx, dweight, dbias, relu_y);
  else backward_passes<false>(dy, x, M, C, mean, invstd, scale, batch_stats, dx, dweight, dbias, relu_y);
}

template <class T>
void bn_fold(const T* w, int64_t K, int64_t taps, const T* conv_bias, const T* weight, const T* bias,
             const T* running_mean, const T* running_var, T eps, T* w_out, T* b_out, T* scale) {
  count_launch();
#pragma omp parallel for schedule(static) if (K * taps > 65536)
  for (int64_t k = 0; k < K; ++k) {
    const T s = bn_fold_scale(weight[k], running_var[k], eps);
    scale[k] = s;
    b_out[k] = bn_fold_bias(conv_bias ? conv_bias[k] : T(0), running_mean[k], s, bias[k]);
    const T* src = w + k * taps;
    T* dst = w_out + k * taps;
    for (int64_t t = 0; t < taps; ++t) dst[t] = src[t] * s;
  }
}

#define C3_INSTANTIATE(T)                                                                                   \
  template void bn_fold<T>(const T*, int64_t, int64_t, const T*, const T*, const T*, const T*, const T*, T, T*, \
                           T*, T*);                                                                         \
  template void bn_batch_stats<T>(const T*, int64_t, int64_t, const T*, T, T, T*, T*, T*, T*, T*);          \
  template void bn_running_stats<T>(const T*, const T*, const T*, int64_t, T, T*, T*, T*);                  \
  template void bn_apply<T>(const T*, int64_t, int64_t, const T*, const T*, const T*, T*, bool, const T*);   \
  template void bn_backward<T>(const T*, const T*, int64_t, int64_t, const T*, const T*, const T*, bool, T*, \
                               T*, T*, const T*);
C3_INSTANTIATE(float)
C3_INSTANTIATE(double)
#undef C3_INSTANTIATE

}  // namespace kernels::cpu
