// Foreground objects of the synthetic scenes: cars, people, poles with traffic signs, trees;
// with `rare` also walls, fences, trucks, buses, cyclists (rider on a bicycle) and parked
// bicycles, each in a fraction of the scenes: the long tail that few labels rarely show.
// Each is a few upright planar faces in the street's world coordinates (units of camera
// height, see synthetic.cpp), painted by a function of the world point; objects are drawn
// far to near, so the nearer one wins every pixel it covers.
#include <algorithm>
#include <cmath>

#include "data/synthetic_scene.h"

namespace c3::data::synth {
namespace {

// A painter gets the world point of a pixel and returns false to leave the pixel alone.
// The rectangle X in [x0, x1], height Y in [y0, y1], facing the camera at depth z. A face
// thinner than a pixel is widened to one, so that distant poles still show.
template <class Paint>
void face_z(Scene& s, float x0, float x1, float y0, float y1, float z, Paint paint) {
  float px0 = s.sx(x0, z), px1 = s.sx(x1, z), top = s.sy(y1, z), bot = s.sy(y0, z);
  if (px1 - px0 < 1) px0 = (px0 + px1) / 2 - 0.5f, px1 = px0 + 1;
  if (bot - top < 1) top = (top + bot) / 2 - 0.5f, bot = top + 1;
  const int xa = std::max(0, int(std::ceil(px0 - 0.5f))), xb = std::min(s.w - 1, int(std::ceil(px1 - 0.5f)) - 1);
  const int ya = std::max(0, int(std::ceil(top - 0.5f))), yb = std::min(s.h - 1, int(std::ceil(bot - 0.5f)) - 1);
  for (int y = ya; y <= yb; ++y) {
    const float wy = y0 + (bot - (y + 0.5f)) / (bot - top) * (y1 - y0);
    for (int x = xa; x <= xb; ++x) {
      const float wx = x0 + (x + 0.5f - px0) / (px1 - px0) * (x1 - x0);
      uint8_t cls = 0;
      Col c{};
      if (paint(wx, wy, cls, c)) s.put(x, y, cls, c);
    }
  }
}

// The rectangle at lateral offset xe, depth z in [z0, z1], height Y in [y0, y1], running
// along the street (the side of a car). The painter gets (z, Y).
template <class Paint>
void face_x(Scene& s, float xe, float z0, float z1, float y0, float y1, Paint paint) {
  const float pa = s.sx(xe, z0), pb = s.sx(xe, z1);
  const int xa = std::max(0, int(std::floor(std::min(pa, pb)))), xb = std::min(s.w - 1, int(std::ceil(std::max(pa, pb))));
  for (int x = xa; x <= xb; ++x) {
    const float dx = x + 0.5f - s.xv;
    if (dx * xe <= 0) continue;
    const float z = s.f * xe / dx;
    if (z < z0 || z > z1) continue;
    const float top = s.sy(y1, z), bot = s.sy(y0, z);
    for (int y = std::max(0, int(std::ceil(top - 0.5f))); y + 0.5f < bot && y < s.h; ++y) {
      uint8_t cls = 0;
      Col c{};
      if (paint(z, y0 + (bot - (y + 0.5f)) / (bot - top) * (y1 - y0), cls, c)) s.put(x, y, cls, c);
    }
  }
}

Col car_colour(Rng& r) {
  const float k = r.uni();
  if (k < 0.4f) {  // silver, grey, black: the road's colours
    const float v = r.uni(25, 210);
    return {v, v, v * r.uni(0.97f, 1.08f)};
  }
  if (k < 0.55f) return Col{232, 233, 235} * r.uni(0.85f, 1.f);
  return {r.uni(20, 220), r.uni(20, 220), r.uni(20, 220)};
}

void draw_car(Scene& s, Rng& r, float X, float z) {
  const float w = r.uni(1.05f, 1.3f), h = r.chance(0.15f) ? r.uni(1.2f, 1.5f) : r.uni(0.85f, 1.05f);
  const float len = r.uni(2.4f, 3.2f), belt = 0.58f * h, clear = 0.17f;
  const Col body = car_colour(r), glass = Col{30, 38, 48} * r.uni(0.7f, 1.6f), tyre{24, 24, 26};
  const float xl = X - w / 2, xr = X + w / 2;
  // The side facing the camera axis shows when the whole car is off to one side.
  const float xe = X > 0 ? xl : xr;
  if (xe * X > 0)
    face_x(s, xe, z, z + len, 0, h, [&](float wz, float y, uint8_t& cls, Col& c) {
      const float u = (wz - z) / len;
      cls = kCar;
      for (float wc : {z + 0.18f * len, z + 0.82f * len})
        if ((wz - wc) * (wz - wc) + (y - 0.3f) * (y - 0.3f) < 0.09f) return c = tyre, true;
      if (y < clear) return false;
      if (y < belt) return c = body * 0.8f, true;
      const float t = (y - belt) / (h - belt), a = 0.18f + 0.12f * t, b = 0.85f - 0.2f * t;
      if (u < a || u > b) return false;
      c = (u > a + 0.04f && u < b - 0.04f && t < 0.8f) ? glass : body * 0.8f;
      return true;
    });
  face_z(s, xl, xr, 0, h, z, [&](float wx, float y, uint8_t& cls, Col& c) {
    const float u = (wx - xl) / w;
    cls = kCar;
    if (y < clear) return (u < 0.2f || u > 0.8f) ? (c = tyre, true) : false;
    if (y < belt) {
      if (y > belt - 0.2f && y < belt - 0.08f && (u < 0.15f || u > 0.85f)) c = {200, 25, 20};  // lights
      else if (u > 0.4f && u < 0.6f && y > clear + 0.07f && y < clear + 0.19f) c = {215, 215, 205};  // plate
      else c = body * (y < clear + 0.06f ? 0.6f : 1.f);
      return true;
    }
    const float t = (y - belt) / (h - belt), in = 0.06f + 0.1f * t;
    if (u < in || u > 1 - in) return false;
    c = (u > in + 0.05f && u < 1 - in - 0.05f && t > 0.1f && t < 0.85f) ? glass : body;
    return true;
  });
}

void draw_person(Scene& s, Rng& r, float X, float z) {
  const float hp = r.uni(0.95f, 1.3f), stride = r.uni(-0.06f, 0.06f);
  const float tone = r.uni(0.45f, 1.f);
  const Col skin{225 * tone, 180 * tone, 150 * tone}, hair = Col{60, 45, 30} * r.uni(0.3f, 2.5f);
  const Col shirt{r.uni(15, 235), r.uni(15, 235), r.uni(15, 235)};
  const Col pants = r.chance(0.5f) ? Col{r.uni(20, 70), r.uni(25, 70), r.uni(40, 110)}
                                   : Col{r.uni(20, 200), r.uni(20, 200), r.uni(20, 200)};
  const bool bag = r.chance(0.3f);
  face_z(s, X - 0.25f * hp, X + 0.25f * hp, 0, hp, z, [&](float wx, float y, uint8_t& cls, Col& c) {
    const float dx = (wx - X) / hp, v = y / hp, adx = std::abs(dx);
    cls = kPerson;
    if (dx * dx + (v - 0.925f) * (v - 0.925f) < 0.0045f) return c = v > 0.95f ? hair : skin, true;  // head
    if (v > 0.84f && v < 0.88f && adx < 0.03f) return c = skin, true;                                 // neck
    if (v > 0.47f && v < 0.86f && adx < 0.115f) return c = shirt, true;                               // torso
    if (v > 0.5f && v < 0.84f && adx < 0.155f) return c = v < 0.58f ? skin : shirt, true;             // arms
    if (bag && dx > 0.15f && dx < 0.24f && v > 0.42f && v < 0.62f) return c = Col{70, 50, 35}, true;
    if (v < 0.48f) {                                                                                  // legs
      const float spread = stride * (0.48f - v) / 0.48f;
      if (std::abs(dx + 0.05f + spread) < 0.042f || std::abs(dx - 0.05f - spread) < 0.042f)
        return c = v < 0.03f ? Col{30, 28, 28} : pants, true;
    }
    return false;
  });
}

void draw_pole(Scene& s, Rng& r, float X, float z) {
  const float hp = r.uni(2.2f, 5.5f), pw = r.uni(0.05f, 0.1f), g = r.uni(50, 170);
  const Col col = r.chance(0.8f) ? Col{g, g, g * 1.03f} : Col{r.uni(20, 60), r.uni(50, 90), r.uni(30, 60)};
  face_z(s, X - pw / 2, X + pw / 2, 0, hp, z, [&](float wx, float, uint8_t& cls, Col& c) {
    cls = kPole;
    c = col * ((wx - X) / pw > 0.1f ? 0.8f : 1.f);  // one side in shade
    return true;
  });
  if (!r.chance(0.65f)) return;
  const float sz = r.uni(0.35f, 0.65f), cy = std::max(1.4f, hp - r.uni(0.1f, 0.8f));
  const float cx = X + (X < s.c ? 1.f : -1.f) * (r.chance(0.5f) ? sz / 2 + pw / 2 : 0.f);
  const int shape = r.range(0, 2);
  const float k = r.uni();
  const Col face = k < 0.3f ? Col{230, 200, 30} : k < 0.5f ? Col{30, 70, 170} : k < 0.7f ? Col{200, 30, 30}
                 : k < 0.85f ? Col{225, 225, 225} : Col{g, g, g};  // the last: seen from behind
  face_z(s, cx - sz / 2, cx + sz / 2, cy - sz / 2, cy + sz / 2, z - 0.05f, [&](float wx, float y, uint8_t& cls, Col& c) {
    const float u = (wx - cx) / sz * 2, v = (y - cy) / sz * 2;  // [-1, 1]^2
    const float d2 = u * u + v * v;
    if (shape == 1 && d2 > 1) return false;
    if (shape == 2 && std::abs(u) + std::abs(v) > 1) return false;
    cls = kSign;
    const bool rim = shape == 0 ? std::max(std::abs(u), std::abs(v)) > 0.8f
                   : shape == 1 ? d2 > 0.64f : std::abs(u) + std::abs(v) > 0.8f;
    c = rim ? Col{235, 235, 235} : face;
    return true;
  });
}

void draw_tree(Scene& s, Rng& r, float X, float z) {
  const float ht = r.uni(1.2f, 2.5f), rad = r.uni(0.8f, 1.8f), tw = r.uni(0.1f, 0.2f);
  const Col leaves = random_green(r), bark = Col{85, 70, 55} * r.uni(0.6f, 1.3f);
  const uint64_t seed = r.next();
  const float cy = ht + 0.7f * rad;
  face_z(s, X - tw / 2, X + tw / 2, 0, ht + 0.2f * rad, z, [&](float, float, uint8_t& cls, Col& c) {
    cls = kVegetation;  // Cityscapes counts trunks as vegetation
    c = bark;
    return true;
  });
  face_z(s, X - rad * 1.2f, X + rad * 1.2f, cy - rad * 1.2f, cy + rad * 1.2f, z - 0.05f,
         [&](float wx, float y, uint8_t& cls, Col& c) {
           const float du = (wx - X) / rad, dv = (y - cy) / rad;
           if (du * du + dv * dv > 0.7f + 0.6f * vnoise(wx * 3, y * 3, seed)) return false;  // ragged edge
           const float leaf = vnoise(wx * 9, y * 9, seed + 1), clump = vnoise(wx * 2, y * 2, seed + 2);
           cls = kVegetation;
           c = leaves * (0.45f + 0.5f * leaf + 0.45f * clump);
           return true;
         });
}

// ---- the rare classes ----------------------------------------------------------------------

// Distance from (u, v) to the segment (a, b) - (c, d).
float seg_dist(float u, float v, float a, float b, float c, float d) {
  const float du = c - a, dv = d - b, l2 = du * du + dv * dv;
  const float t = l2 > 0 ? std::clamp(((u - a) * du + (v - b) * dv) / l2, 0.f, 1.f) : 0.f;
  const float eu = u - a - t * du, ev = v - b - t * dv;
  return std::sqrt(eu * eu + ev * ev);
}

// A bicycle seen from the side, 1.15 long: (u along it from the rear, y up) -> part of it?
bool bicycle_at(float u, float y, Col frame, Col& c) {
  constexpr float wr = 0.22f, hy = 0.23f;
  for (float hx : {0.2f, 0.95f}) {
    const float d = std::sqrt((u - hx) * (u - hx) + (y - hy) * (y - hy));
    if (std::abs(d - wr) < 0.035f) return c = Col{28, 28, 30}, true;  // tyre
    if (d < 0.025f) return c = frame * 0.7f, true;                    // hub
  }
  const float seg[6][4] = {{0.2f, hy, 0.5f, 0.26f},  {0.5f, 0.26f, 0.44f, 0.66f}, {0.44f, 0.66f, 0.86f, 0.7f},
                           {0.5f, 0.26f, 0.86f, 0.7f}, {0.86f, 0.7f, 0.95f, hy},  {0.2f, hy, 0.44f, 0.66f}};
  for (const auto& g : seg)
    if (seg_dist(u, y, g[0], g[1], g[2], g[3]) < 0.03f) return c = frame, true;
  if (seg_dist(u, y, 0.84f, 0.7f, 0.84f, 0.82f) < 0.025f || seg_dist(u, y, 0.38f, 0.7f, 0.5f, 0.7f) < 0.03f)
    return c = Col{35, 35, 38}, true;  // handlebar stem, saddle
  return false;
}

Col bright_colour(Rng& r) {
  const Col base[5] = {{225, 190, 30}, {200, 35, 30}, {30, 90, 180}, {235, 235, 235}, {40, 140, 70}};
  return base[r.range(0, 4)] * r.uni(0.75f, 1.05f);
}

// A cyclist riding along the road edge (side and back visible), or a parked bicycle.
void draw_cyclist(Scene& s, Rng& r, float X, float z, bool rider) {
  const Col frame{r.uni(20, 220), r.uni(20, 220), r.uni(20, 220)};
  const Col shirt{r.uni(15, 235), r.uni(15, 235), r.uni(15, 235)}, pants = Col{40, 40, 60} * r.uni(0.5f, 2.f);
  const float tone = r.uni(0.45f, 1.f);
  const Col skin{225 * tone, 180 * tone, 150 * tone};
  const float len = 1.15f, dir = r.chance(0.5f) ? 1.f : -1.f;  // which way it faces
  const float xe = X + (X > s.c ? -0.04f : 0.04f);
  auto rider_at = [&](float u, float y, Col& c) {
    if ((u - 0.76f) * (u - 0.76f) + (y - 1.24f) * (y - 1.24f) < 0.01f) return c = skin, true;  // head
    if (seg_dist(u, y, 0.46f, 0.72f, 0.7f, 1.1f) < 0.1f) return c = shirt, true;              // torso
    if (seg_dist(u, y, 0.7f, 1.05f, 0.86f, 0.8f) < 0.04f) return c = shirt * 0.85f, true;     // arm
    if (seg_dist(u, y, 0.46f, 0.7f, 0.58f, 0.48f) < 0.06f || seg_dist(u, y, 0.58f, 0.48f, 0.5f, 0.2f) < 0.05f)
      return c = pants, true;  // leg
    return false;
  };
  face_x(s, xe, z, z + len, 0, 1.4f, [&](float wz, float y, uint8_t& cls, Col& c) {
    const float u = dir > 0 ? wz - z : z + len - wz;
    if (rider && rider_at(u, y, c)) return cls = kRider, true;
    if (bicycle_at(u, y, frame, c)) return cls = kBicycle, true;
    return false;
  });
  if (!rider) return;
  face_z(s, X - 0.2f, X + 0.2f, 0, 1.36f, z, [&](float wx, float y, uint8_t& cls, Col& c) {  // from behind
    const float dx = wx - X;
    if (dx * dx + (y - 1.24f) * (y - 1.24f) < 0.01f) return cls = kRider, c = skin * 0.6f, true;
    if (y > 0.7f && y < 1.14f && std::abs(dx) < 0.17f) return cls = kRider, c = shirt, true;
    if (y > 0.35f && y <= 0.7f && std::abs(dx) < 0.12f && std::abs(dx) > 0.03f) return cls = kRider, c = pants, true;
    if (y < 0.46f && std::abs(dx) < 0.035f) return cls = kBicycle, c = Col{28, 28, 30}, true;
    return false;
  });
}

// A truck (tall box behind a lower cab) or a bus (long, a row of windows), driving away.
void draw_big_vehicle(Scene& s, Rng& r, float X, float z, bool bus) {
  const float w = r.uni(1.45f, 1.7f), h = bus ? r.uni(2.0f, 2.4f) : r.uni(2.2f, 2.8f);
  const float len = bus ? r.uni(7.f, 9.f) : r.uni(4.5f, 6.5f), clear = 0.3f;
  const Col body = bus ? bright_colour(r) : (r.chance(0.5f) ? Col{230, 230, 228} * r.uni(0.8f, 1.f) : bright_colour(r));
  const Col glass = Col{30, 38, 48} * r.uni(0.7f, 1.5f), tyre{24, 24, 26};
  const uint8_t cls_id = bus ? kBus : kTruck;
  const float xl = X - w / 2, xr = X + w / 2, xe = X > 0 ? xl : xr;
  const float cab = bus ? 0.f : 1.4f;  // the truck's cab: the last 1.4 units, lower
  if (xe * X > 0)
    face_x(s, xe, z, z + len, 0, h, [&](float wz, float y, uint8_t& cls, Col& c) {
      const float u = wz - z;
      cls = cls_id;
      for (float wc : {z + 0.12f * len, z + 0.88f * len})
        if ((wz - wc) * (wz - wc) + (y - 0.33f) * (y - 0.33f) < 0.11f) return c = tyre, true;
      if (y < clear) return false;
      if (!bus && u > len - cab) {  // cab: lower, with a side window
        if (y > 0.78f * h) return false;
        c = (y > 0.5f * h && u > len - cab + 0.2f && u < len - 0.3f) ? glass : body * 0.85f;
        return true;
      }
      if (bus && y > 1.05f && y < h - 0.3f) {
        const float k = u / 1.1f - std::floor(u / 1.1f);
        c = k < 0.85f ? glass : body * 0.8f;
        return true;
      }
      c = body * (y > h - 0.08f ? 0.7f : 0.85f);
      return true;
    });
  face_z(s, xl, xr, 0, h, z, [&](float wx, float y, uint8_t& cls, Col& c) {  // the back
    const float u = (wx - xl) / w;
    cls = cls_id;
    if (y < clear) return (u < 0.22f || u > 0.78f) ? (c = tyre, true) : false;
    if (y < clear + 0.12f) return c = Col{40, 40, 42}, true;                                   // bumper
    if (y < clear + 0.35f && (u < 0.1f || u > 0.9f)) return c = Col{200, 25, 20}, true;       // lights
    if (bus && y > 0.6f * h && y < h - 0.25f && u > 0.1f && u < 0.9f) return c = glass, true;  // rear window
    if (!bus && std::abs(u - 0.5f) < 0.008f) return c = body * 0.5f, true;                    // door seam
    c = body;
    return true;
  });
}

// A wall or a fence along the back of one side's pavement, from depth z0 to z1.
void draw_side_barrier(Scene& s, Rng& r, int side, bool fence) {
  const Side& sd = s.side[side];
  const float xe = s.c + (side ? 1.f : -1.f) * (s.r + sd.sw);
  const float z0 = r.uni(2.f, 12.f), z1 = z0 + r.uni(6.f, 30.f), h = fence ? r.uni(0.6f, 1.1f) : r.uni(0.5f, 1.4f);
  const Col col = fence ? (r.chance(0.5f) ? Col{r.uni(90, 150), r.uni(65, 100), r.uni(40, 65)}  // wood
                                          : Col{r.uni(60, 140), r.uni(70, 140), r.uni(70, 150)})  // metal
                        : random_building_colour(r);
  const float pitch = r.uni(0.12f, 0.3f), fill = r.uni(0.3f, 0.6f);
  const uint64_t seed = r.next();
  face_x(s, xe, z0, z1, 0, h, [&](float wz, float y, uint8_t& cls, Col& c) {
    if (fence) {
      const float k = wz / pitch - std::floor(wz / pitch);
      const bool rail = std::abs(y - 0.85f * h) < 0.05f || std::abs(y - 0.3f * h) < 0.04f;
      if (k > fill && !rail) return false;  // see-through
      cls = kFence;
      c = col * (rail ? 0.8f : 1.f);
      return true;
    }
    cls = kWall;
    c = y > h - 0.08f ? col * 0.75f : col * (0.85f + 0.25f * vnoise(wz * 3, y * 3, seed));  // coping
    return true;
  });
}

struct Object {
  float z, x;
  int kind;  // 0 car, 1 person, 2 pole, 3 tree, 4 truck, 5 bus, 6 cyclist, 7 parked bicycle
};

}  // namespace

void draw_objects(Scene& s, Rng& r, Rng& rr, float rare) {
  std::vector<Object> objs;
  auto side_x = [&](float offset) { return s.c + (r.chance(0.5f) ? offset : -offset); };
  // Cars and people take ground space: a new one that would stand inside a car already
  // placed (footprint 1.7 wide: the widest car, 1.3, with 0.2 of room either side; 3.3 long)
  // is left out.
  auto inside_car = [&](float x, float z, float half_w, float len) {  // footprint [x +- half_w] x [z, z + len]
    for (const Object& o : objs)
      if (o.kind == 0 && std::abs(x - o.x) < 0.85f + half_w && z < o.z + 3.3f && z + len > o.z) return true;
    return false;
  };
  for (int i = r.range(1, 6); i > 0; --i) {
    const float z = 3.5f / r.uni(0.08f, 1), x = s.c + r.uni(-s.r + 0.6f, s.r - 0.6f);
    if (!inside_car(x, z, 0.65f, 3.3f)) objs.push_back({z, x, 0});
  }
  for (int i = r.range(0, 5); i > 0; --i) {
    const int k = r.range(0, 1);
    const float off = s.r + r.uni(0.15f, std::max(0.2f, s.side[k].sw - 0.1f));  // on that side's pavement
    const float x = r.chance(0.2f) ? s.c + r.uni(-s.r, s.r) : s.c + (k ? off : -off);   // or crossing
    const float z = 2.5f / r.uni(0.06f, 1);
    if (!inside_car(x, z, 0.2f, 0.3f)) objs.push_back({z, x, 1});
  }
  for (int i = r.range(1, 4); i > 0; --i) objs.push_back({3.f / r.uni(0.05f, 1), side_x(s.r + r.uni(0.1f, 0.3f)), 2});
  for (int i = r.range(0, 3); i > 0; --i) {
    const int k = r.range(0, 1);
    const Side& sd = s.side[k];
    const float off = sd.verge > 0 ? s.r + sd.sw + sd.verge / 2 : s.r + std::max(0.15f, sd.sw - 0.25f);
    objs.push_back({4.f / r.uni(0.08f, 1), s.c + (k ? off : -off), 3});
  }
  if (rare > 0) {  // from here on draws come from rr only, so that rare = 0 leaves the scene as it was
    for (const auto& [kind, p] : {std::pair<int, float>{4, 0.25f}, {5, 0.15f}}) {
      if (!rr.chance(p * rare)) continue;
      const float z = 4.f / rr.uni(0.1f, 1), x = s.c + rr.uni(-s.r + 0.8f, s.r - 0.8f);
      objs.insert(objs.begin(), {z, x, kind});
    }
    for (const auto& [kind, p] : {std::pair<int, float>{6, 0.3f}, {7, 0.25f}}) {
      if (!rr.chance(p * rare)) continue;
      const int k = rr.range(0, 1);
      const float off = kind == 6 ? s.r - 0.3f : s.r + 0.6f * s.side[k].sw;
      objs.push_back({3.f / rr.uni(0.08f, 1), s.c + (k ? off : -off), kind});
    }
    // Cars, people and cyclists standing inside a truck (at most 6.5 long) or a bus (9) are
    // left out: the big vehicles take the road.
    std::vector<Object> big;
    for (const Object& o : objs)
      if (o.kind == 4 || o.kind == 5) big.push_back(o);
    auto inside_big = [&](const Object& o) {
      for (const Object& b : big)
        if (std::abs(o.x - b.x) < 1.5f && o.z > b.z - 3.3f && o.z < b.z + (b.kind == 4 ? 6.5f : 9.f)) return true;
      return false;
    };
    std::erase_if(objs, [&](const Object& o) { return (o.kind == 0 || o.kind == 1 || o.kind == 6) && inside_big(o); });
    for (int k = 0; k < 2; ++k) {  // walls and fences stand behind every object: drawn first
      const float t = rr.uni();
      if (t < 0.3f * rare) draw_side_barrier(s, rr, k, false);
      else if (t < 0.6f * rare) draw_side_barrier(s, rr, k, true);
    }
  }
  // Far to near; ties (equal depth) keep their order so the result is deterministic.
  std::stable_sort(objs.begin(), objs.end(), [](const Object& a, const Object& b) { return a.z > b.z; });
  for (const Object& o : objs) {
    switch (o.kind) {
      case 0: draw_car(s, r, o.x, o.z); break;
      case 1: draw_person(s, r, o.x, o.z); break;
      case 2: draw_pole(s, r, o.x, o.z); break;
      case 3: draw_tree(s, r, o.x, o.z); break;
      case 4: case 5: draw_big_vehicle(s, rr, o.x, o.z, o.kind == 5); break;
      default: draw_cyclist(s, rr, o.x, o.z, o.kind == 6); break;
    }
  }
}

}  // namespace c3::data::synth
