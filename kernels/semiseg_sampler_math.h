// The anchor sampler of the pixel contrastive loss (METHOD.md "L_con"), written once for the
// CPU loop and the CUDA kernel, so a seed gives the same anchors on both.
//
// Per image n and class c (labels at feature resolution; 255 and anything outside [0, C)
// ignored; class 0 too with skip_class0) with more than min_pixels pixels: `hard` positions
// where the prediction differs from the label, the rest of `per_class` easy ones (filled from
// the other side when one side is short); hard_easy = false: per_class of any. Each side's
// positions are drawn uniformly without replacement: the ones with the smallest keys, a key
// being 32 Philox bits of (seed, stream kSamplerStream, position) above the position itself.
//
// The output has a fixed size, so the host never needs the anchor count: image n owns
// `slots_per_image` rows, blocks of per_class rows for its qualifying classes in ascending
// order (hard picks first, then easy, each by key), then empty rows: index 0, label -1,
// which the contrastive loss leaves out. A class qualifies with more than min_pixels of the
// hw pixels, so an image holds at most hw / (min_pixels + 1) of them.
#pragma once
#include <cstdint>

#include "kernels/hd.h"
#include "kernels/philox_math.h"

namespace kernels {

constexpr uint32_t kSamplerStream = 0x53414d50u;  // "SAMP": independent of the Generator's stream 0

struct SamplerParams {
  int64_t N = 0, hw = 0;  // images, positions per image
  int C = 0;              // classes
  int per_class = 20, hard = 10, min_pixels = 20;
  bool skip_class0 = true, hard_easy = true;
  uint64_t seed = 0;
};

// Classes an image can hold (blocks of per_class rows per image).
C3_HD int64_t sampler_class_blocks(const SamplerParams& p) {
  const int64_t classes = p.C - (p.skip_class0 && p.C > 0 ? 1 : 0);
  const int64_t fit = p.hw / (int64_t(p.min_pixels) + 1);
  return classes < fit ? classes : fit;
}
C3_HD int64_t sampler_slots_per_image(const SamplerParams& p) { return sampler_class_blocks(p) * p.per_class; }

// The class a label value stands for, or -1 when ignored.
C3_HD int sampler_class(int32_t y, const SamplerParams& p) {
  if (y < 0 || y >= p.C || (p.skip_class0 && y == 0)) return -1;
  return y;
}

// Key of batch position i: unique (the position is in the low 32 bits), uniform order.
C3_HD uint64_t sampler_key(uint64_t seed, int64_t i) {
  PhiloxDraw d;
  d.seed = seed, d.offset = 0, d.stream = kSamplerStream;
  const PhiloxBlock b = philox_group(d, uint64_t(i) / 4);
  return (uint64_t(b.w[i % 4]) << 32) | uint32_t(i);
}

// How many hard and easy positions a class takes, given how many it has.
C3_HD void sampler_takes(int64_t nh, int64_t ne, const SamplerParams& p, int64_t& th, int64_t& te) {
  th = te = 0;
  if (nh + ne <= p.min_pixels) return;
  if (!p.hard_easy) {  // one side: all positions, counted as "hard"
    th = nh + ne < p.per_class ? nh + ne : p.per_class;
    return;
  }
  th = p.hard < nh ? p.hard : nh;
  te = p.per_class - th < ne ? p.per_class - th : ne;
  th = p.per_class - te < nh ? p.per_class - te : nh;  // fill from the hard side
}

// Side of a position of class c: 0 hard (prediction != label), 1 easy; hard_easy = false: 0.
C3_HD int sampler_side(int32_t y, int32_t pred, const SamplerParams& p) {
  return p.hard_easy && pred == y ? 1 : 0;
}

}  // namespace kernels
