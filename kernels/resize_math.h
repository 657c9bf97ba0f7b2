// Source-coordinate math of the resize ops, shared by the CPU loops and the CUDA kernels.
//
// Bilinear follows PyTorch's F.interpolate(mode='bilinear') exactly (UpSample.h,
// area_pixel_compute_scale / area_pixel_compute_source_index), in the tensor's own precision:
//   align_corners:  src = dst * (in-1)/(out-1)          (scale 0 when out == 1)
//   otherwise:      src = max((dst+0.5) * in/out - 0.5, 0)
//   i0 = min(floor(src), in-1), i1 = min(i0+1, in-1), l1 = clamp(src - i0, 0, 1), l0 = 1 - l1.
// Nearest follows PyTorch's mode='nearest' (nearest_idx): src = min(floor(dst * s), in-1)
// with s = float(in)/float(out) computed in f32 (for every dtype, as PyTorch does), except
// out == in (src = dst) and out == 2*in (src = dst/2). The f32 product rounds: for some size
// pairs (e.g. 2 -> 82, dst 41) it is one below the exact floor(dst*in/out); we keep PyTorch's
// result, so a model trained here sees the labels PyTorch would give it.
//
// Backward passes are gathers (each input element sums the output gradients that read it), so
// they are deterministic and need no atomics. The source index is non-decreasing in dst, so
// the outputs that read input i form one contiguous range, found by binary search.
#pragma once
#include <cstdint>

#include "kernels/hd.h"

namespace kernels {

// x [n, h, w, c] -> y [n, oh, ow, c]; NHWC, contiguous.
struct ResizeShape {
  int64_t n, h, w, c, oh, ow;
};

// The two taps of one output coordinate along one axis: y = l0 * x[i0] + l1 * x[i1].
template <class T> struct LinearTap {
  int64_t i0, i1;
  T l0, l1;
};

template <class T> C3_HD T linear_scale(int64_t in, int64_t out, bool align_corners) {
  if (align_corners) return out > 1 ? T(in - 1) / T(out - 1) : T(0);
  return T(in) / T(out);
}

template <class T> C3_HD LinearTap<T> linear_tap(int64_t dst, int64_t in, T scale, bool align_corners) {
  T src = align_corners ? scale * T(dst) : scale * (T(dst) + T(0.5)) - T(0.5);
  if (src < T(0)) src = T(0);
  int64_t i0 = static_cast<int64_t>(src);  // src >= 0: truncation is floor
  if (i0 > in - 1) i0 = in - 1;
  T l1 = src - T(i0);
  l1 = l1 < T(0) ? T(0) : (l1 > T(1) ? T(1) : l1);
  LinearTap<T> t;
  t.i0 = i0;
  t.i1 = i0 < in - 1 ? i0 + 1 : i0;
  t.l0 = T(1) - l1;
  t.l1 = l1;
  return t;
}

// How much input index i contributes to this tap (both taps may be the same index at an edge).
template <class T> C3_HD T tap_weight(const LinearTap<T>& t, int64_t i) {
  return (t.i0 == i ? t.l0 : T(0)) + (t.i1 == i ? t.l1 : T(0));
}

// PyTorch's order of operations (rows of the two taps first, then between them).
template <class T>
C3_HD T bilerp(const LinearTap<T>& ty, const LinearTap<T>& tx, T x00, T x01, T x10, T x11) {
  return ty.l0 * (tx.l0 * x00 + tx.l1 * x01) + ty.l1 * (tx.l0 * x10 + tx.l1 * x11);
}

C3_HD int64_t nearest_src(int64_t dst, int64_t in, int64_t out) {
  if (out == in) return dst;
  if (out == 2 * in) return dst >> 1;
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  int64_t s = static_cast<int64_t>(static_cast<float>(dst) * scale);  // >= 0: truncation is floor
  return s < in - 1 ? s : in - 1;
}

// Non-decreasing keys of the output coordinate, for the binary searches below.
template <class T> struct LinearKey {
  int64_t in;
  T scale;
  bool align_corners;
  C3_HD int64_t operator()(int64_t dst) const { return linear_tap<T>(dst, in, scale, align_corners).i0; }
};
struct NearestKey {
  int64_t in, out;
  C3_HD int64_t operator()(int64_t dst) const { return nearest_src(dst, in, out); }
};

// First dst in [0, out) with key(dst) > v, or out when there is none.
template <class Key> C3_HD int64_t first_above(const Key& key, int64_t out, int64_t v) {
  int64_t lo = 0, hi = out;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (key(mid) > v) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

// [lo, hi): the outputs whose taps may read input i, i.e. i-1 <= i0 <= i (i1 == i0+1 or the
// clamped edge). Widened by one on each side so that a tap evaluated elsewhere with a
// different rounding (FMA contraction) still falls inside; tap_weight() filters exactly.
template <class T>
C3_HD void linear_dst_range(int64_t i, int64_t in, int64_t out, T scale, bool align_corners, int64_t* lo,
                            int64_t* hi) {
  const LinearKey<T> key{in, scale, align_corners};
  const int64_t a = first_above(key, out, i - 2) - 1, b = first_above(key, out, i) + 1;
  *lo = a > 0 ? a : 0;
  *hi = b < out ? b : out;
}

// [lo, hi): the outputs whose nearest source is input i (empty when none is).
C3_HD void nearest_dst_range(int64_t i, int64_t in, int64_t out, int64_t* lo, int64_t* hi) {
  const NearestKey key{in, out};
  *lo = first_above(key, out, i - 1);
  *hi = first_above(key, out, i);
}

}  // namespace kernels
