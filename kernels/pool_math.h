// Pooling arithmetic shared by the CPU loops, the CUDA kernels and the op (output sizes).
//
// Max pooling over NHWC tensors x[N, H, W, C] -> y[N, Ho, Wo, C], square window `k`, stride
// `s`, padding `p` (padded cells never win: they act as -inf). argmax holds, per output, the
// spatial index h*W + w of the winner inside its image (PyTorch's convention); on ties the
// first in row-major window order wins, and a NaN wins (propagates) as in PyTorch.
// The backward is a gather: each input cell sums dy over the few windows that contain it and
// picked it, in a fixed order, so it needs no atomics and gives the same bits every time.
#pragma once
#include <cstdint>

#include "kernels/elementwise_math.h"

namespace kernels {

struct PoolGeom {
  int64_t N, H, W, C;  // input
  int64_t Ho, Wo;      // output
  int k, s, p;         // window, stride, padding
};

// PyTorch's output size (dilation 1): floor or ceil of (in + 2p - k) / s, plus one; in ceil
// mode a last window that would start beyond the input and its left padding is dropped
// (it must start at or before in + p - 1). Needs in + 2p >= k, s >= 1 (checked by the op).
C3_HD int64_t pool_out_size(int64_t in, int k, int s, int p, bool ceil_mode) {
  const int64_t span = in + 2 * p - k;
  int64_t out = (span + (ceil_mode ? s - 1 : 0)) / s + 1;
  if (ceil_mode && (out - 1) * s >= in + p) --out;
  return out;
}

// Max over the window of output (n, oh, ow) in channel c. The window always holds at least
// one input cell (the output-size rule with p <= k/2 guarantees it). Elements are widened to
// acc_t<T> (f32 for bf16, kernels/bf16_math.h) and compared there.
template <class T>
C3_HD void max_pool_window(const T* x, const PoolGeom& g, int64_t n, int64_t oh, int64_t ow, int64_t c,
                           acc_t<T>& best, int32_t& arg) {
  int64_t h0 = oh * g.s - g.p, w0 = ow * g.s - g.p;
  const int64_t h1 = h0 + g.k < g.H ? h0 + g.k : g.H, w1 = w0 + g.k < g.W ? w0 + g.k : g.W;
  h0 = h0 > 0 ? h0 : 0;
  w0 = w0 > 0 ? w0 : 0;
  const T* img = x + n * g.H * g.W * g.C + c;
  best = widen(img[(h0 * g.W + w0) * g.C]);
  arg = int32_t(h0 * g.W + w0);
  for (int64_t h = h0; h < h1; ++h)
    for (int64_t w = w0; w < w1; ++w) {
      const acc_t<T> v = widen(img[(h * g.W + w) * g.C]);
      if (v > best || v != v) {
        best = v;
        arg = int32_t(h * g.W + w);
      }
    }
}

// First and last output index (inclusive) whose window covers input index i along one axis:
// o*s - p <= i <= o*s - p + k - 1. Empty when lo > hi.
C3_HD void pool_covering(int64_t i, int k, int s, int p, int64_t out, int64_t& lo, int64_t& hi) {
  const int64_t t = i + p - k + 1;
  lo = t <= 0 ? 0 : (t + s - 1) / s;
  hi = (i + p) / s;
  if (hi > out - 1) hi = out - 1;
}

// d(loss)/d(x[n, ih, iw, c]): the sum of dy over the windows whose argmax is this cell, in
// acc_t<T> (a bf16 caller rounds it once).
template <class T>
C3_HD acc_t<T> max_pool_grad_at(const T* dy, const int32_t* argmax, const PoolGeom& g, int64_t n, int64_t ih, int64_t iw,
                         int64_t c) {
  int64_t h_lo, h_hi, w_lo, w_hi;
  pool_covering(ih, g.k, g.s, g.p, g.Ho, h_lo, h_hi);
  pool_covering(iw, g.k, g.s, g.p, g.Wo, w_lo, w_hi);
  const int32_t me = int32_t(ih * g.W + iw);
  acc_t<T> acc = acc_t<T>(0);
  for (int64_t oh = h_lo; oh <= h_hi; ++oh)
    for (int64_t ow = w_lo; ow <= w_hi; ++ow) {
      const int64_t o = ((n * g.Ho + oh) * g.Wo + ow) * g.C + c;
      if (argmax[o] == me) acc += widen(dy[o]);
    }
  return acc;
}

}  // namespace kernels
