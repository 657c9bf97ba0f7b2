// Cross-set CutMix of C3-SemiSeg (METHOD.md "One training step", steps 3 and 4) as
// differentiable batch ops on the device.
//
// Layout: a batch of 2K tensors x [2K, H, W, C] (or [2K, H, W]) holds K pairs (A, B) =
// (x[k], x[k+K]). Each pair has one Box (y0, x0, h, w) at the box resolution box_h x box_w
// (the image size); the mask m is 0 inside the box and 1 outside.
//   cutmix_mix:   out[k]   = img1 = A*(1-m) + B*m   (B with A's box pasted in)
//                 out[k+K] = img2 = A*m + B*(1-m)   (A with B's box pasted in)
//   cutmix_unmix: given predictions P in the same layout (P[k] = P(img1), P[k+K] = P(img2)),
//                 out[k]   = pred_A = P(img1)*(1-m) + P(img2)*m
//                 out[k+K] = pred_B = P(img1)*m + P(img2)*(1-m)
// For a tensor whose H, W differ from box_h, box_w (features, logits at output stride 8),
// m is nearest-resized with src = floor(dst * in/out), as resize_nearest does it.
//
// Since m is binary, both are the same exact routing of elements (no arithmetic): mix and
// unmix are inverses bit for bit, and the backward of each is the same routing of the
// gradient. f32, f64, i32, u8, bf16 on the CPU; f32, i32, u8, bf16 on CUDA. Differentiable
// for floating inputs (f32, f64, bf16).
#pragma once
#include <vector>

#include "core/rng.h"
#include "core/tensor.h"
#include "data/augment.h"

namespace c3::semiseg {

using Box = c3::data::Box;

// `packed`: the same boxes as i32 [K, 4] (y0, x0, h, w) already on x's device, uploaded once by
// the caller for several calls; without it a GPU call uploads them (a host sync, which the
// CPU path counts too).
Tensor cutmix_mix(const Tensor& x, const std::vector<Box>& boxes, int64_t box_h, int64_t box_w,
                  const Tensor& packed = Tensor());
Tensor cutmix_unmix(const Tensor& pred, const std::vector<Box>& boxes, int64_t box_h, int64_t box_w,
                    const Tensor& packed = Tensor());

// m itself, u8 [K, h, w] (1 outside the box), at resolution h x w; CPU. For tests, pictures
// and losses that need the mask explicitly.
Tensor cutmix_mask(const std::vector<Box>& boxes, int64_t h, int64_t w, int64_t box_h, int64_t box_w);

// One box covering half of an H x W image, drawn from a Philox Generator (the device-batch
// counterpart of data::cutmix_box, which draws from a loader thread's data::Rng; both use the
// same rule): height fraction exp(U * ln 0.5) in (0.5, 1], h = round(H * hf) clamped to
// [1, H], w = round(H*W/2 / h) clamped to [1, W], (y0, x0) uniform over the positions that
// keep the box inside the image. Consumes 3 Philox blocks.
Box cutmix_box(Generator& gen, int H, int W);
std::vector<Box> cutmix_boxes(Generator& gen, int64_t K, int H, int W);

}  // namespace c3::semiseg
