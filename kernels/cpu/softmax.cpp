#include "kernels/cpu/softmax.h"

#include <algorithm>
#include <vector>

#include "kernels/launch_counter.h"
#include "kernels/softmax_math.h"

namespace kernels::cpu {
namespace {

template <class T> T row_max(const T* z, int64_t C) {
  T m = z[0];
  for (int64_t c = 1; c < C; ++c) m = z[c] > m ? z[c] : m;
  return m;
}
template <class T> T row_sum_exp(const T* z, int64_t C, T m) {
  T s = 0;
  for (int64_t c = 0; c < C; ++c) s += c3_exp(z[c] - m);
  return s;
}

// Pixels per chunk of the loss sums: the chunking, not the thread count, fixes the order.
constexpr int64_t kChunk = 1024;
struct Partial {
  double sum = 0, count = 0;
  int64_t first_invalid = -1;
};

// Runs f(pixel, partial) over fixed chunks in parallel; returns the chunk partials in order.
template <class F> std::vector<Partial> chunked(int64_t npix, int64_t C, F f) {
  const int64_t nchunks = (npix + kChunk - 1) / kChunk;
  std::vector<Partial> parts(static_cast<size_t>(nchunks));
#pragma omp parallel for schedule(static) if (npix * C > 32768)
  for (int64_t k = 0; k < nchunks; ++k)
    for (int64_t i = k * kChunk; i < std::min(npix, (k + 1) * kChunk); ++i) f(i, parts[k]);
  return parts;
}

template <class T> int64_t finish(const std::vector<Partial>& parts, T* out) {
  double sum = 0, count = 0;
  int64_t first_invalid = -1;
  for (const Partial& p : parts) {
    sum += p.sum;
    count += p.count;
    if (first_invalid < 0) first_invalid = p.first_invalid;
  }
  out[0] = safe_mean<T>(sum, count);
  out[1] = safe_inverse<T>(count);
  return first_invalid;
}

}  // namespace

template <class T> void softmax(const T* x, T* y, int64_t rows, int64_t C, bool log) {
  count_launch();
#pragma omp parallel for schedule(static) if (rows * C > 32768)
  for (int64_t r = 0; r < rows; ++r) {
    const T* z = x + r * C;
    T* q = y + r * C;
    const T m = row_max(z, C), s = row_sum_exp(z, C, m);
    if (log) {
      const T log_s = c3_log(s);
      for (int64_t c = 0; c < C; ++c) q[c] = log_softmax_of(z[c], m, log_s);
    } else {
      const T inv_s = T(1) / s;
      for (int64_t c = 0; c < C; ++c) q[c] = softmax_prob(z[c], m, inv_s);
    }
  }
}

template <class T> void softmax_backward(const T* y, const T* g, T* gx, int64_t rows, int64_t C, bool log) {
  count_launch();
#pragma omp parallel for schedule(static) if (rows * C > 32768)
  for (int64_t r = 0; r < rows; ++r) {
    const T *yr = y + r * C, *gr = g + r * C;
    T* q = gx + r * C;
    T acc = 0;  // log: sum_k g_k;  softmax: sum_k g_k y_k
    for (int64_t c = 0; c < C; ++c) acc += log ? gr[c] : gr[c] * yr[c];
    for (int64_t c = 0; c < C; ++c) q[c] = log ? log_softmax_grad(yr[c], gr[c], acc) : softmax_grad(yr[c], gr[c], acc);
  }
}

template <class T, class L>
int64_t cross_entropy(const T* logits, const L* labels, const T* weight, int64_t ignore_index, int64_t npix,
                      int64_t C, T* grad, T* out) {
  count_launch();
  auto parts = chunked(npix, C, [&](int64_t i, Partial& part) {
    const T* z = logits + i * C;
    const int64_t y = static_cast<int64_t>(labels[i]);
    const LabelKind kind = label_kind(y, C, ignore_index);
    if (kind != LabelKind::valid) {
      if (kind == LabelKind::invalid && part.first_invalid < 0) part.first_invalid = i;
      if (grad) std::fill(grad + i * C, grad + (i + 1) * C, T(0));
      return;
    }
    const T m = row_max(z, C), s = row_sum_exp(z, C, m), w = weight ? weight[y] : T(1);
    part.sum += ce_pixel_loss(z[y], m, s, w);
    part.count += 1;
    if (grad) {
      const T inv_s = T(1) / s;
      for (int64_t c = 0; c < C; ++c) grad[i * C + c] = ce_grad(softmax_prob(z[c], m, inv_s), c == y, w);
    }
  });
  return finish(parts, out);
}

template <class T, class M>
void soft_cross_entropy(const T* logits, const T* target, const M* mask, int64_t npix, int64_t C, T* grad, T* out) {
  count_launch();
  auto parts = chunked(npix, C, [&](int64_t i, Partial& part) {
    const T mi = mask ? static_cast<T>(mask[i]) : T(1);
    if (mi == T(0)) {  // skipped: contributes nothing, even where the logits are not finite
      if (grad) std::fill(grad + i * C, grad + (i + 1) * C, T(0));
      return;
    }
    const T *z = logits + i * C, *t = target + i * C;
    const T m = row_max(z, C), s = row_sum_exp(z, C, m), log_s = c3_log(s);
    T loss = 0, tsum = 0;
    for (int64_t c = 0; c < C; ++c) loss += soft_ce_term(t[c], z[c], m, log_s), tsum += t[c];
    part.sum += double(mi) * double(loss);
    part.count += double(mi);
    if (grad) {
      const T inv_s = T(1) / s;
      for (int64_t c = 0; c < C; ++c) grad[i * C + c] = mi * soft_ce_grad(softmax_prob(z[c], m, inv_s), t[c], tsum);
    }
  });
  finish(parts, out);
}

#define C3_INSTANTIATE(T)                                                                                    \
  template void softmax<T>(const T*, T*, int64_t, int64_t, bool);                                            \
  template void softmax_backward<T>(const T*, const T*, T*, int64_t, int64_t, bool);                         \
  template int64_t cross_entropy<T, uint8_t>(const T*, const uint8_t*, const T*, int64_t, int64_t, int64_t, T*, T*); \
  template int64_t cross_entropy<T, int32_t>(const T*, const int32_t*, const T*, int64_t, int64_t, int64_t, T*, T*); \
  template void soft_cross_entropy<T, uint8_t>(const T*, const T*, const uint8_t*, int64_t, int64_t, T*, T*); \
  template void soft_cross_entropy<T, T>(const T*, const T*, const T*, int64_t, int64_t, T*, T*);
C3_INSTANTIATE(float)
C3_INSTANTIATE(double)
#undef C3_INSTANTIATE

}  // namespace kernels::cpu
