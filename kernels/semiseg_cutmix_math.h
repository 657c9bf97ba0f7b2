// CutMix routing of C3-SemiSeg (METHOD.md "One training step", steps 3-4), shared by the CPU
// loops and the CUDA kernels.
//
// A batch of 2K tensors [2K, H, W, C] holds K pairs (k, k + K). Pair k has one box
// (y0, x0, h, w), given at the "box resolution" box_h x box_w (the image size); the mask
// is m = 0 inside the box, 1 outside. For a tensor at another resolution (a feature map),
// pixel (y, x) reads the mask at (nearest_src(y), nearest_src(x)): PyTorch's nearest resize
// of m, src = floor(dst * in/out) (kernels/resize_math.h), so it matches resize_nearest.
//
// With m binary, both the mix and the un-mix are the same routing: element k keeps its own
// pixel inside the box and takes its partner's (k +- K) outside it:
//   out[k]   = x[k] * (1-m) + x[k+K] * m      (img1 = A(1-m) + B m,  or pred_A)
//   out[k+K] = x[k] * m     + x[k+K] * (1-m)  (img2 = A m + B(1-m),  or pred_B)
// It is a symmetric permutation of the elements, hence its own inverse and its own adjoint.
#pragma once
#include <cstdint>

#include "kernels/resize_math.h"

namespace kernels {

// Box of pair k: boxes[4k .. 4k+3] = y0, x0, h, w at box resolution.
// True where m = 1 (outside the box), i.e. where the pair's pixels are exchanged.
C3_HD bool cutmix_outside(const int32_t* box, int64_t y, int64_t x, int64_t H, int64_t W, int64_t box_h,
                          int64_t box_w) {
  const int64_t sy = nearest_src(y, box_h, H), sx = nearest_src(x, box_w, W);
  const bool inside = sy >= box[0] && sy < box[0] + box[2] && sx >= box[1] && sx < box[1] + box[3];
  return !inside;
}

// The batch element whose pixel (y, x) lands in element b of the output.
C3_HD int64_t cutmix_source(int64_t b, int64_t K, const int32_t* boxes, int64_t y, int64_t x, int64_t H, int64_t W,
                            int64_t box_h, int64_t box_w) {
  const bool first = b < K;
  const int64_t k = first ? b : b - K;
  if (!cutmix_outside(boxes + 4 * k, y, x, H, W, box_h, box_w)) return b;
  return first ? b + K : b - K;
}

}  // namespace kernels
