// Confusion-matrix arithmetic shared by the CPU loop and the CUDA kernels: where one pixel
// counts. Labels equal to `ignore`, and pixels whose mask is 0, are skipped; a label or a
// prediction outside 0..C-1 is "bad" (counted apart, an error for the caller).
#pragma once
#include <cstdint>

#include "kernels/hd.h"

namespace kernels {

constexpr int kConfusionSkip = -1, kConfusionBad = -2;

// The bin label * C + pred of pixel i, or kConfusionSkip / kConfusionBad.
C3_HD int confusion_bin(const int32_t* pred, const uint8_t* label, const uint8_t* mask, int64_t i, int C,
                         int ignore) {
  const int l = label[i];
  if (l == ignore || (mask && !mask[i])) return kConfusionSkip;
  const int p = pred[i];
  if (l >= C || p < 0 || p >= C) return kConfusionBad;
  return l * C + p;
}

}  // namespace kernels
