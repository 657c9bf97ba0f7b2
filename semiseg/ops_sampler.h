// The anchor sampler of the pixel contrastive loss (METHOD.md "L_con"): which feature-map
// positions become anchors.
//
// For each image n and each class c with MORE than min_pixels pixels of label c in the
// image (ignore_index never counts), per_class positions are drawn: `hard` of them among the
// "hard" pixels (pred != label) and the rest among the "easy" ones (pred == label); a group
// that is short is filled from the other one, so a class gives min(per_class, its pixels)
// positions. Positions are uniformly random within a group (without replacement), drawn
// from the Generator: the same seed and inputs give the same sample. With hard_easy = false
// the per_class positions are drawn uniformly among all the class's pixels.
// skip_class0 reproduces the reference code, whose sampler never takes class 0 (road).
//
// Runs on the CPU: the maps are small (16 x 33 x 65 at output stride 8). CUDA inputs are
// copied to the host (one synchronization) and the result is copied back.
#pragma once
#include "core/rng.h"
#include "core/tensor.h"

namespace c3::semiseg {

struct SamplerOptions {
  int per_class = 20;
  int hard = 10;           // hard positions per class; per_class - hard easy ones
  int min_pixels = 20;     // a class is sampled when it has more than this many pixels
  bool skip_class0 = true;
  bool hard_easy = true;   // false: random sampling within the class
  int ignore_index = 255;
};

struct AnchorSample {
  Tensor index;  // i32 [K]: rows of the [N*h*w] flattened maps, e.g. for gather_rows
  Tensor label;  // i32 [K]: their labels
};

// labels, pred: [N, h, w], i32 or u8, same shape and device. Output order: image by image,
// classes ascending, hard positions before easy ones.
AnchorSample sample_anchors(const Tensor& labels, const Tensor& pred, Generator& gen,
                            const SamplerOptions& opt = {});

// The sampler of the training step, on the maps' device with nothing read back: the same
// recipe with its randomness from Philox keys under `seed` (kernels/semiseg_sampler_math.h),
// into `per_image` rows per image: index [N * per_image] (rows of the [N*h*w] maps) and label
// (-1 on an empty row, which contrastive_loss leaves out). labels, pred: i32 [N, h, w].
struct AnchorRows {
  Tensor index, label;
  int64_t per_image = 0;
};
AnchorRows sample_anchor_rows(const Tensor& labels, const Tensor& pred, int classes, uint64_t seed,
                              const SamplerOptions& opt = {});


}  // namespace c3::semiseg
