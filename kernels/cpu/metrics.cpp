#include "kernels/cpu/metrics.h"

#include <cstddef>
#include <vector>

#include "kernels/launch_counter.h"
#include "kernels/metrics_math.h"

namespace kernels::cpu {

int64_t confusion_add(const int32_t* pred, const uint8_t* label, const uint8_t* mask, int64_t n, int C, int ignore,
                      uint64_t* counts) {
  count_launch();
  int64_t bad = 0;
  const int64_t cc = int64_t(C) * C;
#pragma omp parallel reduction(+ : bad)
  {
    std::vector<uint64_t> local(static_cast<size_t>(cc), 0);
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      const int bin = kernels::confusion_bin(pred, label, mask, i, C, ignore);
      if (bin >= 0) ++local[size_t(bin)];
      else bad += bin == kernels::kConfusionBad;
    }
#pragma omp critical
    for (int64_t k = 0; k < cc; ++k) counts[k] += local[size_t(k)];
  }
  return bad;
}

}  // namespace kernels::cpu
