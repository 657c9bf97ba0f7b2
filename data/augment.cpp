// Drawing augmentation parameters and running the pipelines of METHOD.md. The order of the
// draws is part of the contract (a seed gives the same views on every machine): geometry
// (angle, scale, crop y, crop x, flip), then jitter (apply?, order, factors), then RandAugment
// (ops, then per op: apply?, magnitude), then grayscale and blur.
#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "data/augment.h"

namespace c3::data {

AugmentConfig AugmentConfig::none(int base_h, int base_w) {
  AugmentConfig c;
  c.base_h = base_h, c.base_w = base_w;
  c.crop_h = c.crop_w = 0;
  c.scales = {1.0};
  c.rotate_max = 0;
  c.flip_p = 0;
  c.jitter = c.randaugment = false;
  c.grayscale_p = c.blur_p = 0;
  return c;
}

namespace {

// Crop offset along one axis: the scaled image is padded (centred) up to the crop size when
// smaller, then the window is drawn uniformly; returned relative to the unpadded image.
int draw_crop_offset(int scaled, int crop, Rng& rng) {
  const int padded = std::max(scaled, crop);
  const int pad_before = (padded - scaled) / 2;
  return int(rng.uniform_int(0, padded - crop)) - pad_before;
}

}  // namespace

Geometry draw_geometry(int in_h, int in_w, const AugmentConfig& cfg, Rng& rng) {
  C3_CHECK(in_h > 0 && in_w > 0, "draw_geometry: bad input size ", in_h, "x", in_w);
  C3_CHECK(!cfg.scales.empty(), "draw_geometry: the scale list is empty (use {1.0} for no scaling)");
  C3_CHECK(cfg.rotate_max >= 0 && cfg.rotate_max <= 180, "draw_geometry: rotate_max must be 0..180, got ",
           cfg.rotate_max);
  C3_CHECK((cfg.crop_h > 0) == (cfg.crop_w > 0) && cfg.crop_h >= 0, "draw_geometry: crop size ", cfg.crop_h, "x",
           cfg.crop_w, " (both positive, or both 0 for no crop)");
  Geometry g;
  g.in_h = in_h, g.in_w = in_w;
  g.angle = int(rng.uniform_int(-cfg.rotate_max, cfg.rotate_max));
  const double f = cfg.scales[size_t(rng.uniform_int(0, int64_t(cfg.scales.size()) - 1))];
  C3_CHECK(f > 0, "draw_geometry: scale factor ", f, " must be positive");
  g.scaled_h = std::max(1, int(in_h * f + 0.5));
  g.scaled_w = std::max(1, int(in_w * f + 0.5));
  const bool crop = cfg.crop_h > 0;
  g.out_h = crop ? cfg.crop_h : g.scaled_h;
  g.out_w = crop ? cfg.crop_w : g.scaled_w;
  g.crop_y = draw_crop_offset(g.scaled_h, g.out_h, rng);
  g.crop_x = draw_crop_offset(g.scaled_w, g.out_w, rng);
  g.flip = rng.uniform() < cfg.flip_p;
  return g;
}

// torchvision ColorJitter.get_params: a random order, then each factor uniform in
// [max(0, 1 - s), 1 + s] (hue in [-s, s]); an op with strength 0 is skipped (order -1).
Jitter draw_jitter(const AugmentConfig& cfg, Rng& rng) {
  Jitter j;
  j.order = {-1, -1, -1, -1};
  if (!cfg.jitter) return j;
  if (cfg.jitter_p < 1.0 && rng.uniform() >= cfg.jitter_p) return j;
  std::array<int, 4> perm{0, 1, 2, 3};
  for (int i = 3; i > 0; --i) std::swap(perm[i], perm[rng.uniform_int(0, i)]);
  auto factor = [&](float s) { return float(rng.uniform(std::max(0.0, 1.0 - s), 1.0 + s)); };
  j.brightness = factor(cfg.brightness);
  j.contrast = factor(cfg.contrast);
  j.saturation = factor(cfg.saturation);
  j.hue = float(rng.uniform(-cfg.hue, cfg.hue));
  const bool on[4] = {cfg.brightness > 0, cfg.contrast > 0, cfg.saturation > 0, cfg.hue > 0};
  for (int i = 0; i < 4; ++i) j.order[i] = on[perm[i]] ? perm[i] : -1;
  return j;
}

void randaugment(Image& img, const AugmentConfig& cfg, Rng& rng) {
  C3_CHECK(cfg.ra_n >= 0 && cfg.ra_m >= 0 && cfg.ra_mstd >= 0, "randaugment: bad settings n=", cfg.ra_n,
           " m=", cfg.ra_m, " mstd=", cfg.ra_mstd);
  std::vector<RandOp> ops(size_t(cfg.ra_n));
  for (auto& op : ops) op = RandOp(rng.uniform_int(0, kNumRandOps - 1));  // with replacement
  for (RandOp op : ops) {
    if (cfg.ra_p < 1.0 && rng.uniform() > cfg.ra_p) continue;  // timm: random() > prob skips
    double m = cfg.ra_m;
    if (cfg.ra_mstd == std::numeric_limits<double>::infinity()) m = rng.uniform(0, m);
    else if (cfg.ra_mstd > 0) m = rng.normal(m, cfg.ra_mstd);
    apply_rand_op(img, op, std::clamp(m, 0.0, 10.0));
  }
}

void strong_photometric(Image& img, const AugmentConfig& cfg, Rng& rng) {
  if (cfg.jitter) apply_jitter(img, draw_jitter(cfg, rng));
  if (cfg.randaugment) randaugment(img, cfg, rng);
  if (cfg.grayscale_p > 0 && rng.uniform() < cfg.grayscale_p) grayscale(img);
  if (cfg.blur_p > 0 && rng.uniform() < cfg.blur_p)
    gaussian_blur(img, float(rng.uniform(cfg.blur_sigma_min, cfg.blur_sigma_max)), cfg.blur_kernel);
}

Views make_views(const Image& img, const Image& label, const AugmentConfig& cfg, Rng& rng, bool want_strong) {
  Views v;
  const Geometry g = draw_geometry(img.h, img.w, cfg, rng);
  apply_geometry(g, img, &label, &v.weak, &v.label);
  if (want_strong) {
    v.strong = v.weak;
    strong_photometric(v.strong, cfg, rng);
  }
  return v;
}

Box cutmix_box(int H, int W, Rng& rng) {
  C3_CHECK(H > 0 && W > 0, "cutmix_box: bad image size ", H, "x", W);
  const double hf = std::exp(rng.uniform() * std::log(0.5));  // (0.5, 1]
  Box b;
  b.h = std::clamp(int(std::lround(H * hf)), 1, H);
  b.w = std::clamp(int(std::lround(0.5 * H * W / b.h)), 1, W);
  b.y0 = int(rng.uniform_int(0, H - b.h));
  b.x0 = int(rng.uniform_int(0, W - b.w));
  return b;
}

}  // namespace c3::data
