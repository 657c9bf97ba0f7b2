// Geometric ops: resize, crop with padding, flip, rotation, and the fused geometry of one
// augmentation draw. Conventions are in data/augment.h.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "data/augment.h"

namespace c3::data {
namespace {

// One output coordinate of a bilinear resize: the two source indices and the weight of i1.
struct Tap {
  int i0, i1;
  float f;
};

// Half-pixel centres: src = (o + 0.5) * in / out - 0.5, clamped at 0 below (as PyTorch's
// align_corners=false) and by the index clamp above.
Tap bilinear_tap(int o, int in, int out) {
  double src = (o + 0.5) * double(in) / double(out) - 0.5;
  if (src < 0) src = 0;
  const int i0 = std::min(int(src), in - 1);
  return {i0, std::min(i0 + 1, in - 1), float(src - i0)};
}

int nearest_index(int o, int in, int out) { return int(int64_t(o) * in / out); }

// n output pixels of one row, interpolated between source rows r0 and r1 (weight fy of r1)
// at the column taps tx. C = channels (0: runtime count c).
template <int C>
void bilinear_span(const uint8_t* r0, const uint8_t* r1, float fy, const Tap* tx, int n, int c, uint8_t* out) {
  const int ch = C ? C : c;
  for (int j = 0; j < n; ++j) {
    const Tap t = tx[j];
    const uint8_t *a = r0 + t.i0 * ch, *b = r0 + t.i1 * ch, *p = r1 + t.i0 * ch, *q = r1 + t.i1 * ch;
    for (int k = 0; k < ch; ++k) {
      const float top = a[k] + (float(b[k]) - float(a[k])) * t.f;
      const float bot = p[k] + (float(q[k]) - float(p[k])) * t.f;
      out[j * ch + k] = uint8_t(top + (bot - top) * fy + 0.5f);
    }
  }
}

void bilinear_span_any(const uint8_t* r0, const uint8_t* r1, float fy, const Tap* tx, int n, int c, uint8_t* out) {
  if (c == 3) bilinear_span<3>(r0, r1, fy, tx, n, c, out);
  else if (c == 1) bilinear_span<1>(r0, r1, fy, tx, n, c, out);
  else bilinear_span<0>(r0, r1, fy, tx, n, c, out);
}

void nearest_span(const uint8_t* row, const int* ix, int n, int c, uint8_t* out) {
  if (c == 1) {
    for (int j = 0; j < n; ++j) out[j] = row[ix[j]];
  } else if (c == 3) {
    for (int j = 0; j < n; ++j) {
      const uint8_t* p = row + size_t(ix[j]) * 3;
      out[3 * j] = p[0], out[3 * j + 1] = p[1], out[3 * j + 2] = p[2];
    }
  } else {
    for (int j = 0; j < n; ++j) std::memcpy(out + size_t(j) * c, row + size_t(ix[j]) * c, c);
  }
}

void check_image(const Image& img, const char* op) {
  C3_CHECK(img.h > 0 && img.w > 0 && img.c > 0 && img.px.size() == size_t(img.h) * img.w * img.c, op,
           ": bad image ", img.h, "x", img.w, "x", img.c, " with ", img.px.size(), " bytes");
}

// PIL's affine bilinear filter at source point (x, y) in corner coordinates (pixel i covers
// [i, i+1)): neighbours clamped to the image, the result truncated (PIL casts to UINT8).
void pil_bilinear(const Image& img, double x, double y, uint8_t* out) {
  x -= 0.5;
  y -= 0.5;
  const int xi = int(std::floor(x)), yi = int(std::floor(y));
  const double dx = x - xi, dy = y - yi;
  const int x0 = std::clamp(xi, 0, img.w - 1), x1 = std::clamp(xi + 1, 0, img.w - 1);
  const uint8_t* top = img.at(std::clamp(yi, 0, img.h - 1), 0);
  const uint8_t* bot = (yi + 1 >= 0 && yi + 1 < img.h) ? img.at(yi + 1, 0) : nullptr;
  for (int k = 0; k < img.c; ++k) {
    const double a = top[x0 * img.c + k], b = top[x1 * img.c + k];
    const double v1 = a + (b - a) * dx;
    double v2 = v1;
    if (bot) {
      const double p = bot[x0 * img.c + k], q = bot[x1 * img.c + k];
      v2 = p + (q - p) * dx;
    }
    out[k] = uint8_t(v1 + (v2 - v1) * dy);
  }
}

}  // namespace

Image resize_bilinear(const Image& img, int out_h, int out_w) {
  check_image(img, "resize_bilinear");
  C3_CHECK(out_h > 0 && out_w > 0, "resize_bilinear: bad output size ", out_h, "x", out_w);
  if (out_h == img.h && out_w == img.w) return img;
  std::vector<Tap> tx(out_w);
  for (int x = 0; x < out_w; ++x) tx[x] = bilinear_tap(x, img.w, out_w);
  Image out(out_h, out_w, img.c);
  for (int y = 0; y < out_h; ++y) {
    const Tap ty = bilinear_tap(y, img.h, out_h);
    bilinear_span_any(img.at(ty.i0, 0), img.at(ty.i1, 0), ty.f, tx.data(), out_w, img.c, out.at(y, 0));
  }
  return out;
}

Image resize_nearest(const Image& img, int out_h, int out_w) {
  check_image(img, "resize_nearest");
  C3_CHECK(out_h > 0 && out_w > 0, "resize_nearest: bad output size ", out_h, "x", out_w);
  if (out_h == img.h && out_w == img.w) return img;
  std::vector<int> ix(out_w);
  for (int x = 0; x < out_w; ++x) ix[x] = nearest_index(x, img.w, out_w);
  Image out(out_h, out_w, img.c);
  for (int y = 0; y < out_h; ++y) nearest_span(img.at(nearest_index(y, img.h, out_h), 0), ix.data(), out_w, img.c, out.at(y, 0));
  return out;
}

Image crop_pad(const Image& img, int y0, int x0, int h, int w, uint8_t fill) {
  check_image(img, "crop_pad");
  C3_CHECK(h > 0 && w > 0, "crop_pad: bad window size ", h, "x", w);
  Image out(h, w, img.c, fill);
  const int xa = std::max(0, -x0), xb = std::min(w, img.w - x0);  // valid output columns
  if (xb <= xa) return out;
  for (int y = std::max(0, -y0); y < std::min(h, img.h - y0); ++y)
    std::memcpy(out.at(y, xa), img.at(y0 + y, x0 + xa), size_t(xb - xa) * img.c);
  return out;
}

Image hflip(const Image& img) {
  check_image(img, "hflip");
  Image out(img.h, img.w, img.c);
  for (int y = 0; y < img.h; ++y)
    for (int x = 0; x < img.w; ++x) std::memcpy(out.at(y, x), img.at(y, img.w - 1 - x), img.c);
  return out;
}

Image rotate_window(const Image& img, int angle_deg, bool nearest, uint8_t fill, int y0, int x0, int h, int w) {
  check_image(img, "rotate");
  if (angle_deg % 360 == 0) return crop_pad(img, y0, x0, h, w, fill);
  // PIL Image.rotate: inverse map from output to input, matrix entries rounded to 15
  // decimals (which makes multiples of 90 degrees exact).
  auto r15 = [](double v) { return std::round(v * 1e15) / 1e15; };
  const double t = -double(angle_deg) * 3.14159265358979323846 / 180.0;
  const double a = r15(std::cos(t)), b = r15(std::sin(t)), d = r15(-std::sin(t)), e = r15(std::cos(t));
  const double cx = img.w / 2.0, cy = img.h / 2.0;
  const double c = a * -cx + b * -cy + cx, f = d * -cx + e * -cy + cy;
  Image out(h, w, img.c, fill);
  if (nearest) {
    // PIL's nearest affine runs in 16.16 fixed point (affine_fixed in Geometry.c); doing the
    // same keeps labels identical to PIL's at the pixels where a source coordinate lands
    // within 2^-16 of a pixel edge.
    auto fix = [](double v) { return int64_t(std::floor(v * 65536.0 + 0.5)); };
    const int64_t A0 = fix(a), A1 = fix(b), A3 = fix(d), A4 = fix(e);
    const int64_t A2 = fix(c + a * 0.5 + b * 0.5), A5 = fix(f + d * 0.5 + e * 0.5);
    for (int y = 0; y < h; ++y) {
      uint8_t* o = out.at(y, 0);
      for (int x = 0; x < w; ++x, o += img.c) {
        const int64_t X = x0 + x, Y = y0 + y;
        const int64_t sx = (A2 + Y * A1 + X * A0) >> 16, sy = (A5 + Y * A4 + X * A3) >> 16;  // floor
        if (sx >= 0 && sx < img.w && sy >= 0 && sy < img.h) std::memcpy(o, img.at(int(sy), int(sx)), img.c);
      }
    }
    return out;
  }
  for (int y = 0; y < h; ++y) {
    const double yin = y0 + y + 0.5;
    uint8_t* o = out.at(y, 0);
    for (int x = 0; x < w; ++x, o += img.c) {
      const double xin = x0 + x + 0.5;
      const double sx = a * xin + b * yin + c, sy = d * xin + e * yin + f;
      if (sx < 0.0 || sx >= img.w || sy < 0.0 || sy >= img.h) continue;  // keeps `fill`
      pil_bilinear(img, sx, sy, o);
    }
  }
  return out;
}

Image rotate(const Image& img, int angle_deg, bool nearest, uint8_t fill) {
  return rotate_window(img, angle_deg, nearest, fill, 0, 0, img.h, img.w);
}

namespace {

// Output rows (or columns) of apply_geometry: which scaled coordinate each one reads, the
// range [lo, hi) of outputs that land inside the scaled image, and the source range the
// resize needs from the rotated image.
struct AxisPlan {
  int lo = 0, hi = 0;
  std::vector<Tap> taps;    // bilinear taps, indexed by output - lo
  std::vector<int> near;    // nearest indices, indexed by output - lo
  int src_lo = 0, src_hi = -1;  // inclusive range of rotated-image indices used
};

AxisPlan plan_axis(int n_out, int start, bool reversed, int in, int scaled) {
  AxisPlan p;
  auto scaled_coord = [&](int o) { return start + (reversed ? n_out - 1 - o : o); };
  while (p.lo < n_out && (scaled_coord(p.lo) < 0 || scaled_coord(p.lo) >= scaled)) ++p.lo;
  p.hi = p.lo;
  while (p.hi < n_out && scaled_coord(p.hi) >= 0 && scaled_coord(p.hi) < scaled) ++p.hi;
  if (p.hi == p.lo) return p;
  p.src_lo = in;
  p.src_hi = -1;
  for (int o = p.lo; o < p.hi; ++o) {
    const int s = scaled_coord(o);
    const Tap t = bilinear_tap(s, in, scaled);
    const int nidx = nearest_index(s, in, scaled);
    p.taps.push_back(t);
    p.near.push_back(nidx);
    p.src_lo = std::min({p.src_lo, t.i0, nidx});
    p.src_hi = std::max({p.src_hi, t.i1, nidx});
  }
  for (auto& t : p.taps) t.i0 -= p.src_lo, t.i1 -= p.src_lo;
  for (auto& i : p.near) i -= p.src_lo;
  return p;
}

// Resizes `src` (the rotated image restricted to the plans' source ranges) into `out`,
// writing `fill` where the output falls outside the scaled image.
void resample_into(const Image& src, const AxisPlan& rows, const AxisPlan& cols, bool nearest, uint8_t fill,
                   Image& out) {
  const int c = out.c;
  for (int y = 0; y < out.h; ++y) {
    uint8_t* o = out.at(y, 0);
    if (y < rows.lo || y >= rows.hi) {
      std::memset(o, fill, size_t(out.w) * c);
      continue;
    }
    std::memset(o, fill, size_t(cols.lo) * c);
    std::memset(o + size_t(cols.hi) * c, fill, size_t(out.w - cols.hi) * c);
    const int n = cols.hi - cols.lo;
    if (nearest) {
      nearest_span(src.at(rows.near[y - rows.lo], 0), cols.near.data(), n, c, o + size_t(cols.lo) * c);
    } else {
      const Tap ty = rows.taps[y - rows.lo];
      bilinear_span_any(src.at(ty.i0, 0), src.at(ty.i1, 0), ty.f, cols.taps.data(), n, c, o + size_t(cols.lo) * c);
    }
  }
}

// The flip is folded into the column plan: output column j reads scaled column
// crop_x + (ow - 1 - j), which is hflip applied after the crop.
void geometry_one(const Geometry& g, const Image& img, const AxisPlan& rows, const AxisPlan& cols, bool nearest,
                  uint8_t fill, Image& out) {
  out = Image(g.out_h, g.out_w, img.c, fill);
  if (rows.hi == rows.lo || cols.hi == cols.lo) return;
  const Image region = rotate_window(img, g.angle, nearest, fill, rows.src_lo, cols.src_lo,
                                     rows.src_hi - rows.src_lo + 1, cols.src_hi - cols.src_lo + 1);
  // Without a scale change every bilinear tap has weight 0 on its second neighbour, so the
  // resize is the nearest copy (same bytes, less work).
  const bool identity = g.scaled_h == g.in_h && g.scaled_w == g.in_w;
  resample_into(region, rows, cols, nearest || identity, fill, out);
}

}  // namespace

void apply_geometry(const Geometry& g, const Image& img, const Image* label, Image* out_img, Image* out_label) {
  check_image(img, "apply_geometry");
  C3_CHECK(img.h == g.in_h && img.w == g.in_w, "apply_geometry: image is ", img.h, "x", img.w,
           " but the geometry was drawn for ", g.in_h, "x", g.in_w);
  C3_CHECK(g.scaled_h > 0 && g.scaled_w > 0 && g.out_h > 0 && g.out_w > 0, "apply_geometry: bad sizes (scaled ",
           g.scaled_h, "x", g.scaled_w, ", output ", g.out_h, "x", g.out_w, ")");
  const AxisPlan rows = plan_axis(g.out_h, g.crop_y, false, g.in_h, g.scaled_h);
  const AxisPlan cols = plan_axis(g.out_w, g.crop_x, g.flip, g.in_w, g.scaled_w);
  if (out_img) geometry_one(g, img, rows, cols, false, 0, *out_img);
  if (out_label) {
    if (!label || label->empty()) {
      *out_label = Image();
      return;
    }
    C3_CHECK(label->h == img.h && label->w == img.w && label->c == 1, "apply_geometry: label is ", label->h, "x",
             label->w, "x", label->c, ", image is ", img.h, "x", img.w, " (labels must have 1 channel, same size)");
    geometry_one(g, *label, rows, cols, true, 255, *out_label);
  }
}

}  // namespace c3::data
