// CPU anchor sampler of L_con (see kernels/semiseg_sampler_math.h for the contract).
#pragma once
#include <cstdint>

#include "kernels/semiseg_sampler_math.h"

namespace kernels::cpu {

// labels, pred: [N, hw] (i32); idx, lab: [N, sampler_slots_per_image(p)].
void sample_anchors(const int32_t* labels, const int32_t* pred, const SamplerParams& p, int32_t* idx, int32_t* lab);

}  // namespace kernels::cpu
