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

}  // namespace kernels
