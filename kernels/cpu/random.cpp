#include "kernels/cpu/random.h"

#include "kernels/launch_counter.h"

namespace kernels::cpu {
namespace {
// Runs a group functor of philox_math.h over the ceil(n/4) groups; the last group writes
// only the outputs that exist.
template <class T, class Group> void fill_groups(T* out, int64_t n, const PhiloxDraw& d, const Group& group) {
  const int64_t groups = int64_t(philox_groups(n));
#pragma omp parallel for schedule(static) if (groups > 8192)
  for (int64_t g = 0; g < groups; ++g) {
    T v[4];
    group(d, uint64_t(g), v);
    const int64_t base = 4 * g, m = n - base < 4 ? n - base : 4;
    for (int64_t k = 0; k < m; ++k) out[base + k] = v[k];
  }
}
}  // namespace

void random_bits(uint32_t* out, int64_t n, PhiloxDraw d) {
  count_launch();
  fill_groups(out, n, d, BitsGroup{});
}
void random_uniform(float* out, int64_t n, PhiloxDraw d, float lo, float hi) {
  count_launch();
  fill_groups(out, n, d, UniformGroup{lo, hi});
}
void random_normal(float* out, int64_t n, PhiloxDraw d, float mean, float std) {
  count_launch();
  fill_groups(out, n, d, NormalGroup{mean, std});
}
void random_int(int32_t* out, int64_t n, PhiloxDraw d, int64_t lo, uint64_t range) {
  count_launch();
  fill_groups(out, n, d, RandintGroup{lo, range});
}
void random_bernoulli(uint8_t* out, int64_t n, PhiloxDraw d, uint64_t threshold) {
  count_launch();
  fill_groups(out, n, d, BernoulliGroup{threshold});
}

}  // namespace kernels::cpu
