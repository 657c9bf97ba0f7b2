// Geometry of a 2-D convolution (NHWC), shared by the CPU kernels and the cuDNN wrapper, so
// both backends agree on the output size and on which input pixel each filter tap reads.
#pragma once
#include <cstdint>

#include "kernels/hd.h"

namespace kernels {

// x [N,H,W,C]  *  w [K,kh,kw,C]  ->  y [N,Ho,Wo,K]   (cross-correlation, like PyTorch/cuDNN)
struct ConvGeom {
  int64_t N = 0, H = 0, W = 0, C = 0;  // input
  int64_t K = 0, kh = 0, kw = 0;       // filters (K = output channels)
  int64_t sh = 1, sw = 1;              // stride
  int64_t ph = 0, pw = 0;              // zero padding on both sides
  int64_t dh = 1, dw = 1;              // dilation
  int64_t Ho = 0, Wo = 0;              // output, from conv_out_size

  int64_t taps() const { return kh * kw * C; }        // one im2col row: (ky, kx, c), c fastest
  int64_t out_pixels() const { return N * Ho * Wo; }  // im2col rows
  // A 1x1 stride-1 unpadded conv reads exactly one input pixel per output pixel: a GEMM.
  bool is_pointwise() const { return kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0; }
};

// Output length along one axis; 0 when the dilated kernel does not fit the padded input.
// (Tested before dividing: C++ division truncates a negative numerator towards zero.)
C3_HD int64_t conv_out_size(int64_t in, int64_t k, int64_t stride, int64_t pad, int64_t dil) {
  const int64_t span = dil * (k - 1) + 1;
  if (in + 2 * pad < span) return 0;
  return (in + 2 * pad - span) / stride + 1;
}

inline ConvGeom make_conv_geom(int64_t N, int64_t H, int64_t W, int64_t C, int64_t K, int64_t kh, int64_t kw,
                               int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw) {
  ConvGeom g;
  g.N = N, g.H = H, g.W = W, g.C = C, g.K = K, g.kh = kh, g.kw = kw;
  g.sh = sh, g.sw = sw, g.ph = ph, g.pw = pw, g.dh = dh, g.dw = dw;
  g.Ho = conv_out_size(H, kh, sh, ph, dh);
  g.Wo = conv_out_size(W, kw, sw, pw, dw);
  return g;
}

// The input coordinate read by output coordinate o through kernel tap k (may be outside
// [0, in): that tap reads the zero padding).
C3_HD int64_t conv_in_coord(int64_t o, int64_t k, int64_t stride, int64_t pad, int64_t dil) {
  return o * stride - pad + k * dil;
}

}  // namespace kernels
