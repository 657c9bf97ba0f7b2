// Augmentation geometry, views, CutMix boxes and the data RNG: hand-computed values on tiny
// images, the fused geometry against the plain ops, and the statistics of the draws.
#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <set>

#include "core/error.h"
#include "data/augment.h"
#include "data/rng.h"

using namespace c3::data;

namespace {

Image make(int h, int w, int c, std::vector<uint8_t> px) {
  Image img(h, w, c);
  REQUIRE(px.size() == img.px.size());
  img.px = std::move(px);
  return img;
}

Image random_image(int h, int w, int c, uint32_t seed, int max_value = 255) {
  std::mt19937 gen(seed);
  Image img(h, w, c);
  for (auto& v : img.px) v = uint8_t(gen() % (max_value + 1));
  return img;
}

// The geometry by the plain ops, in the documented order.
void geometry_by_plain_ops(const Geometry& g, const Image& img, const Image& lbl, Image& out, Image& out_lbl) {
  out = crop_pad(resize_bilinear(rotate(img, g.angle, false, 0), g.scaled_h, g.scaled_w), g.crop_y, g.crop_x,
                 g.out_h, g.out_w, 0);
  out_lbl = crop_pad(resize_nearest(rotate(lbl, g.angle, true, 255), g.scaled_h, g.scaled_w), g.crop_y, g.crop_x,
                     g.out_h, g.out_w, 255);
  if (g.flip) out = hflip(out), out_lbl = hflip(out_lbl);
}

}  // namespace

TEST_CASE("augment: rng is deterministic, order-sensitive and unbiased") {
  Rng a(seed_hash({1, 2, 3})), b(seed_hash({1, 2, 3})), c(seed_hash({1, 3, 2}));
  for (int i = 0; i < 5; ++i) {
    const uint64_t va = a.next();
    CHECK(va == b.next());
    CHECK(va != c.next());
  }
  CHECK(seed_hash({0}) != seed_hash({0, 0}));
  Rng r(7);
  int counts[5] = {};
  double sum = 0, sum2 = 0;
  const int n = 50000;
  for (int i = 0; i < n; ++i) {
    const int64_t v = r.uniform_int(-2, 2);
    REQUIRE(v >= -2);
    REQUIRE(v <= 2);
    ++counts[v + 2];
    const double z = r.normal(10, 0.5);
    sum += z, sum2 += z * z;
  }
  for (int k : counts) CHECK(std::abs(k - n / 5) < 500);  // sd ~ 89
  CHECK(sum / n == doctest::Approx(10).epsilon(0.001));  // sd of the mean 0.0022
  CHECK(std::sqrt(sum2 / n - (sum / n) * (sum / n)) == doctest::Approx(0.5).epsilon(0.03));
  for (int i = 0; i < 1000; ++i) {
    const double u = r.uniform();
    REQUIRE(u >= 0.0);
    REQUIRE(u < 1.0);
  }
}

TEST_CASE("augment: flip, crop with padding, nearest index pattern") {
  const Image rgb = make(1, 2, 3, {1, 2, 3, 4, 5, 6});
  CHECK(hflip(rgb).px == std::vector<uint8_t>{4, 5, 6, 1, 2, 3});
  const Image g = make(3, 3, 1, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  CHECK(hflip(g).px == std::vector<uint8_t>{3, 2, 1, 6, 5, 4, 9, 8, 7});
  CHECK(crop_pad(g, 1, 1, 2, 2, 255).px == std::vector<uint8_t>{5, 6, 8, 9});
  CHECK(crop_pad(g, -1, -1, 3, 3, 255).px == std::vector<uint8_t>{255, 255, 255, 255, 1, 2, 255, 4, 5});
  CHECK(crop_pad(g, 2, 1, 2, 3, 0).px == std::vector<uint8_t>{8, 9, 0, 0, 0, 0});
  CHECK(crop_pad(rgb, 0, -1, 1, 2, 0).px == std::vector<uint8_t>{0, 0, 0, 1, 2, 3});
  // src = floor(dst * in / out)
  CHECK(resize_nearest(make(1, 5, 1, {10, 11, 12, 13, 14}), 1, 2).px == std::vector<uint8_t>{10, 12});
  CHECK(resize_nearest(make(1, 2, 1, {10, 11}), 1, 5).px == std::vector<uint8_t>{10, 10, 10, 11, 11});
  CHECK(resize_nearest(make(1, 4, 1, {10, 11, 12, 13}), 1, 3).px == std::vector<uint8_t>{10, 11, 12});
  CHECK(resize_nearest(g, 2, 2).px == std::vector<uint8_t>{1, 2, 4, 5});  // rows 0, floor(3/2) = 1
}

TEST_CASE("augment: bilinear resize with half-pixel centres") {
  // 2 -> 4: src = (o + 0.5) / 2 - 0.5 = -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to index 1)
  CHECK(resize_bilinear(make(1, 2, 1, {10, 20}), 1, 4).px == std::vector<uint8_t>{10, 13, 18, 20});  // 12.5, 17.5 round up
  CHECK(resize_bilinear(make(2, 1, 1, {0, 200}), 4, 1).px == std::vector<uint8_t>{0, 50, 150, 200});
  // 4 -> 2: src = 0.5 and 2.5, halfway between neighbours
  CHECK(resize_bilinear(make(1, 4, 1, {0, 10, 20, 30}), 1, 2).px == std::vector<uint8_t>{5, 25});
  // channels independent; 2x2 -> 3x3 centre = mean of the four (src 0.5 on both axes)
  const Image q = make(2, 2, 3, {0, 100, 8, 40, 100, 8, 80, 100, 8, 120, 100, 8});
  const Image r = resize_bilinear(q, 3, 3);
  CHECK(r.at(1, 1)[0] == 60);
  CHECK(r.at(1, 1)[1] == 100);
  CHECK(r.at(1, 1)[2] == 8);
  CHECK(r.at(0, 0)[0] == 0);  // src -0.17 clamps to the corner
}

TEST_CASE("augment: rotation is counter-clockwise about the centre, borders filled") {
  const Image g = make(3, 3, 1, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  CHECK(rotate(g, 90, true, 255).px == std::vector<uint8_t>{3, 6, 9, 2, 5, 8, 1, 4, 7});
  CHECK(rotate(g, 90, false, 0).px == std::vector<uint8_t>{3, 6, 9, 2, 5, 8, 1, 4, 7});
  CHECK(rotate(g, -90, true, 255).px == std::vector<uint8_t>{7, 4, 1, 8, 5, 2, 9, 6, 3});
  CHECK(rotate(g, 0, false, 0).px == g.px);

  // 10x10, 10 degrees. Output pixel (5, 5) has centre (0.5, 0.5) from the image centre; its
  // source is (0.5 cos - 0.5 sin, 0.5 sin + 0.5 cos) = (0.4056, 0.5792) from the centre, so
  // source (x, y) = (5.4056, 5.5792) in corner coordinates.
  Image ygrad(10, 10, 1), xgrad(10, 10, 1), flat(10, 10, 3, 100);
  for (int y = 0; y < 10; ++y)
    for (int x = 0; x < 10; ++x) ygrad.at(y, x)[0] = uint8_t(10 * y), xgrad.at(y, x)[0] = uint8_t(10 * x);
  CHECK(rotate(ygrad, 10, false, 0).at(5, 5)[0] == 50);  // 10 * 5.0792, truncated
  CHECK(rotate(xgrad, 10, false, 0).at(5, 5)[0] == 49);  // 10 * 4.9056
  CHECK(rotate(ygrad, -10, false, 0).at(5, 5)[0] == 49);
  CHECK(rotate(ygrad, 10, true, 255).at(5, 5)[0] == 50);  // nearest: row floor(5.5792)
  const Image rf = rotate(flat, 10, false, 0);
  // corner (0, 0): source y = 5 - 4.5 (sin + cos) = -0.21 -> outside; (0, 4): y = 0.48 -> inside
  CHECK(rf.at(0, 0)[0] == 0);
  CHECK(rf.at(0, 9)[1] == 0);
  CHECK(rf.at(0, 4)[2] == 100);
  CHECK(rf.at(5, 5)[0] == 100);
  CHECK(rotate(Image(10, 10, 1, 3), 10, true, 255).at(0, 0)[0] == 255);
}

TEST_CASE("augment: fused geometry equals rotate -> resize -> crop -> flip") {
  const Image img = random_image(37, 53, 3, 1);
  const Image lbl = random_image(37, 53, 1, 2, 18);
  const int cases[][8] = {
      // angle, scaled_h, scaled_w, crop_y, crop_x, out_h, out_w, flip
      {0, 37, 53, 3, 5, 20, 30, 0},   {7, 37, 53, 10, 2, 20, 30, 1},  {-10, 55, 80, 20, 33, 24, 40, 1},
      {4, 20, 28, -3, -5, 24, 40, 0}, {-3, 19, 26, -2, -7, 24, 40, 1}, {10, 37, 53, 0, 0, 37, 53, 0},
      {90, 30, 30, -1, 2, 16, 16, 1},
  };
  for (const auto& k : cases) {
    Geometry g{37, 53, k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7] != 0};
    Image a, al, b, bl;
    apply_geometry(g, img, &lbl, &a, &al);
    geometry_by_plain_ops(g, img, lbl, b, bl);
    CAPTURE(k[0]);
    CAPTURE(k[3]);
    CHECK(a.px == b.px);
    CHECK(al.px == bl.px);
  }
  Image a;
  CHECK_THROWS_WITH_AS(apply_geometry(Geometry{10, 10, 0, 10, 10, 0, 0, 5, 5, false}, img, nullptr, &a, nullptr),
                       doctest::Contains("apply_geometry: image is 37x53 but the geometry was drawn for 10x10"),
                       c3::Error);
}

TEST_CASE("augment: geometry draws stay in range and pad the crop symmetrically") {
  AugmentConfig cfg;
  cfg.crop_h = 20, cfg.crop_w = 30;
  cfg.scales = {0.5, 1.0, 1.5};
  Rng rng(3);
  std::set<int> angles, heights;
  int flips = 0;
  for (int i = 0; i < 2000; ++i) {
    const Geometry g = draw_geometry(24, 40, cfg, rng);
    angles.insert(g.angle), heights.insert(g.scaled_h);
    flips += g.flip;
    REQUIRE(g.out_h == 20);
    REQUIRE(g.out_w == 30);
    if (g.scaled_h >= 20) {
      REQUIRE(g.crop_y >= 0);
      REQUIRE(g.crop_y + 20 <= g.scaled_h);
    } else {  // 12 high, padded to 20: 4 rows each side, so the offset is exactly -4
      REQUIRE(g.scaled_h == 12);
      REQUIRE(g.crop_y == -4);
    }
  }
  CHECK(angles.size() == 21);
  CHECK(*angles.begin() == -10);
  CHECK(*angles.rbegin() == 10);
  CHECK(heights == std::set<int>{12, 24, 36});
  CHECK(std::abs(flips - 1000) < 150);  // sd ~ 22
}

TEST_CASE("augment: weak and strong views share one geometry") {
  const Image img = random_image(48, 64, 3, 5);
  const Image lbl = random_image(48, 64, 1, 6, 18);
  AugmentConfig cfg;
  cfg.base_h = 48, cfg.base_w = 64, cfg.crop_h = 24, cfg.crop_w = 32;
  cfg.scales = {0.75, 1.0, 1.25};
  for (uint64_t seed = 0; seed < 20; ++seed) {
    Rng r1(seed), r2(seed), r3(seed);
    const Views labeled = make_views(img, lbl, cfg, r1, false);
    const Views full = make_views(img, lbl, cfg, r2, true);
    AugmentConfig plain = cfg;
    plain.jitter = plain.randaugment = false;
    const Views no_photo = make_views(img, lbl, plain, r3, true);
    CHECK(labeled.strong.empty());
    CHECK(full.label.px == labeled.label.px);
    CHECK(full.weak.px == labeled.weak.px);
    CHECK(no_photo.strong.px == no_photo.weak.px);
    CHECK(no_photo.weak.px == labeled.weak.px);
    CHECK(full.strong.h == 24);
    CHECK(full.strong.w == 32);
  }
  // With brightness as the only photometric op, strong = trunc(f * weak) for one f: the two
  // views are pixel-aligned.
  AugmentConfig bright = cfg;
  bright.randaugment = false;
  bright.contrast = bright.saturation = bright.hue = 0;
  Rng rng(11);
  const Views v = make_views(img, lbl, bright, rng, true);
  size_t brightest = 0;  // the brightest pixel that did not saturate estimates f best
  for (size_t i = 0; i < v.weak.px.size(); ++i)
    if (v.strong.px[i] < 255 && v.weak.px[i] > v.weak.px[brightest]) brightest = i;
  REQUIRE(v.weak.px[brightest] > 100);
  const float f = (v.strong.px[brightest] + 0.5f) / v.weak.px[brightest];
  int bad = 0;
  for (size_t i = 0; i < v.weak.px.size(); ++i)
    bad += std::abs(int(v.strong.px[i]) - std::min(255, int(f * v.weak.px[i]))) > 1;
  CHECK(bad == 0);
  CHECK(v.strong.px != v.weak.px);
}

TEST_CASE("augment: cutmix box covers half the image") {
  Rng rng(9);
  const int sizes[][2] = {{256, 512}, {65, 33}, {7, 5}, {2, 2}, {1, 9}};
  for (const auto& s : sizes) {
    const int H = s[0], W = s[1];
    double sum_hf = 0;
    for (int i = 0; i < 2000; ++i) {
      const Box b = cutmix_box(H, W, rng);
      CAPTURE(H);
      CAPTURE(W);
      REQUIRE(b.y0 >= 0);
      REQUIRE(b.x0 >= 0);
      REQUIRE(b.y0 + b.h <= H);
      REQUIRE(b.x0 + b.w <= W);
      REQUIRE(b.h >= 1);
      REQUIRE(b.w >= 1);
      // within rounding of one row or column
      REQUIRE(std::abs(b.h * b.w - H * W / 2.0) <= std::max(H, W) / 2.0 + 0.5);
      REQUIRE(b.h >= std::floor(H * 0.5));
      sum_hf += double(b.h) / H;
    }
    // E[exp(U ln 0.5)] = 0.5 / ln 2 = 0.7213 (sd of the mean over 2000 draws ~ 0.003)
    if (H >= 256) CHECK(sum_hf / 2000 == doctest::Approx(0.7213).epsilon(0.02));
  }
  // large images: area half to within half a column
  for (int i = 0; i < 200; ++i) {
    const Box b = cutmix_box(256, 512, rng);
    CHECK(std::abs(b.h * b.w - 256 * 512 / 2) <= b.h / 2 + 1);
  }
}
