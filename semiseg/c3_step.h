// One training step of C³-SemiSeg, exactly as METHOD.md "One training step" reads, and the
// warm-up / supervised-only step. The step builds the loss; the trainer runs backward, the
// optimizer step and the EMA update.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "core/rng.h"
#include "nn/deeplab.h"
#include "semiseg/config.h"
#include "semiseg/ops_cutmix.h"
#include "semiseg/ops_dcrs.h"

namespace c3::semiseg {

struct StepInputs {
  Tensor x_l, y_l;  // labeled images [B,H,W,3] (normalized) and labels u8 [B,H,W]
  Tensor u_w, u_s;  // unlabeled weak and strong views (semi phase only)
};

// A value a step reports by name: the trainer averages it over the ranks, logs it to
// metrics.jsonl under its name and (when `shown`) prints it on the progress line, knowing no
// name; a new loss term is one push_back in the step. A term given as a scalar tensor stays
// on the device until StepOutput::read_values reads every one in a single transfer.
struct Reported {
  std::string name;
  double value = 0;
  bool shown = true;
  Tensor pending;  // the scalar not read yet (detached)
  Reported(std::string n, double v, bool s = true) : name(std::move(n)), value(v), shown(s) {}
  Reported(std::string n, const Tensor& t, bool s = true) : name(std::move(n)), shown(s), pending(t.detach()) {}
};

struct StepOutput {
  Tensor loss;  // scalar, requires grad: the weighted sum of the terms
  // The loss terms, unweighted ("sup", "cons", "con": L_sup, L_cons, L_con of METHOD.md).
  std::vector<Reported> terms;
  // Fractions: "kept" (unlabeled pixels the DCRS mask keeps); "agree_teacher" (unlabeled pixels
  // where the un-mixed student's argmax equals the teacher's, on the weak view); "acc_labeled"
  // (labeled pixels where it equals the label).
  std::vector<Reported> stats;
  // DCRS per class (semi phase): the thresholds after the step, the fraction of each class's
  // unlabeled pixels kept, the quantile of this step and the pixel count of each class. The
  // step leaves them on the device (`dcrs`: thresholds, kept, quantiles, counts, each [T] or
  // [C]); read_values() reads them with the loss terms into the vectors.
  std::vector<Tensor> dcrs;
  std::vector<float> thresholds, kept_per_class, quantiles, class_counts;
  // Device flags the trainer reads with the values (e.g. the deferred index checks), as
  // flag_values after read_values().
  std::vector<Tensor> flags;
  std::vector<float> flag_values;
  // The step's random draws, kept when C3Step::keep_draws is set (the trainer's --dump, which
  // another implementation replays): "mix_order" i32 [N] (mixed slot k holds source k),
  // "mix_boxes" i32 [N/2, 4] (y0, x0, h, w per pair), "anchor_index" / "anchor_label" i32 [K]
  // (rows of the [N*h*w] feature maps, and their labels).
  std::vector<std::pair<std::string, Tensor>> draws;

  // The loss, every pending term and the DCRS vectors in one read from the device (one host
  // synchronisation point); returns the loss.
  double read_values();
  // The value of a term or statistic by name; `absent` when the step did not report it.
  double value(const std::string& name, double absent = 0) const;
};

// The cross-set (or within-set) mixing of one step: the shuffle of [x_l ; u_s], the pairing
// of image k with k + N/2 and the pairs' CutMix boxes. mix() builds the images the student
// sees; unmix() takes per-pixel outputs of those images (at any resolution: the boxes are
// nearest-resized) back to the source images, in the source order.
struct Mixing {
  std::vector<int64_t> order, inverse;  // mixed slot k holds source order[k]; inverse[order[k]] = k
  std::vector<data::Box> boxes;         // one per pair, in image pixels
  int64_t H = 0, W = 0;                 // image size the boxes refer to
  Tensor mix(const Tensor& sources) const;
  Tensor unmix(const Tensor& outputs) const;
  // [order; inverse; boxes (y0, x0, h, w each)] as i32 on device d, made once for the step's
  // mix, both un-mixes and their backward, through a kernel's arguments (small_i32).
  const Tensor& indices_on(Device d) const;
  mutable Tensor indices;
};
// Draws the shuffle (cross_set: any pairing; else labeled with labeled, unlabeled with
// unlabeled) and the boxes for Bl labeled + Bu unlabeled images of H x W.
Mixing draw_mixing(bool cross_set, int64_t Bl, int64_t Bu, int64_t H, int64_t W, Generator& gen);

// exp(-5 (1 - t/T)^2) for t < T, else 1 (METHOD.md ramp-up).
double ramp_up(int64_t t, int64_t T);

class C3Step {
 public:
  // comm: the ranks of a data-parallel run (DCRS thresholds and logged fractions over all of
  // them; contrast groups split among them); Comm::self() for one process.
  C3Step(const Config& cfg, Device device, const dist::Comm& comm = dist::Comm::self());
  // Warm-up (with the contrastive loss on labeled pixels) or the supervised-only baseline.
  StepOutput supervised(nn::DeepLab& student, const StepInputs& in, int64_t step, Generator& gen);
  // The semi-supervised step. `semi_step` counts from the start of the semi phase.
  StepOutput semi(nn::DeepLab& student, nn::DeepLab& teacher, const StepInputs& in, int64_t step,
                  int64_t semi_step, Generator& gen);

  Tensor thresholds;  // DCRS thresholds (the state's tensor; checkpointed)
  bool keep_draws = false;  // fill StepOutput::draws
  void reset_thresholds();                 // the semi phase starts: thr = dcrs.init (or the global value)
  void load_thresholds(const Tensor& t);   // from a checkpoint

 private:
  DcrsState dcrs_;
  const Config& cfg_;
  Device device_;
  dist::Comm comm_;
};

}  // namespace c3::semiseg
