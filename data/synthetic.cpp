// Synthetic street scenes (see synthetic.h): scene layout, ground, facades, skyline, sky,
// lighting and the dataset writer. The foreground objects are in synthetic_objects.cpp.
//
// Geometry (camera height = 1 unit, about 1.5 m): the horizon is the image row yh, the
// vanishing point column xv, the focal length f pixels. A ground point at lateral offset X
// and depth Z projects to x = xv + f X / Z, y = yh + f / Z, and a point at height Y above it
// to y = yh + f (1 - Y) / Z. So on image row y of the ground, Z = f / (y - yh) and
// X = (x - xv) / (y - yh).
#include "data/synthetic.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "core/error.h"
#include "data/augment.h"
#include "data/image_io.h"
#include "data/synthetic_scene.h"

namespace c3::data {
namespace synth {

uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

float hash01(int64_t x, int64_t y, uint64_t s) {
  // One finalizer over a linear combination: cheap, and good enough for textures.
  const uint64_t k = s + uint64_t(x) * 0xD1B54A32D192ED03ull + uint64_t(y) * 0xABC98388FB8FAC03ull;
  return float(mix64(k) >> 40) * (1.f / 16777216.f);
}

// Value noise: random values on the integer lattice, smoothly interpolated; in [0, 1).
float vnoise(float x, float y, uint64_t s) {
  const float fx = std::floor(x), fy = std::floor(y);
  const int64_t ix = int64_t(fx), iy = int64_t(fy);
  float tx = x - fx, ty = y - fy;
  tx = tx * tx * (3 - 2 * tx), ty = ty * ty * (3 - 2 * ty);
  const float a = hash01(ix, iy, s), b = hash01(ix + 1, iy, s);
  const float c = hash01(ix, iy + 1, s), d = hash01(ix + 1, iy + 1, s);
  return (a + (b - a) * tx) * (1 - ty) + (c + (d - c) * tx) * ty;
}

float fbm(float x, float y, uint64_t s, int octaves) {
  float sum = 0, amp = 1, norm = 0;
  for (int o = 0; o < octaves; ++o, x *= 2.03f, y *= 2.03f, amp *= 0.5f) {
    sum += amp * vnoise(x, y, s + uint64_t(o));
    norm += amp;
  }
  return sum / norm;
}

Col random_building_colour(Rng& r) {
  const float k = r.uni();
  if (k < 0.4f) {  // concrete grey, often the road's grey
    const float v = r.uni(60, 175);
    return {v * r.uni(0.95f, 1.05f), v, v * r.uni(0.95f, 1.08f)};
  }
  if (k < 0.65f) return {r.uni(150, 210), r.uni(130, 185), r.uni(95, 150)};  // sandstone, plaster
  if (k < 0.85f) return {r.uni(110, 170), r.uni(55, 95), r.uni(40, 75)};     // brick
  const float v = r.uni(185, 235);                                           // white
  return {v, v * r.uni(0.96f, 1.0f), v * r.uni(0.92f, 1.0f)};
}

Col random_green(Rng& r) {
  if (r.chance(0.15f)) return {r.uni(110, 150), r.uni(90, 120), r.uni(30, 60)};  // autumn
  return {r.uni(35, 100), r.uni(70, 140), r.uni(20, 70)};
}

void Scene::put(int x, int y, uint8_t cls, Col c) {
  if (x < 0 || x >= w || y < 0 || y >= h) return;
  const size_t i = size_t(y) * size_t(w) + size_t(x);
  lab[i] = cls;
  rgb[3 * i] = c.r, rgb[3 * i + 1] = c.g, rgb[3 * i + 2] = c.b;
}

namespace {

// Street layout, colours and the facade segments of both sides.
void plan(Scene& s, Rng& r) {
  s.yh = s.h * r.uni(0.36f, 0.5f);
  s.xv = s.w * r.uni(0.38f, 0.62f);
  s.f = s.w * r.uni(0.7f, 1.0f);
  s.c = r.uni(-0.5f, 0.5f);
  s.r = r.uni(1.1f, 2.2f);
  s.tex = r.next();
  const float g = r.uni(55, 135);
  s.road = {g * r.uni(0.95f, 1.05f), g * r.uni(0.95f, 1.05f), g * r.uni(0.97f, 1.12f)};
  s.sidewalk = r.chance(0.5f) ? Col{g * 1.25f, g * 1.2f, g * 1.18f}
                              : Col{r.uni(120, 190), r.uni(90, 160), r.uni(90, 150)};
  s.terrain = r.chance(0.7f) ? random_green(r) : Col{r.uni(100, 150), r.uni(90, 130), r.uni(60, 90)};
  s.overcast = r.chance(0.35f);
  const float sg = r.uni(150, 225);
  s.sky_top = s.overcast ? Col{sg * 0.92f, sg * 0.94f, sg} : Col{r.uni(40, 110), r.uni(90, 150), r.uni(170, 240)};
  s.sky_low = s.overcast ? Col{sg, sg, sg} : Col{r.uni(150, 210), r.uni(180, 220), r.uni(210, 250)};
  s.centre_line = s.r > 1.5f && r.chance(0.7f);
  for (int k = 0; k < 2; ++k) {
    Side& sd = s.side[k];
    sd.sw = r.uni(0.35f, 1.0f);
    sd.verge = r.chance(0.4f) ? r.uni(0.3f, 1.2f) : 0.f;
    sd.beyond_terrain = r.chance(0.4f);
    sd.xf = s.c + (k ? 1 : -1) * (s.r + sd.sw + sd.verge);
    for (float z = r.uni(0, 2); z < 90;) {
      Segment seg;
      seg.z0 = z, seg.z1 = z + r.uni(4, 14);
      const float t = r.uni();
      seg.type = t < 0.7f ? Segment::kBuilding : t < 0.9f ? Segment::kTrees : Segment::kGap;
      seg.height = seg.type == Segment::kTrees ? r.uni(1.5f, 4.f) : r.uni(2.5f, 15.f);
      seg.col = seg.type == Segment::kTrees ? random_green(r) : random_building_colour(r);
      seg.win_dz = r.uni(1.0f, 2.2f), seg.win_dy = r.uni(1.6f, 2.4f);
      seg.win_fz = r.uni(0.35f, 0.7f), seg.win_fy = r.uni(0.35f, 0.65f);
      seg.windows = r.chance(0.8f);
      seg.win_col = r.chance(0.6f) ? Col{r.uni(15, 60), r.uni(20, 65), r.uni(30, 80)}
                                   : Col{r.uni(110, 170), r.uni(130, 180), r.uni(150, 200)};
      seg.seed = r.next();
      sd.segs.push_back(seg);
      z = seg.z1;
    }
  }
}

void draw_sky(Scene& s) {
  for (int y = 0; y < s.h; ++y) {
    const float t = std::min(1.f, (y + 0.5f) / std::max(1.f, s.yh));
    for (int x = 0; x < s.w; ++x) {
      Col c = mix(s.sky_top, s.sky_low, t);
      const float n = fbm(x * 0.03f, y * 0.06f, s.tex + 1, 3);  // clouds
      if (s.overcast) c = c * (0.88f + 0.24f * n);
      else if (n > 0.55f) c = mix(c, Col{235, 238, 242}, std::min(1.f, (n - 0.55f) * 4));
      s.put(x, y, kSky, c);
    }
  }
}

// Distant buildings and tree tops standing on the horizon, faded towards the sky colour.
void draw_skyline(Scene& s, Rng& r) {
  const float half = s.w * r.uni(0.12f, 0.5f), haze = r.uni(0.2f, 0.55f);
  for (float x0 = s.xv - half; x0 < s.xv + half;) {
    const float bw = r.uni(3, 0.09f * s.w), top = s.yh - r.uni(2, 0.3f * s.h);
    const bool tree = r.chance(0.2f);
    const Col base = mix(tree ? random_green(r) : random_building_colour(r), s.sky_low, haze);
    const uint64_t seed = r.next();
    for (int x = int(std::ceil(x0 - 0.5f)); x + 0.5f < x0 + bw; ++x)
      for (int y = std::max(0, int(std::ceil(top - 0.5f))); y < int(s.yh + 1); ++y) {
        const float n = vnoise(x * 0.7f, y * 0.7f, seed);
        if (tree && n < 0.3f && y < top + 3) continue;  // ragged tree tops
        const bool window = !tree && (x % 3 == 0) && (y % 3 == 1) && n > 0.4f;
        s.put(x, y, tree ? kVegetation : kBuilding, base * (window ? 0.7f : 0.92f + 0.16f * n));
      }
    x0 += bw;
  }
}

void draw_ground(Scene& s) {
  for (int y = int(s.yh); y < s.h; ++y) {
    const float dy = y + 0.5f - s.yh;
    if (dy <= 0) continue;
    const float z = s.f / dy;
    for (int x = 0; x < s.w; ++x) {
      const float X = (x + 0.5f - s.xv) / dy, d = std::abs(X - s.c);
      const Side& sd = s.side[X < s.c ? 0 : 1];
      const float n = fbm(X * 3, z * 1.2f, s.tex + 2, 2);
      if (d < s.r) {
        Col c = s.road * (0.86f + 0.28f * n);
        const bool dash = std::abs(X - s.c) < 0.06f && s.centre_line && z - 3 * std::floor(z / 3) < 1.4f;
        const bool edge = std::abs(d - (s.r - 0.15f)) < 0.04f;
        if (dash || edge) c = Col{215, 215, 205} * (0.9f + 0.1f * n);  // markings are road
        s.put(x, y, kRoad, c);
      } else if (d < s.r + sd.sw || (d >= s.r + sd.sw + sd.verge && !sd.beyond_terrain)) {
        const float tx = X * 2.5f - std::floor(X * 2.5f), tz = z * 2.5f - std::floor(z * 2.5f);
        const bool joint = tx < 0.07f || tz < 0.07f, curb = d < s.r + 0.1f;
        s.put(x, y, kSidewalk, s.sidewalk * ((curb ? 1.15f : joint ? 0.82f : 1.f) * (0.9f + 0.2f * n)));
      } else {
        const float blades = vnoise(x * 0.9f, y * 1.7f, s.tex + 3);
        s.put(x, y, kTerrain, s.terrain * (0.75f + 0.3f * n + 0.2f * blades));
      }
    }
  }
}

Col facade_colour(const Segment& seg, float z, float y, uint64_t tex) {
  const float n = vnoise(z * 1.5f, y * 1.5f, seg.seed);
  Col c = seg.col * (0.9f + 0.2f * n);
  if (y > seg.height - 0.25f) return c * 0.7f;  // roof edge
  if (!seg.windows || y < 1.2f) return c;
  const float u = (z - seg.z0) / seg.win_dz, v = y / seg.win_dy;
  const float fu = u - std::floor(u), fv = v - std::floor(v);
  if (fu < seg.win_fz && fv > 0.3f && fv < 0.3f + seg.win_fy) {
    const float lit = hash01(int64_t(u), int64_t(v), seg.seed);
    return lit > 0.9f ? Col{230, 210, 150} : seg.win_col * (0.8f + 0.4f * lit);
  }
  return c;
}

void draw_facades(Scene& s) {
  for (int k = 0; k < 2; ++k) {
    const Side& sd = s.side[k];
    for (int x = 0; x < s.w; ++x) {
      const float dx = x + 0.5f - s.xv;
      if (dx * sd.xf <= 0) continue;  // the other side of the vanishing point
      const float z = s.f * sd.xf / dx;
      auto it = std::find_if(sd.segs.begin(), sd.segs.end(), [&](const Segment& g) { return z >= g.z0 && z < g.z1; });
      if (it == sd.segs.end() || it->type == Segment::kGap) continue;
      const Segment& seg = *it;
      float top = seg.height;
      if (seg.type == Segment::kTrees) top += 1.2f * vnoise(z * 0.8f, 0, seg.seed) - 0.6f;
      const float ground_y = s.yh + s.f / z, roof_y = s.yh + s.f * (1 - top) / z;
      for (int y = std::max(0, int(std::ceil(roof_y - 0.5f))); y + 0.5f < ground_y && y < s.h; ++y) {
        const float wy = 1 - (y + 0.5f - s.yh) * z / s.f;  // height above the ground
        if (seg.type == Segment::kTrees) {
          const float leaf = vnoise(x * 0.6f, y * 0.6f, seg.seed), big = vnoise(z * 2, wy * 2, seg.seed + 1);
          s.put(x, y, kVegetation, seg.col * (0.5f + 0.5f * leaf + 0.4f * big));
        } else {
          s.put(x, y, kBuilding, facade_colour(seg, z, wy, s.tex));
        }
      }
    }
  }
}

// Global illumination, colour cast, haze, a cast shadow over the ground, and sensor noise.
// `lighting` scales how far gain, cast and haze move from neutral (1: as drawn); the draws
// are made either way, so the rest of the scene does not change with it.
Image finish(Scene& s, Rng& r, float lighting) {
  auto around = [&](float v, float neutral) { return lighting == 1.f ? v : neutral + lighting * (v - neutral); };
  const float gain = around(r.uni(0.6f, 1.3f), 1.f), haze = around(r.uni(0.f, 0.25f), 0.f), sigma = r.uni(1.5f, 6.f);
  const float cr = r.uni(0.88f, 1.12f), cg = r.uni(0.92f, 1.08f), cb = r.uni(0.88f, 1.12f);
  const Col cast{around(cr, 1.f), around(cg, 1.f), around(cb, 1.f)};
  const bool shadow = r.chance(0.5f);
  const float shadow_x = s.c + r.uni(-s.r, s.r), shadow_k = r.uni(0.45f, 0.7f);
  const int shadow_side = r.chance(0.5f) ? 1 : -1;
  Rng noise(r.next());
  Image img(s.h, s.w, 3);
  for (int y = 0; y < s.h; ++y)
    for (int x = 0; x < s.w; ++x) {
      const size_t i = size_t(y) * size_t(s.w) + size_t(x);
      float k = gain;
      const uint8_t cls = s.lab[i];
      if (shadow && y + 0.5f > s.yh && (cls == kRoad || cls == kSidewalk || cls == kTerrain)) {
        const float dy = y + 0.5f - s.yh, X = (x + 0.5f - s.xv) / dy;
        const float wobble = 0.4f * vnoise(s.f / dy * 0.5f, 0, s.tex + 4);
        if ((X - shadow_x - wobble) * float(shadow_side) > 0) k *= shadow_k;
      }
      const float cs[3] = {cast.r, cast.g, cast.b};
      for (int ch = 0; ch < 3; ++ch) {
        float v = s.rgb[3 * i + size_t(ch)] * k * cs[ch];
        v = v * (1 - haze) + 170 * haze;
        float u = noise.uni();  // the four draws in a fixed order (a + b + c + d would not fix it)
        u += noise.uni(), u += noise.uni(), u += noise.uni();
        v += sigma * 0.866f * (u - 2);  // about N(0, sigma^2)
        img.px[3 * i + size_t(ch)] = uint8_t(std::clamp(v + 0.5f, 0.f, 255.f));
      }
    }
  return img;
}

}  // namespace
}  // namespace synth

const std::vector<uint8_t>& synthetic_classes(bool rare) {
  using namespace synth;
  static const std::vector<uint8_t> classes = {kRoad,       kSidewalk, kBuilding, kPole,   kSign,
                                               kVegetation, kTerrain,  kSky,      kPerson, kCar};
  static const std::vector<uint8_t> with_rare = {kRoad,       kSidewalk, kBuilding, kWall,   kFence,  kPole,
                                                 kSign,       kVegetation, kTerrain, kSky,   kPerson, kRider,
                                                 kCar,        kTruck,    kBus,      kBicycle};
  return rare ? with_rare : classes;
}

SyntheticScene render_scene(uint64_t seed, int h, int w, float lighting, float rare, float colour) {
  C3_CHECK(h >= 8 && w >= 8, "render_scene: size ", h, "x", w, " is too small (8x8 at least)");
  C3_CHECK(lighting >= 0.f && lighting <= 1.f, "render_scene: lighting must be in [0, 1], got ", lighting);
  C3_CHECK(rare >= 0.f && rare <= 1.f, "render_scene: rare must be in [0, 1], got ", rare);
  C3_CHECK(colour >= 0.f && colour <= 1.f, "render_scene: colour must be in [0, 1], got ", colour);
  synth::Scene s;
  s.h = h, s.w = w;
  s.rgb.assign(size_t(h) * size_t(w) * 3, 0.f);
  s.lab.assign(size_t(h) * size_t(w), synth::kSky);
  synth::Rng r(synth::mix64(seed));
  synth::plan(s, r);
  synth::draw_sky(s);
  synth::draw_skyline(s, r);
  synth::draw_ground(s);
  synth::draw_facades(s);
  synth::Rng rr(synth::mix64(seed ^ 0x5241524543303030ull));  // the rare objects' own stream
  synth::draw_objects(s, r, rr, rare);
  SyntheticScene out;
  out.image = synth::finish(s, r, lighting);
  if (colour > 0) {  // the scene's colour rendition, from its own stream
    synth::Rng cr(synth::mix64(seed ^ 0x434f4c4f55523030ull));
    adjust_hue(out.image, cr.uni(-0.5f, 0.5f) * colour);
    adjust_saturation(out.image, 1 + cr.uni(-0.5f, 0.5f) * colour);
    adjust_contrast(out.image, 1 + cr.uni(-0.4f, 0.4f) * colour);
    adjust_brightness(out.image, 1 + cr.uni(-0.4f, 0.4f) * colour);
  }
  out.label = Image(h, w, 1);
  out.label.px = s.lab;
  return out;
}

uint64_t synthetic_scene_seed(uint64_t seed, const std::string& split, int index) {
  uint64_t k = synth::mix64(seed);
  for (char ch : split) k = synth::mix64(k ^ uint8_t(ch));
  return synth::mix64(k ^ uint64_t(int64_t(index)));
}

void make_synthetic(const std::string& out_dir, uint64_t seed, int n_train, int n_val, int h, int w, float lighting,
                    float rare, float colour) {
  C3_CHECK(n_train >= 0 && n_val >= 0, "make_synthetic: negative image count (", n_train, ", ", n_val, ")");
  namespace fs = std::filesystem;
  struct Job {
    std::string split;
    int index;
  };
  std::vector<Job> jobs;
  for (const auto& [split, n] : {std::pair<std::string, int>{"train", n_train}, {"val", n_val}}) {
    std::error_code ec;
    for (const char* top : {"leftImg8bit", "gtFine"}) {
      fs::create_directories(fs::path(out_dir) / top / split / "synth", ec);
      C3_CHECK(!ec, out_dir, ": cannot create ", top, "/", split, "/synth (", ec.message(), ")");
    }
    for (int i = 0; i < n; ++i) jobs.push_back({split, i});
  }
  std::string error;
#pragma omp parallel for schedule(dynamic, 4)
  for (int64_t j = 0; j < int64_t(jobs.size()); ++j) {
    const Job& job = jobs[size_t(j)];
    try {
      const SyntheticScene sc = render_scene(synthetic_scene_seed(seed, job.split, job.index), h, w, lighting, rare, colour);
      char name[32];
      std::snprintf(name, sizeof name, "synth_%06d", job.index);
      const fs::path city = fs::path(job.split) / "synth";
      write_png((fs::path(out_dir) / "leftImg8bit" / city / (std::string(name) + "_leftImg8bit.png")).string(),
                sc.image);
      write_png((fs::path(out_dir) / "gtFine" / city / (std::string(name) + "_gtFine_labelTrainIds.png")).string(),
                sc.label);
    } catch (const std::exception& e) {  // exceptions must not leave an OpenMP loop
#pragma omp critical(c3_make_synthetic)
      if (error.empty()) error = e.what();
    }
  }
  C3_CHECK(error.empty(), "make_synthetic: ", error);
}

}  // namespace c3::data
