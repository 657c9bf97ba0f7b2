// CUDA kernels of the pixel contrastive loss (f32), same contract as
// kernels/cpu/semiseg_contrast.h. One block per anchor row; block reductions in a fixed
// tree (kernels/cuda/reduce_util.h), so the results are deterministic.
#pragma once
#include "kernels/device_api.h"

C3_KERNELS_DECLARE(
  void contrast_rows_f32(const float* S, const int32_t* labels, int64_t M, float inv_tau, float* row_loss,
                         int32_t* ok, float* dS);
  // One block; loss and coef are device scalars.
  void contrast_finalize_f32(const float* row_loss, const int32_t* ok, int64_t M, float scale, float* loss,
                             float* coef);
)
