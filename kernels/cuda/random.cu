// Random fills: one grid-stride loop over groups of 4 outputs; each thread runs Philox once
// per group (the functors of kernels/philox_math.h) and writes the group's outputs. A thread
// writes 4 consecutive elements, so a warp's stores cover 4 x 32 contiguous elements in 4
// instructions; the kernels are bound by the Philox arithmetic, not by memory.
#include "kernels/cuda/check.h"
#include "kernels/cuda/launch_util.h"
#include "kernels/cuda/random.h"

namespace kernels::KERNELS_NS {
namespace {
constexpr int kBlock = 256;

template <class T, class Group>
__global__ void groups_kernel(T* out, int64_t n, int64_t groups, PhiloxDraw d, Group group) {
  for (int64_t g = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; g < groups; g += (int64_t)gridDim.x * blockDim.x) {
    T v[4];
    group(d, uint64_t(g), v);
    const int64_t base = 4 * g;
    if (base + 4 <= n) {
      out[base] = v[0];
      out[base + 1] = v[1];
      out[base + 2] = v[2];
      out[base + 3] = v[3];
    } else {
      for (int64_t k = 0; base + k < n; ++k) out[base + k] = v[k];
    }
  }
}

template <class T, class Group> void run_groups(T* out, int64_t n, const PhiloxDraw& d, const Group& group) {
  if (n <= 0) return;
  const int64_t groups = int64_t(philox_groups(n));
  LAUNCH_CHECK(launch(groups_kernel<T, Group>, grid_for(groups, kBlock), kBlock, 0, nullptr, out, n, groups, d, group));
}
}  // namespace

void random_bits(uint32_t* out, int64_t n, PhiloxDraw d) { run_groups(out, n, d, BitsGroup{}); }
void random_uniform(float* out, int64_t n, PhiloxDraw d, float lo, float hi) {
  run_groups(out, n, d, UniformGroup{lo, hi});
}
void random_normal(float* out, int64_t n, PhiloxDraw d, float mean, float std) {
  run_groups(out, n, d, NormalGroup{mean, std});
}
void random_int(int32_t* out, int64_t n, PhiloxDraw d, int64_t lo, uint64_t range) {
  run_groups(out, n, d, RandintGroup{lo, range});
}
void random_bernoulli(uint8_t* out, int64_t n, PhiloxDraw d, uint64_t threshold) {
  run_groups(out, n, d, BernoulliGroup{threshold});
}

}  // namespace kernels::KERNELS_NS
