#include "kernels/cpu/resize.h"

#include <cstddef>
#include <vector>

#include "kernels/launch_counter.h"

namespace kernels::cpu {
namespace {

constexpr int64_t kParallelMin = 32768;  // elements below which threads cost more than they save

template <class T> std::vector<LinearTap<T>> taps(int64_t in, int64_t out, bool align_corners) {
  const T scale = linear_scale<T>(in, out, align_corners);
  std::vector<LinearTap<T>> t(static_cast<size_t>(out));
  for (int64_t d = 0; d < out; ++d) t[d] = linear_tap<T>(d, in, scale, align_corners);
  return t;
}

// Per input index i: [lo, hi) of the output indices that may read it.
struct Ranges {
  std::vector<int64_t> lo, hi;
};
template <class T> Ranges linear_ranges(int64_t in, int64_t out, bool align_corners) {
  const T scale = linear_scale<T>(in, out, align_corners);
  Ranges r{std::vector<int64_t>(in), std::vector<int64_t>(in)};
  for (int64_t i = 0; i < in; ++i) linear_dst_range<T>(i, in, out, scale, align_corners, &r.lo[i], &r.hi[i]);
  return r;
}
Ranges nearest_ranges(int64_t in, int64_t out) {
  Ranges r{std::vector<int64_t>(in), std::vector<int64_t>(in)};
  for (int64_t i = 0; i < in; ++i) nearest_dst_range(i, in, out, &r.lo[i], &r.hi[i]);
  return r;
}

}  // namespace

template <class T> void resize_bilinear(const T* x, T* y, const ResizeShape& s, bool align_corners) {
  count_launch();
  const auto ty = taps<T>(s.h, s.oh, align_corners), tx = taps<T>(s.w, s.ow, align_corners);
  const int64_t C = s.c;
#pragma omp parallel for collapse(2) schedule(static) if (s.n * s.oh * s.ow * C > kParallelMin)
  for (int64_t n = 0; n < s.n; ++n)
    for (int64_t oy = 0; oy < s.oh; ++oy) {
      const LinearTap<T>& a = ty[oy];
      const T* r0 = x + (n * s.h + a.i0) * s.w * C;
      const T* r1 = x + (n * s.h + a.i1) * s.w * C;
      T* out = y + (n * s.oh + oy) * s.ow * C;
      for (int64_t ox = 0; ox < s.ow; ++ox) {
        const LinearTap<T>& b = tx[ox];
        const T *p00 = r0 + b.i0 * C, *p01 = r0 + b.i1 * C, *p10 = r1 + b.i0 * C, *p11 = r1 + b.i1 * C;
        T* q = out + ox * C;
        for (int64_t c = 0; c < C; ++c) q[c] = bilerp(a, b, p00[c], p01[c], p10[c], p11[c]);
      }
    }
}

// Gather: gx[n,iy,ix,c] = sum over the outputs that read (iy,ix) of wy * wx * gy[n,oy,ox,c],
// summed oy-major like the CUDA kernel, so the two agree to the last bits.
template <class T> void resize_bilinear_backward(const T* gy, T* gx, const ResizeShape& s, bool align_corners) {
  count_launch();
  const auto ty = taps<T>(s.h, s.oh, align_corners), tx = taps<T>(s.w, s.ow, align_corners);
  const Ranges ry = linear_ranges<T>(s.h, s.oh, align_corners), rx = linear_ranges<T>(s.w, s.ow, align_corners);
  const int64_t C = s.c;
#pragma omp parallel for collapse(2) schedule(static) if (s.n * s.oh * s.ow * C > kParallelMin)
  for (int64_t n = 0; n < s.n; ++n)
    for (int64_t iy = 0; iy < s.h; ++iy) {
      T* out = gx + (n * s.h + iy) * s.w * C;
      for (int64_t k = 0; k < s.w * C; ++k) out[k] = T(0);
      for (int64_t oy = ry.lo[iy]; oy < ry.hi[iy]; ++oy) {
        const T wy = tap_weight(ty[oy], iy);
        if (wy == T(0)) continue;
        const T* grow = gy + (n * s.oh + oy) * s.ow * C;
        for (int64_t ix = 0; ix < s.w; ++ix)
          for (int64_t ox = rx.lo[ix]; ox < rx.hi[ix]; ++ox) {
            const T w = wy * tap_weight(tx[ox], ix);
            if (w == T(0)) continue;
            const T* g = grow + ox * C;
            T* q = out + ix * C;
            for (int64_t c = 0; c < C; ++c) q[c] += w * g[c];
          }
      }
    }
}

template <class T> void resize_nearest(const T* x, T* y, const ResizeShape& s) {
  count_launch();
  std::vector<int64_t> sx(static_cast<size_t>(s.ow));
  for (int64_t ox = 0; ox < s.ow; ++ox) sx[ox] = nearest_src(ox, s.w, s.ow);
  const int64_t C = s.c;
#pragma omp parallel for collapse(2) schedule(static) if (s.n * s.oh * s.ow * C > kParallelMin)
  for (int64_t n = 0; n < s.n; ++n)
    for (int64_t oy = 0; oy < s.oh; ++oy) {
      const T* row = x + (n * s.h + nearest_src(oy, s.h, s.oh)) * s.w * C;
      T* out = y + (n * s.oh + oy) * s.ow * C;
      for (int64_t ox = 0; ox < s.ow; ++ox) {
        const T* p = row + sx[ox] * C;
        for (int64_t c = 0; c < C; ++c) out[ox * C + c] = p[c];
      }
    }
}

template <class T> void resize_nearest_backward(const T* gy, T* gx, const ResizeShape& s) {
  count_launch();
  const Ranges ry = nearest_ranges(s.h, s.oh), rx = nearest_ranges(s.w, s.ow);
  const int64_t C = s.c;
#pragma omp parallel for collapse(2) schedule(static) if (s.n * s.oh * s.ow * C > kParallelMin)
  for (int64_t n = 0; n < s.n; ++n)
    for (int64_t iy = 0; iy < s.h; ++iy) {
      T* out = gx + (n * s.h + iy) * s.w * C;
      for (int64_t k = 0; k < s.w * C; ++k) out[k] = T(0);
      for (int64_t oy = ry.lo[iy]; oy < ry.hi[iy]; ++oy) {
        const T* grow = gy + (n * s.oh + oy) * s.ow * C;
        for (int64_t ix = 0; ix < s.w; ++ix)
          for (int64_t ox = rx.lo[ix]; ox < rx.hi[ix]; ++ox)
            for (int64_t c = 0; c < C; ++c) out[ix * C + c] += grow[ox * C + c];
      }
    }
}

template void resize_bilinear<float>(const float*, float*, const ResizeShape&, bool);
template void resize_bilinear<double>(const double*, double*, const ResizeShape&, bool);
template void resize_bilinear_backward<float>(const float*, float*, const ResizeShape&, bool);
template void resize_bilinear_backward<double>(const double*, double*, const ResizeShape&, bool);
template void resize_nearest<float>(const float*, float*, const ResizeShape&);
template void resize_nearest<double>(const double*, double*, const ResizeShape&);
template void resize_nearest<int32_t>(const int32_t*, int32_t*, const ResizeShape&);
template void resize_nearest<uint8_t>(const uint8_t*, uint8_t*, const ResizeShape&);
template void resize_nearest_backward<float>(const float*, float*, const ResizeShape&);
template void resize_nearest_backward<double>(const double*, double*, const ResizeShape&);

}  // namespace kernels::cpu
