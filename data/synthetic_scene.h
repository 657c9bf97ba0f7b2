// Internal to the synthetic scene generator (synthetic.cpp, synthetic_objects.cpp): the
// random streams, noise, colours and the scene being drawn. Not a public interface.
#pragma once
#include <cstdint>
#include <vector>

namespace c3::data::synth {

// trainIds of the classes drawn.
enum : uint8_t {
  kRoad = 0, kSidewalk = 1, kBuilding = 2, kPole = 5, kSign = 7, kVegetation = 8, kTerrain = 9,
  kSky = 10, kPerson = 11, kCar = 13,
  // the rare classes (render_scene's `rare` > 0)
  kWall = 3, kFence = 4, kRider = 12, kTruck = 14, kBus = 15, kBicycle = 18,
};

uint64_t mix64(uint64_t x);  // splitmix64's finalizer: a bijective 64-bit hash

// A splitmix64 stream. uni() has 24 random bits, exactly representable as float.
struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed) {}
  uint64_t next() { return mix64(s += 0x9E3779B97F4A7C15ull); }
  float uni() { return float(next() >> 40) * (1.f / 16777216.f); }  // [0, 1)
  float uni(float a, float b) { return a + (b - a) * uni(); }
  int range(int a, int b) { return a + int(next() % uint64_t(b - a + 1)); }  // [a, b]
  bool chance(float p) { return uni() < p; }
};

float hash01(int64_t x, int64_t y, uint64_t s);          // [0, 1) per lattice point
float vnoise(float x, float y, uint64_t s);              // smooth value noise in [0, 1)
float fbm(float x, float y, uint64_t s, int octaves);    // octaves of vnoise, in [0, 1)

struct Col {
  float r, g, b;
};
inline Col operator*(Col c, float k) { return {c.r * k, c.g * k, c.b * k}; }
inline Col mix(Col a, Col b, float t) { return {a.r + (b.r - a.r) * t, a.g + (b.g - a.g) * t, a.b + (b.b - a.b) * t}; }
Col random_building_colour(Rng& r);
Col random_green(Rng& r);

// A stretch [z0, z1) of depth along one side of the street.
struct Segment {
  enum Type { kBuilding, kTrees, kGap } type = kBuilding;
  float z0 = 0, z1 = 0, height = 0;
  Col col{}, win_col{};
  bool windows = false;
  float win_dz = 1, win_dy = 1, win_fz = 0.5f, win_fy = 0.5f;  // window pitch and fill, in units
  uint64_t seed = 0;
};

struct Side {
  float sw = 0, verge = 0;       // sidewalk and grass widths
  bool beyond_terrain = false;   // ground behind the facade line: grass, else pavement
  float xf = 0;                  // lateral position of the facades (signed)
  std::vector<Segment> segs;
};

struct Scene {
  int h = 0, w = 0;
  float yh = 0, xv = 0, f = 1;  // horizon row, vanishing column, focal length (pixels)
  float c = 0, r = 1;           // road centre and half width (units, lateral)
  Side side[2];                 // left, right
  Col road{}, sidewalk{}, terrain{}, sky_top{}, sky_low{};
  bool overcast = false, centre_line = false;
  uint64_t tex = 0;             // seed of the scene's textures
  std::vector<float> rgb;       // h * w * 3, before lighting
  std::vector<uint8_t> lab;     // h * w

  void put(int x, int y, uint8_t cls, Col c);
  float sx(float X, float Z) const { return xv + f * X / Z; }          // image column
  float sy(float Y, float Z) const { return yh + f * (1 - Y) / Z; }    // image row
};

// Cars, people, poles with signs and trees, drawn far to near (synthetic_objects.cpp). With
// rare > 0 also walls, fences, trucks, buses, cyclists and parked bicycles, each in a fraction
// of the scenes proportional to `rare`, their draws from `rr` (so `r`'s stream, and a scene
// made with rare = 0, do not change).
void draw_objects(Scene& s, Rng& r, Rng& rr, float rare);

}  // namespace c3::data::synth
