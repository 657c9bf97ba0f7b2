// Per-element rules of the reductions, shared by the CPU loops and the CUDA kernels.
#pragma once
#include <cstdint>

#include "kernels/elementwise_math.h"

namespace kernels {

// True when candidate (a, ia) beats the current best (b, ib) in a max/argmax:
// the larger value wins; NaN beats every number (it propagates, as in PyTorch); on a tie
// the lower index wins. The rule is commutative and associative, so a warp's shuffle tree
// and the CPU's left-to-right scan select the same element (the FIRST maximal index).
template <class T> C3_HD bool argmax_better(T a, int64_t ia, T b, int64_t ib) {
  const bool a_nan = a != a, b_nan = b != b;
  if (a_nan != b_nan) return a_nan;
  if (a_nan || a == b) return ia < ib;
  return a > b;
}

// How many splits the CUDA sum over the middle axis of [outer, mid, inner] cuts `mid` into, so
// that about kSumTargetBlocks blocks share the work (an H100 has 132 SMs): a per-channel sum
// of a whole activation (outer 1, 19 channels) would otherwise run on one block. Each split
// keeps at least kSumMinRows rows (inner > 1: rows of `inner` values; inner == 1: values),
// and there are at most kSumMaxSplits. A function of the shape only, so results repeat.
inline constexpr int64_t kSumTargetBlocks = 1024, kSumMaxSplits = 1024;
inline int64_t sum_splits(int64_t outer, int64_t mid, int64_t inner) {
  const int64_t min_rows = inner == 1 ? 4096 : 64;
  const int64_t blocks = inner == 1 ? outer : (inner + 31) / 32 * outer;
  int64_t s = (kSumTargetBlocks + blocks - 1) / (blocks > 0 ? blocks : 1);
  const int64_t most = (mid + min_rows - 1) / min_rows;
  if (s > most) s = most;
  if (s > kSumMaxSplits) s = kSumMaxSplits;
  return s < 1 ? 1 : s;
}
// The scratch (floats) the CUDA sum needs for that shape: the partial sums, or 0.
inline int64_t sum_mid_scratch(int64_t outer, int64_t mid, int64_t inner) {
  const int64_t s = sum_splits(outer, mid, inner);
  return s > 1 ? outer * s * inner : 0;
}

}  // namespace kernels
