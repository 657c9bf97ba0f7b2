// Test-time inference as mmsegmentation does it: whole image or sliding window, at one or
// several scales, with or without the mirrored image.
//
//   whole:   logits of the whole image.
//   slide:   windows of window_h x window_w every stride_h / stride_w pixels (the last one of a
//            row or column moved back to end at the border), logits averaged where windows
//            overlap (mmseg's slide_inference).
//   scales:  the image resized (bilinear) by each factor, each one's logits resized back to the
//            image size (the model's align_corners) and turned into probabilities; the
//            probabilities of every scale and flip averaged (mmseg's aug_test).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "core/precision.h"
#include "core/tensor.h"

namespace c3::semiseg {

struct InferOptions {
  std::vector<double> scales{1.0};
  bool flip = false;               // also the horizontally mirrored image, mirrored back
  int window_h = 0, window_w = 0;  // 0: the whole image
  int stride_h = 0, stride_w = 0;
  Precision precision = Precision::tf32;  // bf16: the forwards under autocast (train.precision)

  bool whole_image_only() const { return scales == std::vector<double>{1.0} && !flip && window_h == 0; }
  std::string describe() const;  // "whole image" or e.g. "window 64x128 stride 32x64, scales 0.75,1,1.25, flip"
};

// Start positions of the windows along one side of `size` pixels (mmseg's grid): the first at
// 0, then every `stride`, the last one ending at `size`. A window larger than the side is one
// window of the whole side.
std::vector<int> window_starts(int size, int window, int stride);

// Logits [N,h,w,C] of images [N,h,w,3], any h, w (the model, in eval mode and without grad).
using ForwardFn = std::function<Tensor(const Tensor&)>;

// Class probabilities [N,H,W,C] of the normalized images x [N,H,W,3] under `o`.
Tensor infer_probs(const ForwardFn& forward, const Tensor& x, const InferOptions& o, bool align_corners);

// Horizontally mirrored NHWC tensor (any channel count), on its device.
Tensor flip_width(const Tensor& x);

// "--window 64x128 --stride 32x64 --scales 0.75,1,1.25 --flip" parsed pieces: an error naming
// the option for anything malformed or out of range.
void parse_window(const std::string& opt, const std::string& text, int& h, int& w);
std::vector<double> parse_scales(const std::string& text);
void check_infer_options(const InferOptions& o);

}  // namespace c3::semiseg
