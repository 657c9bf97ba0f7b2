// Training curves (semiseg/curves.h): the panels read from metrics.jsonl, the SVG's polylines
// placed by their values, overlays of runs, and a bad file named in the error.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>

#include "core/error.h"
#include "semiseg/curves.h"
#include "tests/data_helpers.h"

using namespace c3::semiseg;

namespace {
using c3test::TempDir;

// A run folder whose metrics.jsonl holds warm-up lines, semi lines with DCRS lists, and two
// evaluations.
std::string make_run(const std::string& root, const std::string& name, double miou_end) {
  const std::string dir = root + "/" + name;
  std::filesystem::create_directories(dir);
  std::ofstream f(dir + "/metrics.jsonl");
  for (int s = 1; s <= 4; ++s)
    f << "{\"step\":" << s * 10 << ",\"epoch\":0,\"phase\":\"warmup\",\"loss\":" << 2.0 / s << ",\"sup\":" << 2.0 / s
      << ",\"cons\":0.0,\"lr_head\":0.01,\"images_per_s\":30,\"kept\":1.0}\n";
  f << "{\"step\":20,\"val_miou\":0.25,\"val_miou_star\":0.3,\"val_pixel_acc\":0.7}\n";
  for (int s = 5; s <= 8; ++s)
    f << "{\"step\":" << s * 10 << ",\"loss\":" << 1.0 / s << ",\"sup\":0.1,\"cons\":" << 0.01 * s
      << ",\"lr_head\":0.005,\"kept\":0.8,\"agree_teacher\":0.6,\"dcrs_thresholds\":[0.5," << 0.1 * s
      << ",0.9],\"dcrs_kept_per_class\":[0.5,null," << 0.1 * s << "]}\n";
  f << "{\"step\":80,\"val_miou\":" << miou_end << ",\"val_miou_star\":0.6,\"val_pixel_acc\":0.8}\n";
  return dir;
}

const CurvePanel* find(const std::vector<CurvePanel>& ps, const std::string& title_part) {
  for (const CurvePanel& p : ps)
    if (p.title.find(title_part) != std::string::npos) return &p;
  return nullptr;
}
}  // namespace

TEST_CASE("curves: the panels of one run come from its metrics.jsonl") {
  TempDir t;
  const std::string run = make_run(t.path, "a", 0.5);
  const auto ps = curve_panels({run + "/metrics.jsonl"}, {});
  const CurvePanel* loss = find(ps, "loss terms");
  REQUIRE(loss != nullptr);
  std::vector<std::string> names;
  for (const auto& s : loss->series) names.push_back(s.name);
  CHECK(names == std::vector<std::string>{"cons", "loss", "sup"});  // not lr, kept, images/s; cons is not all 0
  const CurvePanel* val = find(ps, "val mIoU");
  REQUIRE(val != nullptr);
  REQUIRE(val->series.size() == 2);
  CHECK(val->series[0].x == std::vector<double>{20, 80});
  CHECK(val->series[0].y == std::vector<double>{25, 50});  // percent
  const CurvePanel* thr = find(ps, "DCRS threshold");
  REQUIRE(thr != nullptr);
  REQUIRE(thr->series.size() == 1);  // the classes whose threshold moved: sidewalk only
  CHECK(thr->series[0].name == "sidewalk");
  const CurvePanel* kept = find(ps, "kept fraction per class");
  REQUIRE(kept != nullptr);
  REQUIRE(kept->series.size() == 1);
  CHECK(kept->series[0].name == "building");
  CHECK(find(ps, "learning rates") != nullptr);
}

TEST_CASE("curves: the SVG places each polyline by its values, overlays runs, and is rewritten whole") {
  TempDir t;
  const std::string a = make_run(t.path, "a", 0.5), b = make_run(t.path, "b", 0.7);
  const std::string out = t.path + "/both.svg";
  write_curves({a, b}, out);
  std::ifstream f(out);
  const std::string svg((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  CHECK(svg.rfind("<?xml", 0) == 0);
  CHECK(svg.find("</svg>") != std::string::npos);
  CHECK(svg.find("<svg ") == svg.rfind("<svg "));  // one document
  // Both runs' val mIoU lines: 25 -> 50 and 25 -> 70; both rise, so the second point is
  // higher on the page (smaller y) and b's end is above a's.
  auto points = [&](const std::string& name) {
    const std::regex re("data-name='" + name + "'[^>]*points='([^']*)'");
    std::smatch m;
    REQUIRE_MESSAGE(std::regex_search(svg, m, re), "no polyline named ", name);
    std::vector<std::pair<double, double>> p;
    std::istringstream in(m[1].str());
    for (std::string xy; in >> xy;) p.push_back({std::stod(xy.substr(0, xy.find(','))), std::stod(xy.substr(xy.find(',') + 1))});
    return p;
  };
  const auto pa = points("a val_miou"), pb = points("b val_miou");
  REQUIRE((pa.size() == 2 && pb.size() == 2));
  CHECK(pa[0].first < pa[1].first);
  CHECK(pa[1].second < pa[0].second);
  CHECK(pb[1].second < pa[1].second);
  CHECK(pa[0] == pb[0]);  // the same start, on the same axes
  CHECK(svg.find("DCRS threshold") == std::string::npos);  // per-class panels only for one run
  for (const auto& e : std::filesystem::directory_iterator(t.path))  // no temporary left behind
    CHECK_MESSAGE(e.path().filename().string().find(".tmp.") == std::string::npos, e.path());
  write_curves({a}, out);  // replaced, not appended
  std::ifstream g(out);
  const std::string one((std::istreambuf_iterator<char>(g)), std::istreambuf_iterator<char>());
  CHECK(one.find("DCRS threshold per class") != std::string::npos);
  CHECK(one.find("b val_miou") == std::string::npos);
}

TEST_CASE("curves: a missing or corrupt metrics.jsonl is an error naming the file and line") {
  TempDir t;
  CHECK_THROWS_WITH_AS(write_curves({t.path + "/nope"}, t.path + "/x.svg"),
                       doctest::Contains("nope/metrics.jsonl: cannot read"), c3::Error);
  const std::string run = make_run(t.path, "a", 0.5);
  std::ofstream(run + "/metrics.jsonl", std::ios::app) << "{\"step\": 90, \"loss\": \n";
  CHECK_THROWS_WITH_AS(write_curves({run}, t.path + "/x.svg"), doctest::Contains("metrics.jsonl:11: not a JSON line"),
                       c3::Error);
  CHECK_FALSE(std::filesystem::exists(t.path + "/x.svg"));
}
