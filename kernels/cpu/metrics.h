// Confusion matrix for segmentation evaluation: counts[label * C + pred] over pixels whose
// label is a class (label == ignore is skipped; so are pixels with mask == 0 when a mask is
// given: the DCRS "*" evaluation). Adds into `counts` (accumulates over batches).
#pragma once
#include <cstdint>

namespace kernels::cpu {
// Returns the number of pixels whose label is neither a class nor `ignore` (not counted).
int64_t confusion_add(const int32_t* pred, const uint8_t* label, const uint8_t* mask, int64_t n, int classes,
                      int ignore, uint64_t* counts);
}  // namespace kernels::cpu
