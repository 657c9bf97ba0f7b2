#include "kernels/cpu/semiseg_sampler.h"

#include <algorithm>
#include <vector>

#include "kernels/launch_counter.h"

namespace kernels::cpu {

void sample_anchors(const int32_t* labels, const int32_t* pred, const SamplerParams& p, int32_t* idx, int32_t* lab) {
  count_launch();
  const int64_t S = sampler_slots_per_image(p), blocks = sampler_class_blocks(p);
#pragma omp parallel for schedule(static) if (p.N > 1)
  for (int64_t n = 0; n < p.N; ++n) {
    const int32_t* y = labels + n * p.hw;
    const int32_t* pr = pred + n * p.hw;
    int32_t* oi = idx + n * S;
    int32_t* ol = lab + n * S;
    std::fill(oi, oi + S, 0);
    std::fill(ol, ol + S, -1);
    // Keys of each (class, side), in position order.
    std::vector<std::vector<uint64_t>> keys(size_t(p.C) * 2);
    for (int64_t i = 0; i < p.hw; ++i) {
      const int c = sampler_class(y[i], p);
      if (c < 0) continue;
      keys[size_t(c) * 2 + size_t(sampler_side(y[i], pr[i], p))].push_back(sampler_key(p.seed, n * p.hw + i));
    }
    int64_t block = 0;
    for (int c = 0; c < p.C && block < blocks; ++c) {
      auto& hard = keys[size_t(c) * 2];
      auto& easy = keys[size_t(c) * 2 + 1];
      int64_t th, te;
      sampler_takes(int64_t(hard.size()), int64_t(easy.size()), p, th, te);
      if (th + te == 0) continue;
      int64_t j = block * p.per_class;
      for (auto* side : {&hard, &easy}) {
        const int64_t take = side == &hard ? th : te;
        std::partial_sort(side->begin(), side->begin() + take, side->end());
        for (int64_t k = 0; k < take; ++k, ++j) oi[j] = int32_t(uint32_t((*side)[size_t(k)])), ol[j] = c;
      }
      ++block;
    }
  }
}

}  // namespace kernels::cpu
