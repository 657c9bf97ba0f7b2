// CPU DCRS step (see kernels/semiseg_dcrs_math.h): the reference the GPU histogram search is
// tested against. Quantiles by std::nth_element over each group's confidences.
#pragma once
#include "kernels/semiseg_dcrs_math.h"

namespace kernels::cpu {

// Fills every output of `io` (host pointers) and updates io.thr when io.update.
void dcrs_step(const DcrsIo& io);

}  // namespace kernels::cpu
