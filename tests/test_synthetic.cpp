// Synthetic scenes: determinism down to the file bytes, the declared classes and only
// those, the Cityscapes layout on disk, and proof that colour alone does not give the labels.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>

#include "core/error.h"
#include "data/dataset.h"
#include "data/image_io.h"
#include "data/synthetic.h"
#include "tests/data_helpers.h"

using namespace c3::data;
using c3test::TempDir;
namespace fs = std::filesystem;

namespace {

// Hash of every file under `dir` (relative names and bytes), in name order.
uint64_t tree_hash(const std::string& dir, int* files = nullptr) {
  std::vector<std::string> paths;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) paths.push_back(fs::relative(e.path(), dir).string());
  std::sort(paths.begin(), paths.end());
  uint64_t h = 0xcbf29ce484222325ull;
  for (const auto& p : paths) {
    h = c3test::fnv1a(std::vector<uint8_t>(p.begin(), p.end()), h);
    h = c3test::fnv1a(c3test::file_bytes(dir + "/" + p), h);
  }
  if (files) *files = int(paths.size());
  return h;
}

}  // namespace

TEST_CASE("synthetic: same seed gives the same bytes, another seed other bytes; Cityscapes layout") {
  TempDir a, b, c;
  make_synthetic(a.path, 5, 6, 2, 64, 128);
  make_synthetic(b.path, 5, 6, 2, 64, 128);
  make_synthetic(c.path, 6, 6, 2, 64, 128);
  int files = 0;
  const uint64_t ha = tree_hash(a.path, &files);
  CHECK(files == 16);  // (6 + 2) images and as many labels
  CHECK(ha == tree_hash(b.path));
  CHECK(ha != tree_hash(c.path));
  CHECK(fs::exists(a.path + "/leftImg8bit/train/synth/synth_000005_leftImg8bit.png"));
  CHECK(fs::exists(a.path + "/gtFine/val/synth/synth_000001_gtFine_labelTrainIds.png"));

  const auto train = load_cityscapes(a.path, "train"), val = load_cityscapes(a.path, "val");
  REQUIRE(train.size() == 6);
  REQUIRE(val.size() == 2);
  for (const auto& s : train) CHECK(s.mapping == LabelMapping::train_ids);
  const Image img = read_image(train[3].image), lab = load_label_train_ids(train[3]);
  CHECK((img.h == 64 && img.w == 128 && img.c == 3));
  CHECK((lab.h == 64 && lab.w == 128 && lab.c == 1));
  // The files hold exactly the rendered scene.
  const SyntheticScene sc = render_scene(synthetic_scene_seed(5, "train", 3), 64, 128);
  CHECK(img.px == sc.image.px);
  CHECK(lab.px == sc.label.px);
  CHECK(check_dataset(train, 19).ok());
  // Scenes differ from one another and between splits.
  CHECK(render_scene(synthetic_scene_seed(5, "train", 0), 32, 64).image.px !=
        render_scene(synthetic_scene_seed(5, "train", 1), 32, 64).image.px);
  CHECK(synthetic_scene_seed(5, "train", 0) != synthetic_scene_seed(5, "val", 0));
}

TEST_CASE("synthetic: labels hold only the declared classes, and every class appears") {
  const auto& classes = synthetic_classes();
  CHECK(classes == std::vector<uint8_t>{0, 1, 2, 5, 7, 8, 9, 10, 11, 13});
  std::array<int64_t, 256> count{};
  std::array<int, 256> scenes_with{};
  const int n = 60;
  for (int i = 0; i < n; ++i) {
    const SyntheticScene s = render_scene(synthetic_scene_seed(1, "train", i), 128, 256);
    REQUIRE((s.image.h == 128 && s.image.w == 256 && s.image.c == 3));
    REQUIRE((s.label.h == 128 && s.label.w == 256 && s.label.c == 1));
    std::array<bool, 256> seen{};
    for (uint8_t v : s.label.px) ++count[v], seen[v] = true;
    for (int v = 0; v < 256; ++v) scenes_with[size_t(v)] += seen[size_t(v)] ? 1 : 0;
  }
  int64_t total = 0, declared = 0;
  for (int v = 0; v < 256; ++v) total += count[size_t(v)];
  for (uint8_t c : classes) {
    declared += count[c];
    CHECK_MESSAGE(scenes_with[c] >= 3, "class ", int(c), " appears in only ", scenes_with[c], " of ", n, " scenes");
    CHECK_MESSAGE(count[c] > 0, "class ", int(c), " never appears");
  }
  CHECK(declared == total);  // nothing outside the declared classes
  // The big classes of a street scene are big here too (fractions of all pixels).
  CHECK(double(count[0]) / double(total) > 0.15);  // road
  CHECK(double(count[2]) / double(total) > 0.1);   // building
  CHECK(double(count[10]) / double(total) > 0.03); // sky
}

TEST_CASE("synthetic: colour alone does not separate the classes") {
  // Two colour-only classifiers are fitted on 30 scenes and scored (pixel accuracy) on 20
  // others: the nearest mean RGB per class, and the Bayes rule on colour (the most frequent
  // class of each of 16^3 RGB cells), the best any per-pixel colour rule can do on this data
  // up to the cell size. If the classes could be told apart by colour, both would score near
  // 1; a segmentation net would then not need to learn shapes, context or textures. The
  // generator overlaps the colours on purpose (grey cars, buildings and poles like the road,
  // overcast skies, random lighting), so both must stay below 0.85.
  constexpr int kCells = 16 * 16 * 16;
  auto cell = [](const uint8_t* p) { return (p[0] >> 4) * 256 + (p[1] >> 4) * 16 + (p[2] >> 4); };
  std::array<std::array<double, 3>, 256> sum{};
  std::array<int64_t, 256> n{};
  std::vector<std::array<int64_t, 16>> votes(kCells, std::array<int64_t, 16>{});  // trainIds < 16 here
  for (int i = 0; i < 30; ++i) {
    const SyntheticScene s = render_scene(synthetic_scene_seed(2, "train", i), 128, 256);
    for (size_t p = 0; p < s.label.px.size(); ++p) {
      const uint8_t c = s.label.px[p];  // < 16: checked by the test of the declared classes
      for (int k = 0; k < 3; ++k) sum[c][size_t(k)] += s.image.px[3 * p + size_t(k)];
      ++n[c];
      ++votes[size_t(cell(&s.image.px[3 * p]))][c];
    }
  }
  std::vector<int> best(kCells, 0);
  for (int q = 0; q < kCells; ++q)
    best[size_t(q)] = int(std::max_element(votes[size_t(q)].begin(), votes[size_t(q)].end()) - votes[size_t(q)].begin());
  int64_t right_mean = 0, right_bayes = 0, total = 0;
  for (int i = 0; i < 20; ++i) {
    const SyntheticScene s = render_scene(synthetic_scene_seed(2, "val", i), 128, 256);
    for (size_t p = 0; p < s.label.px.size(); ++p) {
      const uint8_t* px = &s.image.px[3 * p];
      double best_d = 1e30;
      int pred = -1;
      for (int c = 0; c < 256; ++c) {
        if (!n[size_t(c)]) continue;
        double d = 0;
        for (int k = 0; k < 3; ++k) {
          const double e = px[k] - sum[size_t(c)][size_t(k)] / double(n[size_t(c)]);
          d += e * e;
        }
        if (d < best_d) best_d = d, pred = c;
      }
      right_mean += pred == s.label.px[p] ? 1 : 0;
      right_bayes += best[size_t(cell(px))] == s.label.px[p] ? 1 : 0;
      ++total;
    }
  }
  const double acc_mean = double(right_mean) / double(total), acc_bayes = double(right_bayes) / double(total);
  MESSAGE("colour-only pixel accuracy: nearest mean ", acc_mean, ", Bayes on 16^3 colour cells ", acc_bayes);
  CHECK(acc_mean < 0.85);
  CHECK(acc_bayes < 0.85);
}

TEST_CASE("synthetic: --lighting scales the per-scene exposure, cast and haze and changes nothing else") {
  // The mean brightness of a scene varies with its content (overcast sky, facades) and with
  // its lighting; with the lighting made neutral the spread over scenes must shrink.
  auto spread = [](float lighting) {
    std::vector<double> means;
    for (int i = 0; i < 24; ++i) {
      const SyntheticScene s = render_scene(synthetic_scene_seed(5, "train", i), 32, 64, lighting);
      double sum = 0;
      for (uint8_t v : s.image.px) sum += v;
      means.push_back(sum / double(s.image.px.size()));
    }
    double m = 0, v = 0;
    for (double x : means) m += x;
    m /= double(means.size());
    for (double x : means) v += (x - m) * (x - m);
    return std::sqrt(v / double(means.size()));
  };
  const double full = spread(1.f), none = spread(0.f);
  INFO("brightness spread over scenes: lighting 1 ", full, ", lighting 0 ", none);
  CHECK(none < 0.7 * full);
  for (int i = 0; i < 4; ++i) {
    const uint64_t seed = synthetic_scene_seed(5, "train", i);
    const SyntheticScene a = render_scene(seed, 32, 64, 1.f), b = render_scene(seed, 32, 64, 0.f),
                         c = render_scene(seed, 32, 64);
    CHECK(a.image.px == c.image.px);  // 1 is the default: the shipped dataset's bytes
    CHECK(a.label.px == b.label.px);  // the same scene, lit otherwise
    CHECK(a.image.px != b.image.px);
  }
  CHECK_THROWS_WITH_AS(render_scene(1, 32, 64, 1.5f), doctest::Contains("lighting must be in [0, 1], got 1.5"),
                       c3::Error);
}

TEST_CASE("synthetic: --rare adds walls, fences, riders, trucks, buses and bicycles to some scenes") {
  const auto& classes = synthetic_classes(true);
  CHECK(classes == std::vector<uint8_t>{0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12, 13, 14, 15, 18});
  const uint8_t rare[] = {3, 4, 12, 14, 15, 18};
  std::array<int, 256> with{}, with_half{};
  std::array<int64_t, 256> count{};
  const int n = 60;
  double same = 0;
  for (int i = 0; i < n; ++i) {
    const uint64_t seed = synthetic_scene_seed(1, "train", i);
    const SyntheticScene s = render_scene(seed, 128, 256, 1.f, 1.f), half = render_scene(seed, 128, 256, 1.f, 0.5f);
    const SyntheticScene plain = render_scene(seed, 128, 256);
    std::array<bool, 256> seen{}, seen_half{};
    for (uint8_t v : s.label.px) seen[v] = true, ++count[v];
    for (uint8_t v : half.label.px) seen_half[v] = true;
    for (int v = 0; v < 256; ++v) with[size_t(v)] += seen[size_t(v)], with_half[size_t(v)] += seen_half[size_t(v)];
    size_t equal = 0;
    for (size_t p = 0; p < s.label.px.size(); ++p) equal += s.label.px[p] == plain.label.px[p];
    same += double(equal) / double(s.label.px.size()) / n;
  }
  int64_t total = 0, declared = 0;
  for (int v = 0; v < 256; ++v) total += count[size_t(v)];
  for (uint8_t c : classes) declared += count[c];
  CHECK(declared == total);  // nothing outside the declared classes
  int more_at_1 = 0;
  for (uint8_t c : rare) {
    // Rare, but there: in 5% to 75% of the scenes at rare = 1 (designed 15-50%).
    CHECK_MESSAGE(with[c] >= 3, "class ", int(c), " in ", with[c], " of ", n, " scenes");
    CHECK_MESSAGE(with[c] <= 45, "class ", int(c), " in ", with[c], " of ", n, " scenes");
    more_at_1 += with[c] > with_half[c];
  }
  CHECK(more_at_1 >= 5);  // `rare` scales how often they appear
  // The same street as without them: most pixels keep their label (the rare objects cover
  // some; cars and people a truck or bus stands in the place of are left out).
  INFO("mean fraction of pixels with the label of the scene made without rare classes: ", same);
  CHECK(same > 0.75);
  CHECK(same < 0.99);
  CHECK_THROWS_WITH_AS(render_scene(1, 32, 64, 1.f, -0.1f), doctest::Contains("rare must be in [0, 1], got -0.1"),
                       c3::Error);
}

TEST_CASE("synthetic: --colour gives each scene its own colour rendition and changes nothing else") {
  // Per scene, the hue shift of its saturated pixels against the scene made without colour
  // (circular mean, degrees): rotations by up to 180 degrees either way must show.
  auto hue = [](const uint8_t* p, double& sat) {
    const double r = p[0], g = p[1], b = p[2], mx = std::max({r, g, b}), mn = std::min({r, g, b});
    sat = mx > 0 ? (mx - mn) / mx : 0;
    if (mx == mn) return 0.0;
    const double h = mx == r ? (g - b) / (mx - mn) : mx == g ? 2 + (b - r) / (mx - mn) : 4 + (r - g) / (mx - mn);
    return h * 60;
  };
  double lo = 180, hi = -180;
  for (int i = 0; i < 24; ++i) {
    const uint64_t seed = synthetic_scene_seed(5, "train", i);
    const SyntheticScene a = render_scene(seed, 32, 64), b = render_scene(seed, 32, 64, 1.f, 0.f, 1.f);
    CHECK(a.label.px == b.label.px);  // the same scene, rendered otherwise
    CHECK(a.image.px != b.image.px);
    double sx = 0, sy = 0;
    for (size_t p = 0; p < a.label.px.size(); ++p) {
      double sa = 0, sb = 0;
      const double d = (hue(&b.image.px[3 * p], sb) - hue(&a.image.px[3 * p], sa)) * M_PI / 180;
      if (sa > 0.3 && sb > 0.3) sx += std::cos(d), sy += std::sin(d);
    }
    if (sx == 0 && sy == 0) continue;
    const double shift = std::atan2(sy, sx) * 180 / M_PI;
    lo = std::min(lo, shift), hi = std::max(hi, shift);
  }
  INFO("hue shifts of 24 scenes from ", lo, " to ", hi, " degrees");
  CHECK(lo < -60);
  CHECK(hi > 60);
  CHECK(render_scene(7, 32, 64, 1.f, 0.f, 0.f).image.px == render_scene(7, 32, 64).image.px);
  CHECK_THROWS_WITH_AS(render_scene(1, 32, 64, 1.f, 0.f, 2.f), doctest::Contains("colour must be in [0, 1], got 2"),
                       c3::Error);
}
