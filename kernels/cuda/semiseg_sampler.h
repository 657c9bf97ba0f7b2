// CUDA anchor sampler of L_con, same contract as kernels/cpu/semiseg_sampler.h (the same
// anchors for a seed). Two launches, nothing read back: the host never waits for it.
#pragma once
#include "kernels/device_api.h"
#include "kernels/semiseg_sampler_math.h"

C3_KERNELS_DECLARE(
  // counts: device scratch of N * C * 2 ints (per image, class and side).
  void sample_anchors(const int32_t* labels, const int32_t* pred, const kernels::SamplerParams& p, int32_t* idx,
                      int32_t* lab, int32_t* counts);
)
