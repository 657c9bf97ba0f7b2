#include "kernels/cpu/semiseg_dcrs.h"

#include <algorithm>
#include <functional>
#include <vector>

#include "kernels/launch_counter.h"

namespace kernels::cpu {

void dcrs_step(const DcrsIo& io) {
  count_launch();
  const int64_t P = io.P;
#pragma omp parallel for schedule(static) if (P * io.C > 65536)
  for (int64_t i = 0; i < P; ++i) {
    float best;
    int arg;
    dcrs_pixel_max(io.probs + i * io.C, io.C, best, arg);
    io.conf[i] = best;
    io.label[i] = arg;
  }
  std::fill(io.count, io.count + io.C, 0);
  for (int64_t i = 0; i < P; ++i) ++io.count[io.label[i]];

  std::vector<std::vector<float>> groups(static_cast<size_t>(io.T));
  for (int64_t i = 0; i < P && io.T > 0; ++i) groups[dcrs_group(io.label[i], io.T)].push_back(io.conf[i]);
  for (int t = 0; t < io.T; ++t) {
    std::vector<float>& g = groups[t];
    if (g.empty()) {
      io.quantile[t] = NAN;
      continue;
    }
    const int64_t r = dcrs_rank(static_cast<int64_t>(g.size()), io.s[t]);
    std::nth_element(g.begin(), g.begin() + r, g.end(), std::greater<float>());
    io.quantile[t] = g[r];
    if (io.update) io.thr[t] = dcrs_ema(io.thr[t], g[r], io.momentum);
  }

  std::vector<int32_t> kept(static_cast<size_t>(io.C), 0);
  for (int64_t i = 0; i < P; ++i) {
    const bool keep = io.T == 0 || io.conf[i] >= io.thr[dcrs_group(io.label[i], io.T)];
    io.mask[i] = keep ? 1 : 0;
    kept[io.label[i]] += keep;
  }
  for (int c = 0; c < io.C; ++c) io.kept_fraction[c] = dcrs_fraction(kept[c], io.count[c]);
}

}  // namespace kernels::cpu
