// CPU kernels of the pixel contrastive loss (formulas in kernels/semiseg_contrast_math.h).
// All outputs are written, never accumulated.
#pragma once
#include <cstdint>

namespace kernels::cpu {

// S [M, M] raw similarities, labels [M] -> per row: row_loss[i] (0 for a row that does not
// qualify), ok[i] = 1 if it qualifies, and dS[i, :] = d row_loss[i] / d S[i, :] (zeros for a
// row that does not qualify). Sums in double.
template <class T>
void contrast_rows(const T* S, const int32_t* labels, int64_t M, double inv_tau, T* row_loss, int32_t* ok, T* dS);

// loss[0] = coef * sum_i row_loss[i] and coef[0] = scale / Q (Q = number of qualifying rows;
// both 0 when Q = 0), with scale = -(tau / tau_b).
template <class T>
void contrast_finalize(const T* row_loss, const int32_t* ok, int64_t M, double scale, T* loss, T* coef);

}  // namespace kernels::cpu
