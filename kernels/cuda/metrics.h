// CUDA confusion matrix (same semantics as kernels/cpu/metrics.h); counts and the bad-label
// count live in device memory. Integer atomics: the result is exact and deterministic.
#pragma once
#include "kernels/device_api.h"

C3_KERNELS_DECLARE(
  void confusion_add(const int32_t* pred, const uint8_t* label, const uint8_t* mask, int64_t n, int classes,
                     int ignore, unsigned long long* counts, unsigned long long* bad);
)
