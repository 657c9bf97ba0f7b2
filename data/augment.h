// Augmentation of images (RGB, HWC u8) and label maps (1 channel, trainIds, 255 = ignore),
// as METHOD.md ("Augmentation") fixes it: the labeled pipeline, the shared geometry of the
// weak and strong views, the strong view's colour jitter and RandAugment, the CutMix box.
//
// Every op is a plain function with explicit parameters (tested on hand-made images); the
// draw_* functions draw those parameters from an Rng, and make_views runs a whole pipeline.
//
// Semantics follow what the reference code runs (PIL images through torchvision and timm):
// - resize_bilinear: half-pixel centres (align_corners=false), 2 taps per axis, no
//   antialiasing, source coordinate clamped at the borders, rounded to nearest.
//   resize_nearest: src = floor(dst * in / out) (PyTorch's "nearest").
// - rotate: PIL Image.rotate(angle) (counter-clockwise, about (w/2, h/2), cos/sin rounded to
//   15 decimals as PIL does): bilinear = PIL's affine bilinear filter (neighbours clamped,
//   result truncated), nearest = PIL's 16.16 fixed-point nearest; a pixel whose source
//   falls outside the image gets `fill`.
// - colour ops: PIL ImageEnhance / ImageOps / torchvision's PIL functions, including their
//   integer arithmetic (blend truncates; grayscale is PIL's fixed-point ITU-R 601-2 luma).
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "data/image.h"
#include "data/rng.h"

namespace c3::data {

// ---- geometry (augment_geometry.cpp) ------------------------------------------------------

Image resize_bilinear(const Image& img, int out_h, int out_w);  // any channel count
Image resize_nearest(const Image& img, int out_h, int out_w);   // labels
// The h x w window whose top-left is (y0, x0) in img; pixels outside img get `fill`
// (so a negative or too-large window pads).
Image crop_pad(const Image& img, int y0, int x0, int h, int w, uint8_t fill);
Image hflip(const Image& img);
// Rotation by `angle_deg` degrees counter-clockwise about the centre, same size.
Image rotate(const Image& img, int angle_deg, bool nearest, uint8_t fill);
// Rows [y0, y0+h) and columns [x0, x0+w) of rotate(img, ...), computing only those pixels.
Image rotate_window(const Image& img, int angle_deg, bool nearest, uint8_t fill, int y0, int x0, int h, int w);

// One draw of the shared geometry, in the order it is applied:
// rotate(angle) -> resize to (scaled_h, scaled_w) -> crop_pad(crop_y, crop_x, out_h, out_w) -> flip.
struct Geometry {
  int in_h = 0, in_w = 0;          // size of the input (after the base resize)
  int angle = 0;                   // degrees, counter-clockwise
  int scaled_h = 0, scaled_w = 0;  // size after the random scale
  int crop_y = 0, crop_x = 0;      // window in the scaled image; negative = padding
  int out_h = 0, out_w = 0;        // output size (the crop size, or the scaled size)
  bool flip = false;
};

// Applies g to an image (bilinear, fill 0) and optionally a label (nearest, fill 255),
// equal to hflip(crop_pad(resize(rotate(x)))) byte for byte but computing the rotation and
// resize only where the crop needs them. `label` may be null or empty.
void apply_geometry(const Geometry& g, const Image& img, const Image* label, Image* out_img, Image* out_label);

// ---- colour ops (augment_color.cpp); images are RGB, modified in place ----------------------

uint8_t luma601(const uint8_t* rgb);         // PIL convert("L"): (r*19595 + g*38470 + b*7471 + 2^15) >> 16
void grayscale(Image& img);                  // every channel = luma601
void adjust_brightness(Image& img, float f); // ImageEnhance.Brightness: blend with black
void adjust_contrast(Image& img, float f);   // ImageEnhance.Contrast: blend with the mean luma
void adjust_saturation(Image& img, float f); // ImageEnhance.Color: blend with the grayscale image
void adjust_sharpness(Image& img, float f);  // ImageEnhance.Sharpness: blend with PIL SMOOTH
// torchvision adjust_hue on PIL: H channel of PIL's 8-bit HSV += trunc(h*255) (mod 256).
void adjust_hue(Image& img, float h);
void autocontrast(Image& img);               // ImageOps.autocontrast, per channel, cutoff 0
void equalize(Image& img);                   // ImageOps.equalize (current Pillow: step // 255), per channel
void invert(Image& img);                     // 255 - v
void posterize(Image& img, int bits);        // keep the top `bits` bits (0..8)
void solarize(Image& img, int threshold);    // v >= threshold -> 255 - v
void solarize_add(Image& img, int add, int threshold = 128);  // v < threshold -> min(v + add, 255)
// torchvision gaussian_blur: odd kernel size, exp(-x^2 / 2 sigma^2) normalized, reflect
// padding, round half to even (applied separably here).
void gaussian_blur(Image& img, float sigma, int kernel_size);

// torchvision ColorJitter: the four factors, applied in `order`
// (0 brightness, 1 contrast, 2 saturation, 3 hue).
struct Jitter {
  std::array<int, 4> order{0, 1, 2, 3};
  float brightness = 1, contrast = 1, saturation = 1, hue = 0;
};
void apply_jitter(Image& img, const Jitter& j);

// RandAugment ops of METHOD.md, with timm's magnitude -> parameter maps (m in [0, 10]).
enum class RandOp { AutoContrast, Equalize, Invert, Posterize, Solarize, SolarizeAdd, Color, Contrast,
                    Brightness, Sharpness };
constexpr int kNumRandOps = 10;
const char* rand_op_name(RandOp op);
void apply_rand_op(Image& img, RandOp op, double magnitude);

// ---- configuration, draws and pipelines (augment.cpp) --------------------------------------

struct AugmentConfig {
  // geometry (labeled data and both unlabeled views)
  int base_h = 512, base_w = 1024;  // resize every loaded sample to this; 0 = keep its size
  int crop_h = 256, crop_w = 512;   // random crop (padding when smaller); 0 = no crop
  std::vector<double> scales{1.0};  // one factor drawn per sample; scaled size = round(size * f)
  int rotate_max = 10;              // integer angle uniform in [-rotate_max, rotate_max]; 0 = off
  double flip_p = 0.5;
  // strong view: colour jitter (torchvision ColorJitter strengths), applied with jitter_p
  bool jitter = true;
  double jitter_p = 1.0;
  float brightness = 0.5f, contrast = 0.5f, saturation = 0.5f, hue = 0.25f;
  // strong view: RandAugment "n2 m10 mstd0.5", each op applied with ra_p
  bool randaugment = true;
  int ra_n = 2;
  double ra_m = 10, ra_mstd = 0.5, ra_p = 0.5;
  // strong view: extras used by other recipes (off in C3's)
  double grayscale_p = 0;
  double blur_p = 0;
  float blur_sigma_min = 0.1f, blur_sigma_max = 2.0f;
  int blur_kernel = 23;

  // No randomness: base resize only (evaluation).
  static AugmentConfig none(int base_h, int base_w);
};

Geometry draw_geometry(int in_h, int in_w, const AugmentConfig& cfg, Rng& rng);
Jitter draw_jitter(const AugmentConfig& cfg, Rng& rng);
// Draws and applies the strong view's photometric ops: jitter, RandAugment, grayscale, blur.
void strong_photometric(Image& img, const AugmentConfig& cfg, Rng& rng);
// RandAugment alone: ra_n ops drawn with replacement, each applied with probability ra_p at
// magnitude N(ra_m, ra_mstd) clipped to [0, 10] (timm's order of draws).
void randaugment(Image& img, const AugmentConfig& cfg, Rng& rng);

// The views of one sample. Labeled pipeline: weak + label. Unlabeled: weak (geometry only,
// for the teacher) and strong (the same geometry, then photometric ops, for the student).
struct Views {
  Image weak, strong, label;
};
// `img` and `label` are already base-resized; label may be empty. Geometry is drawn first,
// so the weak view and the label do not depend on whether a strong view is made.
Views make_views(const Image& img, const Image& label, const AugmentConfig& cfg, Rng& rng, bool want_strong);

// CutMix box covering half the image: height fraction exp(U(0,1) ln 0.5) in (0.5, 1],
// width fraction 0.5 / height fraction; h = round(H * hf), w = round(H*W/2 / h) (so the
// area is half to within half a column), position uniform inside the image.
struct Box {
  int y0 = 0, x0 = 0, h = 0, w = 0;
};
Box cutmix_box(int H, int W, Rng& rng);

}  // namespace c3::data
