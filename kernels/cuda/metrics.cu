// Confusion matrix: a per-block histogram in shared memory, then one atomic per bin (above
// 110 classes the histogram outgrows shared memory: one global atomic per pixel).
#include "kernels/cuda/check.h"
#include "kernels/cuda/launch_util.h"
#include "kernels/cuda/metrics.h"
#include "kernels/metrics_math.h"

namespace kernels::KERNELS_NS {
namespace {
__global__ void confusion_kernel(const int32_t* pred, const uint8_t* label, const uint8_t* mask, int64_t n, int C,
                                 int ignore, unsigned long long* counts, unsigned long long* bad) {
  unsigned* local = dynamic_shared<unsigned>();
  const int cc = C * C;
  for (int k = threadIdx.x; k < cc; k += blockDim.x) local[k] = 0;
  __syncthreads();
  unsigned nbad = 0;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const int bin = confusion_bin(pred, label, mask, i, C, ignore);
    if (bin >= 0) atomicAdd(&local[bin], 1u);
    else nbad += bin == kConfusionBad;
  }
  if (nbad) atomicAdd(bad, (unsigned long long)nbad);
  __syncthreads();
  for (int k = threadIdx.x; k < cc; k += blockDim.x)
    if (local[k]) atomicAdd(&counts[k], (unsigned long long)local[k]);
}

// More classes than a block's 48 KB of shared memory holds (C > 110): one atomic per pixel on
// the global counts instead.
__global__ void confusion_global_kernel(const int32_t* pred, const uint8_t* label, const uint8_t* mask, int64_t n,
                                        int C, int ignore, unsigned long long* counts, unsigned long long* bad) {
  unsigned nbad = 0;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const int bin = confusion_bin(pred, label, mask, i, C, ignore);
    if (bin >= 0) atomicAdd(&counts[bin], 1ull);
    else nbad += bin == kConfusionBad;
  }
  if (nbad) atomicAdd(bad, (unsigned long long)nbad);
}
}  // namespace

void confusion_add(const int32_t* pred, const uint8_t* label, const uint8_t* mask, int64_t n, int C, int ignore,
                   unsigned long long* counts, unsigned long long* bad) {
  if (n == 0) return;
  const size_t shmem = size_t(C) * C * sizeof(unsigned);  // 19 classes: 1.4 KB
  if (shmem > 48 * 1024) {
    LAUNCH_CHECK(launch(confusion_global_kernel, grid_for(n, 256, 256), dim3(256), 0, nullptr, pred, label, mask, n, C,
                        ignore, counts, bad));
    return;
  }
  LAUNCH_CHECK(launch(confusion_kernel, grid_for(n, 256, 256), dim3(256), shmem, nullptr, pred, label, mask, n, C,
                      ignore, counts, bad));
}

}  // namespace kernels::KERNELS_NS
