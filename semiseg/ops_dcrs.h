// DCRS, Dynamic (class-balanced) Confident Region Selection (METHOD.md "DCRS"): per-class
// confidence thresholds that follow a per-class quantile of the teacher's confidences.
//
// One step on the teacher probabilities p [N,H,W,C] (softmax output, f32, CPU or CUDA):
//   conf_i = max_c p[i,c], label_i = first argmax;
//   per class c with N_c > 0 pixels: cur_c = the confidence at index floor(N_c * s_c) of the
//   class's confidences sorted descending (clamped to N_c - 1);
//   thr_c = momentum * thr_c + (1 - momentum) * cur_c (classes absent from the batch keep
//   theirs; nothing moves when update = false);
//   mask_i = conf_i >= thr[label_i], with the thresholds after this step's update.
// Modes (ablations of METHOD.md): per_class (the method); global (one threshold, the
// quantile over all pixels); off (mask all ones, thresholds untouched).
//
// The GPU finds each quantile with a histogram and an exact radix select (no sort), and
// equals the CPU's std::nth_element result bit for bit (kernels/cuda/semiseg_dcrs.h).
// Not differentiable: every result is a constant. Data-parallel runs use
// dcrs_update_all_ranks (below).
#pragma once
#include <vector>

#include "core/dist.h"
#include "core/tensor.h"

namespace c3::semiseg {

enum class DcrsMode { per_class, global, off };

struct DcrsState {
  DcrsMode mode = DcrsMode::per_class;
  Tensor thresholds;  // f32 [C] (per_class), [1] (global) or [0] (off), on the probs' device
  // The CUDA kernels' copy of the group fractions s (as bytes), uploaded when they change, not
  // every step.
  Tensor fractions_dev;
  std::vector<double> fractions_host;
};

// Thresholds initialised to `init` (0.9 when the semi phase starts).
DcrsState dcrs_init(int64_t num_classes, DcrsMode mode = DcrsMode::per_class, double init = 0.9,
                    Device device = Device::cpu);

struct DcrsResult {
  Tensor mask;           // u8 [N,H,W]
  Tensor confidence;     // f32 [N,H,W]
  Tensor label;          // i32 [N,H,W], teacher argmax (the pseudo-label)
  Tensor quantile;       // f32 [T] this step's cur_t (NaN where the group has no pixel); T as thresholds
  Tensor kept_fraction;  // f32 [C] fraction of each argmax class kept by the mask (NaN if absent)
  Tensor count;          // i32 [C] pixels per argmax class
};

// s: one fraction for every group, or one per group (T = C in per_class mode: a
// class-dependent s); each in [0, 1]. momentum in [0, 1].
DcrsResult dcrs_update(const Tensor& probs, DcrsState& state, const std::vector<double>& s = {0.8},
                       double momentum = 0.9, bool update = true);

// Data-parallel DCRS: each rank passes the teacher probabilities of its part of the batch;
// the quantiles are those of every rank's confidences together (the reference code
// all-gathered them), found by an exact radix select over per-class histograms summed over
// the ranks (3 all-reduces of C x 2048 counts; the confidences never travel), so every rank
// gets the same thresholds, bit for bit those of one process on the whole batch.
// mask, confidence, label, count and kept_fraction are this rank's; quantile is global.
// Over one process (Comm::self(), or mode off, or update = false) this is dcrs_update.
DcrsResult dcrs_update_all_ranks(const Tensor& probs, DcrsState& state, const std::vector<double>& s,
                                 double momentum, bool update, const dist::Comm& comm);

}  // namespace c3::semiseg
