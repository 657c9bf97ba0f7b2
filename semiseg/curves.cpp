#include "semiseg/curves.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "core/file.h"
#include "data/image_io.h"
#include "semiseg/metrics.h"

namespace c3::semiseg {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr int kPanelW = 560, kPanelH = 300, kLeft = 64, kRight = 150, kTop = 34, kBottom = 40;

const char* colour(size_t i) {
  static const char* c[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                            "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#ad494a", "#637939", "#843c39",
                            "#7b4173", "#3182bd", "#e6550d", "#31a354", "#756bb1"};
  return c[i % (sizeof c / sizeof c[0])];
}

std::string esc(const std::string& s) {
  std::string o;
  for (char ch : s) o += ch == '<' ? "&lt;" : ch == '>' ? "&gt;" : ch == '&' ? "&amp;" : std::string(1, ch);
  return o;
}

std::string num(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.4g", v);
  return b;
}

// About five round tick values covering [lo, hi].
std::vector<double> ticks(double lo, double hi) {
  const double span = hi - lo, raw = span / 5, mag = std::pow(10, std::floor(std::log10(raw)));
  const double step = raw / mag < 2 ? 2 * mag : raw / mag < 5 ? 5 * mag : 10 * mag;
  std::vector<double> t;
  for (double v = std::ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) t.push_back(std::abs(v) < step * 1e-9 ? 0 : v);
  return t;
}

void panel_svg(std::ostringstream& o, const CurvePanel& p, int ox, int oy) {
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  auto ty = [&](double v) { return p.log_y ? std::log10(v) : v; };
  for (const CurveSeries& s : p.series)
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.y[i]) || (p.log_y && s.y[i] <= 0)) continue;
      x0 = std::min(x0, s.x[i]), x1 = std::max(x1, s.x[i]);
      y0 = std::min(y0, ty(s.y[i])), y1 = std::max(y1, ty(s.y[i]));
    }
  if (!(x0 <= x1)) return;
  if (x1 == x0) x0 -= 1, x1 += 1;
  if (y1 == y0) y0 -= 0.5, y1 += 0.5;
  const double pad = (y1 - y0) * 0.05;
  y0 -= pad, y1 += pad;
  const int w = kPanelW - kLeft - kRight, h = kPanelH - kTop - kBottom, px = ox + kLeft, py = oy + kTop;
  auto sx = [&](double v) { return px + (v - x0) / (x1 - x0) * w; };
  auto sy = [&](double v) { return py + h - (ty(v) - y0) / (y1 - y0) * h; };
  o << "<text x='" << ox + kPanelW / 2 << "' y='" << oy + 20 << "' text-anchor='middle' font-weight='bold'>"
    << esc(p.title) << (p.log_y ? " (log scale)" : "") << "</text>\n";
  o << "<rect x='" << px << "' y='" << py << "' width='" << w << "' height='" << h
    << "' fill='none' stroke='#444'/>\n";
  for (double t : ticks(x0, x1)) {
    o << "<line x1='" << num(sx(t)) << "' x2='" << num(sx(t)) << "' y1='" << py << "' y2='" << py + h
      << "' stroke='#ddd'/><text x='" << num(sx(t)) << "' y='" << py + h + 16 << "' text-anchor='middle'>" << num(t)
      << "</text>\n";
  }
  for (double t : ticks(y0, y1)) {
    const double v = p.log_y ? std::pow(10, t) : t, y = py + h - (t - y0) / (y1 - y0) * h;
    o << "<line x1='" << px << "' x2='" << px + w << "' y1='" << num(y) << "' y2='" << num(y)
      << "' stroke='#ddd'/><text x='" << px - 6 << "' y='" << num(y + 4) << "' text-anchor='end'>" << num(v)
      << "</text>\n";
  }
  o << "<text x='" << px + w / 2 << "' y='" << py + h + 32 << "' text-anchor='middle'>step</text>\n";
  for (size_t k = 0; k < p.series.size(); ++k) {
    const CurveSeries& s = p.series[k];
    std::string pts;
    auto flush = [&] {
      if (!pts.empty())
        o << "<polyline class='series' data-name='" << esc(s.name) << "' fill='none' stroke='" << colour(k)
          << "' stroke-width='1.5' points='" << pts << "'/>\n";
      pts.clear();
    };
    size_t n = 0;
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.y[i]) || (p.log_y && s.y[i] <= 0)) {
        flush();
        continue;
      }
      pts += (pts.empty() ? "" : " ") + num(sx(s.x[i])) + "," + num(sy(s.y[i]));
      ++n;
    }
    if (n == 1)  // a single point (one evaluation) is a dot
      for (size_t i = 0; i < s.x.size(); ++i)
        if (std::isfinite(s.y[i]))
          o << "<circle cx='" << num(sx(s.x[i])) << "' cy='" << num(sy(s.y[i])) << "' r='3' fill='" << colour(k)
            << "'/>\n";
    flush();
    const int ly = py + 10 + int(k) * 15;
    o << "<line x1='" << px + w + 8 << "' x2='" << px + w + 26 << "' y1='" << ly - 4 << "' y2='" << ly - 4
      << "' stroke='" << colour(k) << "' stroke-width='2'/><text x='" << px + w + 30 << "' y='" << ly << "'>"
      << esc(s.name) << "</text>\n";
  }
}

double number_or_nan(const nlohmann::json& v) { return v.is_number() ? v.get<double>() : kNaN; }

struct RunMetrics {
  std::map<std::string, CurveSeries> scalars;             // key -> series over the steps that log it
  std::map<std::string, std::vector<CurveSeries>> lists;  // dcrs_* -> one series per class
};

RunMetrics read_metrics(const std::string& path) {
  std::ifstream f(path);
  C3_CHECK(f.good(), path, ": cannot read (a run folder's metrics.jsonl)");
  RunMetrics m;
  std::string line;
  for (int64_t n = 1; std::getline(f, line); ++n) {
    if (line.empty()) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const std::exception& e) {
      throw Error(path + ":" + std::to_string(n) + ": not a JSON line (" + e.what() + ")");
    }
    if (!j.is_object() || !j.contains("step") || !j["step"].is_number()) continue;
    const double step = j["step"].get<double>();
    for (const auto& [k, v] : j.items()) {
      if (k == "step" || k == "epoch") continue;
      if (v.is_number()) {
        CurveSeries& s = m.scalars[k];
        s.name = k, s.x.push_back(step), s.y.push_back(v.get<double>());
      } else if (v.is_array()) {
        std::vector<CurveSeries>& per = m.lists[k];
        if (per.size() < v.size()) per.resize(v.size());
        for (size_t c = 0; c < v.size(); ++c) per[c].x.push_back(step), per[c].y.push_back(number_or_nan(v[c]));
      }
    }
  }
  return m;
}

bool is_loss_key(const std::string& k) {
  static const char* not_losses[] = {"images_per_s", "kept", "agree_teacher", "acc_labeled", "skipped_samples",
                                     "host_syncs"};
  if (k.rfind("lr_", 0) == 0 || k.rfind("val_", 0) == 0 || k.rfind("dcrs_", 0) == 0 || k.rfind("mem_", 0) == 0) return false;
  for (const char* n : not_losses)
    if (k == n) return false;
  return true;
}

}  // namespace

std::string curves_svg(const std::string& title, const std::vector<CurvePanel>& panels) {
  const int cols = panels.size() > 1 ? 2 : 1, rows = int((panels.size() + 1) / 2);
  const int W = cols * kPanelW, H = 40 + std::max(1, rows) * kPanelH;
  std::ostringstream o;
  o << "<?xml version='1.0' encoding='UTF-8'?>\n<svg xmlns='http://www.w3.org/2000/svg' width='" << W
    << "' height='" << H << "' viewBox='0 0 " << W << " " << H
    << "' font-family='sans-serif' font-size='11'>\n<rect width='100%' height='100%' fill='white'/>\n"
    << "<text x='" << W / 2 << "' y='24' text-anchor='middle' font-size='15'>" << esc(title) << "</text>\n";
  for (size_t i = 0; i < panels.size(); ++i) panel_svg(o, panels[i], int(i % 2) * kPanelW, 40 + int(i / 2) * kPanelH);
  o << "</svg>\n";
  return o.str();
}

std::vector<CurvePanel> curve_panels(const std::vector<std::string>& metrics_files,
                                     const std::vector<std::string>& labels) {
  std::vector<RunMetrics> runs;
  for (const std::string& f : metrics_files) runs.push_back(read_metrics(f));
  auto named = [&](size_t r, const std::string& what) { return labels.empty() ? what : labels[r] + " " + what; };
  CurvePanel losses{"loss terms (training)", {}, true}, lrs{"learning rates", {}, true},
      val{"val mIoU and mIoU* (DCRS-masked)", {}, false}, kept{"kept fraction, teacher agreement", {}, false};
  for (size_t r = 0; r < runs.size(); ++r)
    for (auto& [k, s] : runs[r].scalars) {
      CurveSeries c = s;
      c.name = named(r, k);
      if (k.rfind("lr_", 0) == 0) lrs.series.push_back(c);
      else if (k == "val_miou" || k == "val_miou_star") {
        for (double& v : c.y) v *= 100;
        val.series.push_back(c);
      } else if (k == "kept" || k == "agree_teacher") kept.series.push_back(c);
      else if (is_loss_key(k)) losses.series.push_back(c);
    }
  // A term that is zero throughout (cons in a supervised run) has nothing to show on a log axis.
  std::erase_if(losses.series, [](const CurveSeries& s) {
    return std::none_of(s.y.begin(), s.y.end(), [](double v) { return v > 0; });
  });
  std::vector<CurvePanel> out;
  for (CurvePanel* p : {&losses, &val, &lrs, &kept})
    if (!p->series.empty()) out.push_back(std::move(*p));
  if (runs.size() == 1) {
    const auto& names = cityscapes_class_names();
    for (const auto& [key, title] : {std::pair<std::string, std::string>{"dcrs_thresholds", "DCRS threshold per class"},
                                     {"dcrs_kept_per_class", "DCRS kept fraction per class"}}) {
      auto it = runs[0].lists.find(key);
      if (it == runs[0].lists.end()) continue;
      CurvePanel p{title, {}, false};
      for (size_t c = 0; c < it->second.size(); ++c) {
        CurveSeries s = it->second[c];
        // A class never seen keeps its initial threshold and has no kept fraction: left out.
        const bool varies = std::any_of(s.y.begin(), s.y.end(), [&](double v) { return std::isfinite(v) && v != s.y[0]; });
        if (!varies) continue;
        s.name = c < names.size() ? names[c] : "class " + std::to_string(c);
        p.series.push_back(std::move(s));
      }
      if (!p.series.empty()) out.push_back(std::move(p));
    }
  }
  return out;
}

void write_curves(const std::vector<std::string>& run_dirs, const std::string& out) {
  namespace fs = std::filesystem;
  std::vector<std::string> files, labels;
  for (const std::string& d : run_dirs) {
    files.push_back((fs::path(d) / "metrics.jsonl").string());
    labels.push_back(fs::path(d).filename().string());
  }
  for (size_t i = 0; i < labels.size(); ++i)  // two folders of one name: the paths as given
    for (size_t j = 0; j < i; ++j)
      if (labels[i] == labels[j]) labels[i] = run_dirs[i], labels[j] = run_dirs[j];
  if (run_dirs.size() == 1) labels.clear();
  std::string title = run_dirs.size() == 1 ? run_dirs[0] : "";
  for (size_t i = 0; i < run_dirs.size() && run_dirs.size() > 1; ++i) title += (i ? " vs " : "") + labels[i];
  const std::string svg = curves_svg(title, curve_panels(files, labels));
  write_file_atomic(out, svg);
}

}  // namespace c3::semiseg
