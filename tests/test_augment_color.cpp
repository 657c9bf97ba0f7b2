// Colour ops of the strong view, each against values worked out by hand with PIL's integer
// arithmetic (blend truncates, luma is (r*19595 + g*38470 + b*7471 + 32768) >> 16).
#include <doctest/doctest.h>

#include <algorithm>
#include <set>
#include <string>

#include "core/error.h"
#include "data/augment.h"

using namespace c3::data;

namespace {

Image rgb(int h, int w, std::vector<uint8_t> px) {
  Image img(h, w, 3);
  REQUIRE(px.size() == img.px.size());
  img.px = std::move(px);
  return img;
}

Image gray_pixels(std::vector<uint8_t> v) {  // 1 x n, r = g = b
  Image img(1, int(v.size()), 3);
  for (size_t i = 0; i < v.size(); ++i) img.px[3 * i] = img.px[3 * i + 1] = img.px[3 * i + 2] = v[i];
  return img;
}

std::vector<uint8_t> red_channel(const Image& img) {
  std::vector<uint8_t> r;
  for (size_t i = 0; i < img.px.size(); i += 3) r.push_back(img.px[i]);
  return r;
}

}  // namespace

TEST_CASE("augment: brightness, contrast, saturation and grayscale arithmetic") {
  Image b = rgb(1, 1, {100, 200, 101});
  adjust_brightness(b, 1.5f);
  CHECK(b.px == std::vector<uint8_t>{150, 255, 151});  // 151.5 truncates, 300 clips
  b = rgb(1, 1, {100, 200, 101});
  adjust_brightness(b, 0.5f);
  CHECK(b.px == std::vector<uint8_t>{50, 100, 50});

  Image c = gray_pixels({0, 100, 100, 200});  // mean luma 100
  adjust_contrast(c, 0.5f);
  CHECK(red_channel(c) == std::vector<uint8_t>{50, 100, 100, 150});
  c = gray_pixels({0, 100, 100, 200});
  adjust_contrast(c, 2.0f);
  CHECK(red_channel(c) == std::vector<uint8_t>{0, 100, 100, 255});
  c = gray_pixels({0, 0, 0, 101});  // mean 25.25 -> int(25.75) = 25
  adjust_contrast(c, 0.0f);
  CHECK(c.px == std::vector<uint8_t>(12, 25));

  // luma(100, 50, 200) = 5409968 >> 16 = 82
  CHECK(luma601(rgb(1, 1, {100, 50, 200}).px.data()) == 82);
  Image s = rgb(1, 1, {100, 50, 200});
  adjust_saturation(s, 0.5f);
  CHECK(s.px == std::vector<uint8_t>{91, 66, 141});
  s = rgb(1, 1, {100, 50, 200});
  adjust_saturation(s, 2.0f);
  CHECK(s.px == std::vector<uint8_t>{118, 18, 255});
  s = rgb(1, 1, {100, 50, 200});
  grayscale(s);
  CHECK(s.px == std::vector<uint8_t>{82, 82, 82});
  Image one_channel(2, 2, 1);
  CHECK_THROWS_WITH_AS(adjust_saturation(one_channel, 1.f), doctest::Contains("adjust_saturation: expected an RGB image"),
                       c3::Error);
}

TEST_CASE("augment: hue shift in PIL's 8-bit HSV") {
  Image r = rgb(1, 2, {255, 0, 0, 128, 128, 128});
  adjust_hue(r, 1.0f / 3);  // H 0 + 85 -> sector 2 exactly: green; gray has no hue
  CHECK(r.px == std::vector<uint8_t>{0, 255, 0, 128, 128, 128});
  r = rgb(1, 1, {255, 0, 0});
  adjust_hue(r, -1.0f / 3);  // -85 wraps to 171: sector 4, f = 0.0235 -> (round(255 f), 0, 255)
  CHECK(r.px == std::vector<uint8_t>{6, 0, 255});
  r = rgb(1, 1, {255, 0, 0});
  adjust_hue(r, 0.f);
  CHECK(r.px == std::vector<uint8_t>{255, 0, 0});
  CHECK_THROWS_AS(adjust_hue(r, 0.7f), c3::Error);
}

TEST_CASE("augment: invert, posterize, solarize, solarize-add") {
  Image a = gray_pixels({0, 10, 127, 128, 183, 200});
  invert(a);
  CHECK(red_channel(a) == std::vector<uint8_t>{255, 245, 128, 127, 72, 55});
  Image p = gray_pixels({183, 255, 15});  // 183 = 1011 0111
  posterize(p, 2);
  CHECK(red_channel(p) == std::vector<uint8_t>{128, 192, 0});
  p = gray_pixels({183, 255, 15});
  posterize(p, 4);
  CHECK(red_channel(p) == std::vector<uint8_t>{176, 240, 0});
  p = gray_pixels({183});
  posterize(p, 8);
  CHECK(red_channel(p) == std::vector<uint8_t>{183});
  posterize(p, 0);
  CHECK(red_channel(p) == std::vector<uint8_t>{0});
  Image s = gray_pixels({0, 127, 128, 200});
  solarize(s, 128);
  CHECK(red_channel(s) == std::vector<uint8_t>{0, 127, 127, 55});
  s = gray_pixels({100, 127, 128, 200});
  solarize_add(s, 110, 128);
  CHECK(red_channel(s) == std::vector<uint8_t>{210, 237, 128, 200});
  s = gray_pixels({100, 200});
  solarize_add(s, 200, 128);
  CHECK(red_channel(s) == std::vector<uint8_t>{255, 200});
}

TEST_CASE("augment: autocontrast and equalize per channel") {
  // R spans [10, 61] -> scale 5, offset -50; G constant -> unchanged; B already spans 0..255
  Image a = rgb(2, 2, {10, 5, 0, 20, 5, 255, 61, 5, 0, 10, 5, 255});
  autocontrast(a);
  CHECK(a.px == std::vector<uint8_t>{0, 5, 0, 50, 5, 255, 255, 5, 0, 0, 5, 255});

  Image small = rgb(2, 2, {10, 10, 10, 200, 200, 200, 10, 10, 10, 10, 10, 10});
  const auto before = small.px;
  equalize(small);  // step = (4 - count of the top value) // 255 = 0: unchanged
  CHECK(small.px == before);

  // 768 pixels. R: 256 each of 10, 100, 200 -> step 2, lut = (1 + below) // 2: 0, 128, 256->255.
  // G: constant 7 (one value: unchanged). B: 256 of 10, 512 of 200 -> step 1: 0, 256->255.
  Image e(16, 48, 3);
  for (int i = 0; i < 768; ++i) {
    e.px[3 * i] = i < 256 ? 10 : i < 512 ? 100 : 200;
    e.px[3 * i + 1] = 7;
    e.px[3 * i + 2] = i < 256 ? 10 : 200;
  }
  equalize(e);
  CHECK(e.px[0] == 0);
  CHECK(e.px[3 * 300] == 128);
  CHECK(e.px[3 * 600] == 255);
  CHECK(e.px[1] == 7);
  CHECK(e.px[2] == 0);
  CHECK(e.px[3 * 300 + 2] == 255);
}

TEST_CASE("augment: sharpness blends with PIL SMOOTH and leaves the border unchanged") {
  // 3x3: border 13, centre 130. SMOOTH at the centre: (8*13 + 5*130) / 13 + 0.5 = 58.5 -> 58.
  Image img(3, 3, 3, 13);
  for (int k = 0; k < 3; ++k) img.at(1, 1)[k] = 130;
  Image s2 = img;
  adjust_sharpness(s2, 2.0f);  // 58 + 2 (130 - 58) = 202
  Image s0 = img;
  adjust_sharpness(s0, 0.0f);
  for (int k = 0; k < 3; ++k) {
    CHECK(s2.at(1, 1)[k] == 202);
    CHECK(s0.at(1, 1)[k] == 58);
  }
  for (int y = 0; y < 3; ++y)
    for (int x = 0; x < 3; ++x)
      if (y != 1 || x != 1) {
        CHECK(s2.at(y, x)[0] == 13);
        CHECK(s0.at(y, x)[2] == 13);
      }
}

TEST_CASE("augment: gaussian blur with reflect padding") {
  // sigma 1, size 3: weights (e^-0.5, 1, e^-0.5) / (1 + 2 e^-0.5) = (0.27407, 0.45186, 0.27407)
  Image imp(5, 5, 3, 0);
  for (int k = 0; k < 3; ++k) imp.at(2, 2)[k] = 255;
  gaussian_blur(imp, 1.0f, 3);
  CHECK(imp.at(2, 2)[0] == 52);  // 255 * 0.45186^2 = 52.07
  CHECK(imp.at(2, 3)[1] == 32);  // 255 * 0.45186 * 0.27407 = 31.58
  CHECK(imp.at(1, 1)[2] == 19);  // 255 * 0.27407^2 = 19.15
  CHECK(imp.at(0, 0)[0] == 0);
  // at a corner, reflection mirrors without repeating the edge: the impulse keeps weight 0.45186
  Image corner(5, 5, 3, 0);
  corner.at(0, 0)[0] = 255;
  gaussian_blur(corner, 1.0f, 3);
  CHECK(corner.at(0, 0)[0] == 52);
  CHECK(corner.at(0, 1)[0] == 32);
  CHECK(corner.at(1, 1)[0] == 19);
  Image flat(4, 6, 3, 100);
  gaussian_blur(flat, 1.7f, 5);
  CHECK(flat.px == std::vector<uint8_t>(4 * 6 * 3, 100));
  CHECK_THROWS_AS(gaussian_blur(flat, 1.f, 4), c3::Error);
}

TEST_CASE("augment: jitter order and draws, RandAugment magnitude maps") {
  // On gray (0, 200): brightness 2 then contrast 0 -> (0, 255), mean int(127.5 + 0.5) = 128;
  // contrast 0 then brightness 2 -> mean 100 -> 200.
  Jitter j;
  j.brightness = 2, j.contrast = 0;
  j.order = {0, 1, -1, -1};
  Image a = gray_pixels({0, 200});
  apply_jitter(a, j);
  CHECK(red_channel(a) == std::vector<uint8_t>{128, 128});
  j.order = {1, 0, -1, -1};
  a = gray_pixels({0, 200});
  apply_jitter(a, j);
  CHECK(red_channel(a) == std::vector<uint8_t>{200, 200});

  AugmentConfig cfg;
  Rng rng(4);
  std::set<int> firsts;
  for (int i = 0; i < 500; ++i) {
    const Jitter d = draw_jitter(cfg, rng);
    REQUIRE(std::set<int>(d.order.begin(), d.order.end()) == std::set<int>{0, 1, 2, 3});
    firsts.insert(d.order[0]);
    REQUIRE(d.brightness >= 0.5f);
    REQUIRE(d.brightness <= 1.5f);
    REQUIRE(d.saturation >= 0.5f);
    REQUIRE(d.hue >= -0.25f);
    REQUIRE(d.hue <= 0.25f);
  }
  CHECK(firsts.size() == 4);
  cfg.hue = 0;
  const Jitter nohue = draw_jitter(cfg, rng);
  CHECK(std::count(nohue.order.begin(), nohue.order.end(), -1) == 1);
  CHECK(std::count(nohue.order.begin(), nohue.order.end(), 3) == 0);

  auto op = [](RandOp o, double m, std::vector<uint8_t> v) {
    Image img = gray_pixels(std::move(v));
    apply_rand_op(img, o, m);
    return red_channel(img);
  };
  CHECK(op(RandOp::Posterize, 10, {183}) == std::vector<uint8_t>{176});  // 4 bits
  CHECK(op(RandOp::Posterize, 7, {183}) == std::vector<uint8_t>{128});   // int(2.8) = 2 bits
  CHECK(op(RandOp::Solarize, 5, {127, 200}) == std::vector<uint8_t>{127, 55});  // threshold 128
  CHECK(op(RandOp::Solarize, 10, {127, 255}) == std::vector<uint8_t>{127, 255});  // threshold 256
  CHECK(op(RandOp::SolarizeAdd, 10, {100, 200}) == std::vector<uint8_t>{210, 200});  // +110
  CHECK(op(RandOp::SolarizeAdd, 5, {100}) == std::vector<uint8_t>{155});  // +55
  CHECK(op(RandOp::Brightness, 5, {100, 37}) == std::vector<uint8_t>{100, 37});  // factor 1.0
  CHECK(op(RandOp::Brightness, 0, {100}) == std::vector<uint8_t>{10});  // factor 0.1
  CHECK(op(RandOp::Contrast, 0, {0, 200}) == std::vector<uint8_t>{90, 110});
  CHECK(op(RandOp::Invert, 3, {0, 10}) == std::vector<uint8_t>{255, 245});
  CHECK(std::string(rand_op_name(RandOp::SolarizeAdd)) == "SolarizeAdd");

  // RandAugment with p = 0 or n = 0 changes nothing
  Image img = gray_pixels({0, 50, 100, 150});
  const auto orig = img.px;
  AugmentConfig ra;
  ra.ra_p = 0;
  for (int i = 0; i < 20; ++i) randaugment(img, ra, rng);
  ra.ra_p = 1, ra.ra_n = 0;
  randaugment(img, ra, rng);
  CHECK(img.px == orig);
}
