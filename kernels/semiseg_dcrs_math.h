// DCRS (dynamic class-balanced confident region selection, METHOD.md "DCRS"): the per-pixel
// and per-class arithmetic shared by the CPU pipeline and the CUDA kernels.
//
// Thresholds come in T groups: T = C (one per class, the method), T = 1 (one global
// threshold, an ablation) or T = 0 (DCRS off: every pixel kept). Pixel i belongs to group
// t(i) = argmax_i (T = C) or 0 (T = 1). For each group with N_t pixels, the quantile is the
// confidence at index r = floor(N_t * s_t) of the group's confidences sorted DESCENDING
// (r clamped to N_t - 1, so s = 1 gives the minimum).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/hd.h"

namespace kernels {

// Histogram resolution of the GPU quantile search over [0, 1].
constexpr int kDcrsBins = 4096;

// Everything one DCRS step reads and writes; all pointers on the device of the backend.
struct DcrsIo {
  const float* probs = nullptr;  // [P, C] teacher probabilities
  int64_t P = 0;                 // pixels
  int C = 0;                     // classes
  int T = 0;                     // threshold groups: C, 1 or 0 (see above)
  const double* s = nullptr;     // [T] quantile fractions in [0, 1]
  float momentum = 0.9f;         // thr = momentum * thr + (1 - momentum) * quantile
  bool update = true;            // false: compute quantiles, keep the thresholds
  float* thr = nullptr;          // [T] in/out
  float* conf = nullptr;         // [P] max_c p
  int32_t* label = nullptr;      // [P] first argmax
  uint8_t* mask = nullptr;       // [P] conf >= thr[t(i)] after the update (all 1 when T = 0)
  float* quantile = nullptr;     // [T] this step's quantile, NaN for a group with no pixel
  int32_t* count = nullptr;      // [C] pixels per argmax class
  float* kept_fraction = nullptr;  // [C] kept / count per argmax class, NaN where count = 0
};

// Max and FIRST argmax of one pixel's C >= 1 probabilities (a NaN entry never wins unless
// it is the first one).
C3_HD void dcrs_pixel_max(const float* p, int C, float& best, int& arg) {
  best = p[0];
  arg = 0;
  for (int c = 1; c < C; ++c)
    if (p[c] > best) best = p[c], arg = c;
}

C3_HD int dcrs_group(int label, int T) { return T == 1 ? 0 : label; }

// Histogram bin of a confidence: floor(v * B) clamped to [0, B-1]. Exact (B is a power of
// two) and non-decreasing in v, so a bin holds a contiguous range of the sorted values.
C3_HD int dcrs_bin(float v) {
  const float t = v * float(kDcrsBins);
  if (!(t > 0.f)) return 0;
  if (t >= float(kDcrsBins - 1)) return kDcrsBins - 1;
  return static_cast<int>(t);
}

// Order-preserving unsigned key of a float (a < b <=> key(a) < key(b) for non-NaN values;
// -0 sorts just below +0), and its inverse, for the radix selection inside one bin.
C3_HD uint32_t dcrs_key(float v) {
  uint32_t b;
  memcpy(&b, &v, 4);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}
C3_HD float dcrs_key_value(uint32_t k) {
  const uint32_t b = (k & 0x80000000u) ? (k & 0x7fffffffu) : ~k;
  float v;
  memcpy(&v, &b, 4);
  return v;
}

// Descending rank of the quantile in a group of n >= 1 values: floor(n * s) (in double, as
// Python's int(len * s)), clamped to n - 1.
C3_HD int64_t dcrs_rank(int64_t n, double s) {
  int64_t r = static_cast<int64_t>(static_cast<double>(n) * s);
  if (r < 0) r = 0;
  return r < n - 1 ? r : n - 1;
}

// The moving average, with one explicit fma so both backends round identically.
C3_HD float dcrs_ema(float thr, float cur, float momentum) { return fmaf(momentum, thr, (1.f - momentum) * cur); }

C3_HD float dcrs_fraction(int32_t kept, int32_t count) {
  return count > 0 ? static_cast<float>(kept) / static_cast<float>(count) : NAN;
}

}  // namespace kernels
