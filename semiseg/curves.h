// Training curves as an SVG picture, readable in any browser: the run folder's `curves.svg`
// (rewritten at each evaluation) and `c3semiseg plot RUN [RUN ...] --out F.svg`, which
// overlays runs. Everything comes from the runs' metrics.jsonl; x is the step.
//
// Panels: each loss term (every numeric key of a training line that is a loss: `loss` and the
// terms the step reports), the learning rates, val mIoU and mIoU* (DCRS-masked), the kept
// fraction and teacher agreement; for a single run also the DCRS threshold and kept fraction
// of each class that has them. A panel with nothing to draw is left out.
#pragma once
#include <string>
#include <vector>

namespace c3::semiseg {

struct CurveSeries {
  std::string name;
  std::vector<double> x, y;  // same length; NaN values are gaps
};

struct CurvePanel {
  std::string title;
  std::vector<CurveSeries> series;
  bool log_y = false;  // logarithmic y axis (positive values only)
};

// One SVG document of panels in a grid (two per row), each with axes, ticks and a legend.
std::string curves_svg(const std::string& title, const std::vector<CurvePanel>& panels);

// The panels of one or more runs' metrics.jsonl files; `labels` name the runs in legends
// (empty for a single run). Throws c3::Error naming the file when one cannot be read.
std::vector<CurvePanel> curve_panels(const std::vector<std::string>& metrics_files,
                                     const std::vector<std::string>& labels);

// Writes `out` (write_file_atomic: a temporary file and a rename) with the curves of the runs in
// `run_dirs` (each a run folder holding metrics.jsonl).
void write_curves(const std::vector<std::string>& run_dirs, const std::string& out);

}  // namespace c3::semiseg
