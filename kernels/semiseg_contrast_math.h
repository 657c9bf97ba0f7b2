// Per-row arithmetic of the pixel contrastive loss of C3-SemiSeg (METHOD.md "L_con"), shared
// by the CPU loops and the CUDA kernels.
//
// Row i of the similarity matrix S [M, M] (raw dot products <z_i, z'_j>) with s_ij = S_ij/tau:
//   P(i) = { j != i : y_j == y_i },  N(i) = { j : y_j != y_i }  (rows with y < 0 left out)
//   row_i = (1/|P|) sum_{p in P} log( e^{s_ip} / (e^{s_ip} + sum_{n in N} e^{s_in}) )
// defined when |P| > 0 and |N| > 0 (a "qualifying" anchor; other rows give 0).
// Stable form: m = max_{j != i} s_ij, a_j = s_ij - m, neg = sum_n e^{a_n};
//   term_p = a_p - log(e^{a_p} + neg),  W = sum_p 1 / (e^{a_p} + neg)
//   d row_i / d s_ip = (neg / (e^{a_p} + neg)) / |P|,   d row_i / d s_in = -e^{a_n} W / |P|
// and d / d S_ij = (d / d s_ij) / tau.
#pragma once
#include <cstdint>

#include "kernels/elementwise_math.h"

namespace kernels {

enum ContrastRole : int { kContrastNone = 0, kContrastPos = 1, kContrastNeg = 2 };

// A negative label marks an empty row (a fixed-size anchor sample): no role, either way.
C3_HD int contrast_role(int64_t i, int64_t j, int32_t yi, int32_t yj) {
  return j == i || yi < 0 || yj < 0 ? kContrastNone : (yi == yj ? kContrastPos : kContrastNeg);
}

// A positive's log-ratio term and its 1 / (e^{a_p} + neg).
template <class T> C3_HD T contrast_pos_term(T a, T neg) { return a - c3_log(c3_exp(a) + neg); }
template <class T> C3_HD T contrast_pos_inv_den(T a, T neg) { return T(1) / (c3_exp(a) + neg); }

// d row_i / d S_ij; scale = 1 / (|P| tau).
template <class T> C3_HD T contrast_grad(int role, T a, T neg, T W, T scale) {
  if (role == kContrastPos) return neg / (c3_exp(a) + neg) * scale;
  if (role == kContrastNeg) return -c3_exp(a) * W * scale;
  return T(0);
}

}  // namespace kernels
