#include "kernels/cpu/semiseg_cutmix.h"

#include <cstring>

#include "kernels/launch_counter.h"
#include "kernels/semiseg_cutmix_math.h"

namespace kernels::cpu {

template <class T>
void cutmix_swap(const T* x, T* out, const int32_t* boxes, int64_t K, int64_t H, int64_t W, int64_t C, int64_t box_h,
                 int64_t box_w) {
  count_launch();
  const int64_t HW = H * W;
#pragma omp parallel for collapse(2) schedule(static) if (2 * K * HW * C > 65536)
  for (int64_t b = 0; b < 2 * K; ++b)
    for (int64_t y = 0; y < H; ++y)
      for (int64_t xx = 0; xx < W; ++xx) {
        const int64_t src = cutmix_source(b, K, boxes, y, xx, H, W, box_h, box_w);
        const int64_t p = y * W + xx;
        std::memcpy(out + (b * HW + p) * C, x + (src * HW + p) * C, size_t(C) * sizeof(T));
      }
}

template void cutmix_swap<uint8_t>(const uint8_t*, uint8_t*, const int32_t*, int64_t, int64_t, int64_t, int64_t,
                                   int64_t, int64_t);
template void cutmix_swap<uint16_t>(const uint16_t*, uint16_t*, const int32_t*, int64_t, int64_t, int64_t, int64_t,
                                    int64_t, int64_t);
template void cutmix_swap<uint32_t>(const uint32_t*, uint32_t*, const int32_t*, int64_t, int64_t, int64_t, int64_t,
                                    int64_t, int64_t);
template void cutmix_swap<uint64_t>(const uint64_t*, uint64_t*, const int32_t*, int64_t, int64_t, int64_t, int64_t,
                                    int64_t, int64_t);

}  // namespace kernels::cpu
