// Colour ops with the integer arithmetic of PIL (ImageEnhance, ImageOps, convert("L"),
// convert("HSV")) and torchvision's functions on PIL images, so a strong view looks like the
// reference code's. Per-value ops go through 256-entry tables; nothing calls a function
// object per pixel.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "data/augment.h"

namespace c3::data {
namespace {

void check_rgb(const Image& img, const char* op) {
  C3_CHECK(img.c == 3 && img.h > 0 && img.w > 0 && img.px.size() == size_t(img.h) * img.w * 3, op,
           ": expected an RGB image, got ", img.h, "x", img.w, "x", img.c);
}

// PIL ImagingBlend(degenerate, image, alpha): float arithmetic, clipped, truncated.
inline uint8_t blend(int degenerate, int v, float alpha) {
  const float t = float(degenerate) + alpha * float(v - degenerate);
  if (t <= 0.f) return 0;
  if (t >= 255.f) return 255;
  return uint8_t(t);
}

using Lut = std::array<uint8_t, 256>;

void apply_luts(Image& img, const Lut& r, const Lut& g, const Lut& b) {
  uint8_t* p = img.px.data();
  const size_t n = size_t(img.h) * img.w;
  for (size_t i = 0; i < n; ++i, p += 3) {
    p[0] = r[p[0]];
    p[1] = g[p[1]];
    p[2] = b[p[2]];
  }
}

void apply_lut(Image& img, const Lut& lut) {
  for (auto& v : img.px) v = lut[v];
}

std::array<std::array<int64_t, 256>, 3> histograms(const Image& img) {
  std::array<std::array<int64_t, 256>, 3> h{};
  const uint8_t* p = img.px.data();
  const size_t n = size_t(img.h) * img.w;
  for (size_t i = 0; i < n; ++i, p += 3) ++h[0][p[0]], ++h[1][p[1]], ++h[2][p[2]];
  return h;
}

// ImageOps.autocontrast with cutoff 0: stretch [lo, hi] to [0, 255] (Python floats, int()).
Lut autocontrast_lut(const std::array<int64_t, 256>& h) {
  Lut lut;
  int lo = 0, hi = 255;
  while (lo < 256 && !h[lo]) ++lo;
  while (hi >= 0 && !h[hi]) --hi;
  if (hi <= lo) {
    for (int i = 0; i < 256; ++i) lut[i] = uint8_t(i);
    return lut;
  }
  const double scale = 255.0 / (hi - lo), offset = -lo * scale;
  for (int i = 0; i < 256; ++i) lut[i] = uint8_t(std::clamp(int(i * scale + offset), 0, 255));
  return lut;
}

// ImageOps.equalize: step = (pixels - count of the highest value) // 255; value i maps to
// (step // 2 + pixels below i) // step, clipped to 255 (as Image.point clips). Older Pillow
// releases divided by 256 (a slightly darker top level); this follows the current one.
Lut equalize_lut(const std::array<int64_t, 256>& h) {
  Lut lut;
  int64_t total = 0, last = 0, distinct = 0;
  for (int i = 0; i < 256; ++i)
    if (h[i]) total += h[i], last = h[i], ++distinct;
  const int64_t step = distinct <= 1 ? 0 : (total - last) / 255;
  if (step == 0) {
    for (int i = 0; i < 256; ++i) lut[i] = uint8_t(i);
    return lut;
  }
  int64_t n = step / 2;
  for (int i = 0; i < 256; ++i) {
    lut[i] = uint8_t(std::min<int64_t>(n / step, 255));
    n += h[i];
  }
  return lut;
}

// PIL rgb2hsv_row (Convert.c), with its float/double mix.
inline void rgb_to_hsv_pil(const uint8_t* in, uint8_t* out) {
  const uint8_t r = in[0], g = in[1], b = in[2];
  const uint8_t maxc = std::max({r, g, b}), minc = std::min({r, g, b});
  uint8_t uh = 0, us = 0;
  if (minc != maxc) {
    const float cr = float(maxc - minc);
    const float s = cr / float(maxc);
    const float rc = float(maxc - r) / cr, gc = float(maxc - g) / cr, bc = float(maxc - b) / cr;
    float h;
    if (r == maxc) h = bc - gc;
    else if (g == maxc) h = float(2.0 + rc - bc);
    else h = float(4.0 + gc - rc);
    const double h1 = h / 6.0 + 1.0;  // in [5/6, 11/6]: fmod(h1, 1.0) is an exact subtraction
    h = float(h1 >= 1.0 ? h1 - 1.0 : h1);
    uh = uint8_t(std::clamp(int(h * 255.0), 0, 255));
    us = uint8_t(std::clamp(int(s * 255.0), 0, 255));
  }
  out[0] = uh, out[1] = us, out[2] = maxc;
}

// The terms of PIL's hsv2rgb that depend on H or S alone, tabulated once.
struct HsvTables {
  int sector[256];
  float frac[256], sat[256];
  HsvTables() {
    for (int v = 0; v < 256; ++v) {
      sector[v] = int(std::floor(float(v) * 6.0 / 255.0));
      frac[v] = float(float(v) * 6.0 / 255.0 - float(sector[v]));
      sat[v] = float(float(v) / 255.0);
    }
  }
};

// PIL hsv2rgb (Convert.c).
inline void hsv_to_rgb_pil(const HsvTables& tab, uint8_t h, uint8_t s, uint8_t v, uint8_t* out) {
  if (s == 0) {
    out[0] = out[1] = out[2] = v;
    return;
  }
  const int i = tab.sector[h];
  const float f = tab.frac[h];
  const float fs = tab.sat[s];
  const uint8_t p = uint8_t(std::clamp(int(std::round(float(v) * (1.0 - fs))), 0, 255));
  const uint8_t q = uint8_t(std::clamp(int(std::round(float(v) * (1.0 - fs * f))), 0, 255));
  const uint8_t t = uint8_t(std::clamp(int(std::round(float(v) * (1.0 - fs * (1.0 - f)))), 0, 255));
  switch (i % 6) {
    case 0: out[0] = v, out[1] = t, out[2] = p; break;
    case 1: out[0] = q, out[1] = v, out[2] = p; break;
    case 2: out[0] = p, out[1] = v, out[2] = t; break;
    case 3: out[0] = p, out[1] = q, out[2] = v; break;
    case 4: out[0] = t, out[1] = p, out[2] = v; break;
    default: out[0] = v, out[1] = p, out[2] = q; break;
  }
}

int reflect_index(int i, int n) {  // torch "reflect" padding: -1 -> 1, n -> n - 2
  if (n == 1) return 0;
  while (i < 0 || i >= n) i = i < 0 ? -i : 2 * (n - 1) - i;
  return i;
}

}  // namespace

uint8_t luma601(const uint8_t* rgb) {
  return uint8_t((rgb[0] * 19595 + rgb[1] * 38470 + rgb[2] * 7471 + 0x8000) >> 16);
}

void grayscale(Image& img) {
  check_rgb(img, "grayscale");
  for (size_t i = 0; i < img.px.size(); i += 3) img.px[i] = img.px[i + 1] = img.px[i + 2] = luma601(&img.px[i]);
}

void adjust_brightness(Image& img, float f) {
  check_rgb(img, "adjust_brightness");
  Lut lut;
  for (int i = 0; i < 256; ++i) lut[i] = blend(0, i, f);
  apply_lut(img, lut);
}

void adjust_contrast(Image& img, float f) {
  check_rgb(img, "adjust_contrast");
  int64_t sum = 0;
  for (size_t i = 0; i < img.px.size(); i += 3) sum += luma601(&img.px[i]);
  const int mean = int(double(sum) / (double(img.h) * img.w) + 0.5);
  Lut lut;
  for (int i = 0; i < 256; ++i) lut[i] = blend(mean, i, f);
  apply_lut(img, lut);
}

void adjust_saturation(Image& img, float f) {
  check_rgb(img, "adjust_saturation");
  for (size_t i = 0; i < img.px.size(); i += 3) {
    const int gray = luma601(&img.px[i]);
    for (int k = 0; k < 3; ++k) img.px[i + k] = blend(gray, img.px[i + k], f);
  }
}

// The degenerate image is PIL's SMOOTH filter (3x3 kernel 1 1 1 / 1 5 1 / 1 1 1, divided by
// 13, +0.5, truncated); PIL copies the border rows and columns, so border pixels blend with
// themselves and stay unchanged.
void adjust_sharpness(Image& img, float f) {
  check_rgb(img, "adjust_sharpness");
  if (img.h < 3 || img.w < 3) return;
  const float k1 = 1.0f / 13.0f, k5 = 5.0f / 13.0f;
  const Image src = img;
  for (int y = 1; y < img.h - 1; ++y) {
    const uint8_t *up = src.at(y - 1, 0), *mid = src.at(y, 0), *dn = src.at(y + 1, 0);
    uint8_t* out = img.at(y, 0);
    for (int x = 3; x < (img.w - 1) * 3; ++x) {
      // PIL's order: row below, this row, row above; each left, centre, right.
      float ss = 0.5f;
      ss += float(dn[x - 3]) * k1 + float(dn[x]) * k1 + float(dn[x + 3]) * k1;
      ss += float(mid[x - 3]) * k1 + float(mid[x]) * k5 + float(mid[x + 3]) * k1;
      ss += float(up[x - 3]) * k1 + float(up[x]) * k1 + float(up[x + 3]) * k1;
      const int smooth = ss <= 0.f ? 0 : ss >= 255.f ? 255 : int(ss);
      out[x] = blend(smooth, mid[x], f);
    }
  }
}

void adjust_hue(Image& img, float h) {
  check_rgb(img, "adjust_hue");
  C3_CHECK(h >= -0.5f && h <= 0.5f, "adjust_hue: hue shift ", h, " is outside [-0.5, 0.5]");
  const uint8_t shift = uint8_t(int32_t(h * 255.0f));  // np.int32(...).astype(np.uint8): wraps
  static const HsvTables tab;
  for (size_t i = 0; i < img.px.size(); i += 3) {
    uint8_t hsv[3];
    rgb_to_hsv_pil(&img.px[i], hsv);
    hsv_to_rgb_pil(tab, uint8_t(hsv[0] + shift), hsv[1], hsv[2], &img.px[i]);
  }
}

void autocontrast(Image& img) {
  check_rgb(img, "autocontrast");
  const auto h = histograms(img);
  apply_luts(img, autocontrast_lut(h[0]), autocontrast_lut(h[1]), autocontrast_lut(h[2]));
}

void equalize(Image& img) {
  check_rgb(img, "equalize");
  const auto h = histograms(img);
  apply_luts(img, equalize_lut(h[0]), equalize_lut(h[1]), equalize_lut(h[2]));
}

void invert(Image& img) {
  for (auto& v : img.px) v = uint8_t(255 - v);
}

void posterize(Image& img, int bits) {
  C3_CHECK(bits >= 0 && bits <= 8, "posterize: bits must be 0..8, got ", bits);
  const uint8_t mask = uint8_t(~((1u << (8 - bits)) - 1));
  for (auto& v : img.px) v &= mask;
}

void solarize(Image& img, int threshold) {
  Lut lut;
  for (int i = 0; i < 256; ++i) lut[i] = uint8_t(i < threshold ? i : 255 - i);
  apply_lut(img, lut);
}

void solarize_add(Image& img, int add, int threshold) {
  Lut lut;
  for (int i = 0; i < 256; ++i) lut[i] = uint8_t(i < threshold ? std::clamp(i + add, 0, 255) : i);
  apply_lut(img, lut);
}

void gaussian_blur(Image& img, float sigma, int kernel_size) {
  check_rgb(img, "gaussian_blur");
  C3_CHECK(kernel_size > 0 && kernel_size % 2 == 1 && sigma > 0, "gaussian_blur: kernel size must be odd and ",
           "sigma positive, got ", kernel_size, " and ", sigma);
  const int half = kernel_size / 2;
  std::vector<float> k(kernel_size);
  float total = 0;
  for (int i = 0; i < kernel_size; ++i) {
    const float x = float(i - half) / sigma;
    total += k[i] = std::exp(-0.5f * x * x);
  }
  for (auto& v : k) v /= total;
  const int H = img.h, W = img.w;
  std::vector<float> tmp(size_t(H) * W * 3);
  for (int y = 0; y < H; ++y)  // horizontal pass
    for (int x = 0; x < W; ++x)
      for (int c = 0; c < 3; ++c) {
        float s = 0;
        for (int i = 0; i < kernel_size; ++i) s += k[i] * img.at(y, reflect_index(x + i - half, W))[c];
        tmp[(size_t(y) * W + x) * 3 + c] = s;
      }
  for (int y = 0; y < H; ++y)  // vertical pass
    for (int x = 0; x < W; ++x)
      for (int c = 0; c < 3; ++c) {
        float s = 0;
        for (int i = 0; i < kernel_size; ++i) s += k[i] * tmp[(size_t(reflect_index(y + i - half, H)) * W + x) * 3 + c];
        img.at(y, x)[c] = uint8_t(std::clamp(std::nearbyint(s), 0.f, 255.f));
      }
}

void apply_jitter(Image& img, const Jitter& j) {
  for (int op : j.order) {
    switch (op) {
      case 0: adjust_brightness(img, j.brightness); break;
      case 1: adjust_contrast(img, j.contrast); break;
      case 2: adjust_saturation(img, j.saturation); break;
      case 3: adjust_hue(img, j.hue); break;
      case -1: break;  // skipped (strength 0, or jitter not applied)
      default: C3_CHECK(false, "apply_jitter: bad op index ", op);
    }
  }
}

const char* rand_op_name(RandOp op) {
  static const char* names[kNumRandOps] = {"AutoContrast", "Equalize",    "Invert", "Posterize", "Solarize",
                                           "SolarizeAdd",  "Color",       "Contrast", "Brightness", "Sharpness"};
  const int i = int(op);
  return i >= 0 && i < kNumRandOps ? names[i] : "?";
}

// timm's level -> argument maps with _LEVEL_DENOM = 10.
void apply_rand_op(Image& img, RandOp op, double m) {
  const float enhance = float(m / 10.0 * 1.8 + 0.1);
  switch (op) {
    case RandOp::AutoContrast: autocontrast(img); break;
    case RandOp::Equalize: equalize(img); break;
    case RandOp::Invert: invert(img); break;
    case RandOp::Posterize: posterize(img, std::clamp(int(m / 10.0 * 4), 0, 8)); break;
    case RandOp::Solarize: solarize(img, int(m / 10.0 * 256)); break;
    case RandOp::SolarizeAdd: solarize_add(img, int(m / 10.0 * 110), 128); break;
    case RandOp::Color: adjust_saturation(img, enhance); break;
    case RandOp::Contrast: adjust_contrast(img, enhance); break;
    case RandOp::Brightness: adjust_brightness(img, enhance); break;
    case RandOp::Sharpness: adjust_sharpness(img, enhance); break;
    default: C3_CHECK(false, "apply_rand_op: bad op ", int(op));
  }
}

}  // namespace c3::data
