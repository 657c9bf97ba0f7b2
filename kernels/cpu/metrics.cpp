#include "kernels/cpu/metrics.h"

#include <cstddef>
#include <vector>

namespace kernels::cpu {

int64_t confusion_add(const int32_t* pred, const uint8_t* label, const uint8_t* mask, int64_t n, int C, int ignore,
                      uint64_t* counts) {
  int64_t bad = 0;
  const int64_t cc = int64_t(C) * C;
#pragma omp parallel reduction(+ : bad)
  {
    std::vector<uint64_t> local(static_cast<size_t>(cc), 0);
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      const int l = label[i];
      if (l == ignore || (mask && !mask[i])) continue;
      if (l >= C || pred[i] < 0 || pred[i] >= C) { ++bad; continue; }
      ++local[size_t(l) * C + size_t(pred[i])];
    }
#pragma omp critical
    for (int64_t k = 0; k < cc; ++k) counts[k] += local[size_t(k)];
  }
  return bad;
}

}  // namespace kernels::cpu
