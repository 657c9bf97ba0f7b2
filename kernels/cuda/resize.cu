// Resize kernels over NHWC tensors. Forward: one thread per output element (grid-stride,
// 64-bit indices), channel fastest, so neighbouring threads read neighbouring channels.
// Backward: a gather, one thread per input element summing the output gradients that read it
// (kernels/resize_math.h finds them by binary search). Chosen over scatter-add with atomics so
// the gradient is deterministic (same bits every run) and needs no zeroed buffer; the extra
// cost is a few dozen index evaluations per thread, small next to the memory traffic.
//
// The kernels are templates over the element type T: float, or bf16 computed in float (each
// element widened on load, each output narrowed once on store, kernels/bf16_math.h), so a bf16
// kernel gives the f32 kernel's result on the widened input, rounded once. For float widen and
// narrow are the identity: the f32 kernels are unchanged. Nearest forward only copies elements.
#include "kernels/cuda/check.h"
#include "kernels/cuda/launch_util.h"
#include "kernels/cuda/resize.h"

namespace kernels::KERNELS_NS {
namespace {
constexpr int kBlock = 256;

#define C3_GRID_STRIDE(k, total) \
  for (int64_t k = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; k < (total); k += (int64_t)gridDim.x * blockDim.x)

// Splits a flat NHWC index over [n, rows, cols, c].
struct Pos {
  int64_t n, row, col, c;
};
__device__ __forceinline__ Pos split(int64_t k, int64_t rows, int64_t cols, int64_t c) {
  Pos p;
  p.c = k % c;
  k /= c;
  p.col = k % cols;
  k /= cols;
  p.row = k % rows;
  p.n = k / rows;
  return p;
}

template <class T>
__global__ void bilinear_kernel(const T* x, T* y, ResizeShape s, bool ac, float scale_y, float scale_x) {
  const int64_t total = s.n * s.oh * s.ow * s.c;
  C3_GRID_STRIDE(k, total) {
    const Pos p = split(k, s.oh, s.ow, s.c);
    const LinearTap<float> ty = linear_tap<float>(p.row, s.h, scale_y, ac);
    const LinearTap<float> tx = linear_tap<float>(p.col, s.w, scale_x, ac);
    const T* r0 = x + (p.n * s.h + ty.i0) * s.w * s.c + p.c;
    const T* r1 = x + (p.n * s.h + ty.i1) * s.w * s.c + p.c;
    y[k] = narrow<T>(bilerp<float>(ty, tx, widen(r0[tx.i0 * s.c]), widen(r0[tx.i1 * s.c]), widen(r1[tx.i0 * s.c]),
                                   widen(r1[tx.i1 * s.c])));
  }
}

// Sums oy-major, like the CPU kernel. The sum of the (up to dozens of) weighted output
// gradients that read one input is kept in float whatever T is, and rounded to T once at the
// end: for bf16, summing in bf16 would round at every term.
template <class T>
__global__ void bilinear_backward_kernel(const T* gy, T* gx, ResizeShape s, bool ac, float scale_y, float scale_x) {
  const int64_t total = s.n * s.h * s.w * s.c;
  C3_GRID_STRIDE(k, total) {
    const Pos p = split(k, s.h, s.w, s.c);
    int64_t y0, y1, x0, x1;
    linear_dst_range<float>(p.row, s.h, s.oh, scale_y, ac, &y0, &y1);
    linear_dst_range<float>(p.col, s.w, s.ow, scale_x, ac, &x0, &x1);
    float acc = 0.f;
    for (int64_t oy = y0; oy < y1; ++oy) {
      const float wy = tap_weight(linear_tap<float>(oy, s.h, scale_y, ac), p.row);
      if (wy == 0.f) continue;
      const T* grow = gy + (p.n * s.oh + oy) * s.ow * s.c + p.c;
      for (int64_t ox = x0; ox < x1; ++ox) {
        const float w = wy * tap_weight(linear_tap<float>(ox, s.w, scale_x, ac), p.col);
        if (w == 0.f) continue;
        acc += w * widen(grow[ox * s.c]);
      }
    }
    gx[k] = narrow<T>(acc);
  }
}

template <class T> __global__ void nearest_kernel(const T* x, T* y, ResizeShape s) {
  const int64_t total = s.n * s.oh * s.ow * s.c;
  C3_GRID_STRIDE(k, total) {
    const Pos p = split(k, s.oh, s.ow, s.c);
    const int64_t iy = nearest_src(p.row, s.h, s.oh), ix = nearest_src(p.col, s.w, s.ow);
    y[k] = x[((p.n * s.h + iy) * s.w + ix) * s.c + p.c];
  }
}

// As bilinear_backward_kernel: the sum in float, rounded to T once.
template <class T> __global__ void nearest_backward_kernel(const T* gy, T* gx, ResizeShape s) {
  const int64_t total = s.n * s.h * s.w * s.c;
  C3_GRID_STRIDE(k, total) {
    const Pos p = split(k, s.h, s.w, s.c);
    int64_t y0, y1, x0, x1;
    nearest_dst_range(p.row, s.h, s.oh, &y0, &y1);
    nearest_dst_range(p.col, s.w, s.ow, &x0, &x1);
    float acc = 0.f;
    for (int64_t oy = y0; oy < y1; ++oy) {
      const T* grow = gy + (p.n * s.oh + oy) * s.ow * s.c + p.c;
      for (int64_t ox = x0; ox < x1; ++ox) acc += widen(grow[ox * s.c]);
    }
    gx[k] = narrow<T>(acc);
  }
}

template <class T> void bilinear(const T* x, T* y, const ResizeShape& s, bool ac) {
  const int64_t total = s.n * s.oh * s.ow * s.c;
  if (total == 0) return;
  LAUNCH_CHECK(launch(bilinear_kernel<T>, grid_for(total, kBlock), kBlock, 0, nullptr, x, y, s, ac,
                      linear_scale<float>(s.h, s.oh, ac), linear_scale<float>(s.w, s.ow, ac)));
}
template <class T> void bilinear_backward(const T* gy, T* gx, const ResizeShape& s, bool ac) {
  const int64_t total = s.n * s.h * s.w * s.c;
  if (total == 0) return;
  LAUNCH_CHECK(launch(bilinear_backward_kernel<T>, grid_for(total, kBlock), kBlock, 0, nullptr, gy, gx, s, ac,
                      linear_scale<float>(s.h, s.oh, ac), linear_scale<float>(s.w, s.ow, ac)));
}
template <class T> void nearest(const T* x, T* y, const ResizeShape& s) {
  const int64_t total = s.n * s.oh * s.ow * s.c;
  if (total == 0) return;
  LAUNCH_CHECK(launch(nearest_kernel<T>, grid_for(total, kBlock), kBlock, 0, nullptr, x, y, s));
}
template <class T> void nearest_backward(const T* gy, T* gx, const ResizeShape& s) {
  const int64_t total = s.n * s.h * s.w * s.c;
  if (total == 0) return;
  LAUNCH_CHECK(launch(nearest_backward_kernel<T>, grid_for(total, kBlock), kBlock, 0, nullptr, gy, gx, s));
}
}  // namespace

void resize_bilinear_f32(const float* x, float* y, ResizeShape s, bool ac) { bilinear(x, y, s, ac); }
void resize_bilinear_bf16(const bf16* x, bf16* y, ResizeShape s, bool ac) { bilinear(x, y, s, ac); }
void resize_bilinear_backward_f32(const float* gy, float* gx, ResizeShape s, bool ac) {
  bilinear_backward(gy, gx, s, ac);
}
void resize_bilinear_backward_bf16(const bf16* gy, bf16* gx, ResizeShape s, bool ac) {
  bilinear_backward(gy, gx, s, ac);
}
void resize_nearest_f32(const float* x, float* y, ResizeShape s) { nearest(x, y, s); }
void resize_nearest_i32(const int32_t* x, int32_t* y, ResizeShape s) { nearest(x, y, s); }
void resize_nearest_u8(const uint8_t* x, uint8_t* y, ResizeShape s) { nearest(x, y, s); }
void resize_nearest_backward_f32(const float* gy, float* gx, ResizeShape s) { nearest_backward(gy, gx, s); }

}  // namespace kernels::KERNELS_NS
