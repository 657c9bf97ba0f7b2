// CPU CutMix routing (see kernels/semiseg_cutmix_math.h for the layout and the formula).
// A pure copy, so it works on raw element bits: T is an unsigned integer of the element size
// (uint8_t for u8, uint32_t for f32/i32, uint64_t for f64). Writes every element of `out`.
#pragma once
#include <cstdint>

namespace kernels::cpu {

// x, out: [2K, H, W, C] (contiguous, distinct buffers); boxes: [K, 4] (y0, x0, h, w) at
// box resolution box_h x box_w.
template <class T>
void cutmix_swap(const T* x, T* out, const int32_t* boxes, int64_t K, int64_t H, int64_t W, int64_t C, int64_t box_h,
                 int64_t box_w);

}  // namespace kernels::cpu
