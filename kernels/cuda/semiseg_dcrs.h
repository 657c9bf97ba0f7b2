// CUDA DCRS step, same results as kernels::cpu::dcrs_step (bit for bit: the quantile is the
// exact order statistic, found without sorting):
//   1. per pixel: confidence and argmax; integer atomics add the pixel to its class count
//      and to its group's histogram of kDcrsBins bins over [0, 1];
//   2. one block scans each group's histogram from the top and finds the bin holding the
//      rank floor(N_t * s_t), and the rank inside it;
//   3. the pixels of that bin are copied to a candidate buffer (only those: usually few);
//   4. one block per group selects the exact order statistic among its candidates by a
//      4-pass radix select over the float bits (8 bits a pass, shared-memory histograms),
//      then updates the threshold;
//   5. per pixel: the mask, and integer atomics count the kept pixels per class.
// Integer atomics only, so the results are deterministic; the candidates' order in the
// buffer varies, the selected value does not.
#pragma once
#include "kernels/device_api.h"
#include "kernels/semiseg_dcrs_math.h"

namespace kernels {
// Device scratch of one step (the caller allocates it; the step zeroes what it counts in).
// Per-block class counters live in shared memory (48 KB without opting in).
constexpr int kDcrsMaxClasses = 12288;
struct DcrsWorkspace {
  int32_t* hist = nullptr;  // [max(T,1) * kDcrsBins]
  int32_t* sel = nullptr;   // [max(T,1) * 5]: bin, rank in bin, pixels in bin, offset, fill
  int32_t* kept = nullptr;  // [C]
  float* cand = nullptr;    // [P]
};
}  // namespace kernels

C3_KERNELS_DECLARE(
  // io and ws hold device pointers; P < 2^31, C <= kDcrsMaxClasses.
  void dcrs_step(const ::kernels::DcrsIo& io, const ::kernels::DcrsWorkspace& ws);
)
