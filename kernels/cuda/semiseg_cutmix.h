// CUDA CutMix routing, same semantics as kernels/cpu/semiseg_cutmix.h, on raw element bits:
// _b4 for 4-byte elements (f32, i32), _b2 for 2-byte ones (bf16), _b1 for u8. `boxes` is a
// device array [K, 4].
#pragma once
#include "kernels/device_api.h"

C3_KERNELS_DECLARE(
  void cutmix_swap_b4(const uint32_t* x, uint32_t* out, const int32_t* boxes, int64_t K, int64_t H, int64_t W,
                      int64_t C, int64_t box_h, int64_t box_w);
  void cutmix_swap_b2(const uint16_t* x, uint16_t* out, const int32_t* boxes, int64_t K, int64_t H, int64_t W,
                      int64_t C, int64_t box_h, int64_t box_w);
  void cutmix_swap_b1(const uint8_t* x, uint8_t* out, const int32_t* boxes, int64_t K, int64_t H, int64_t W,
                      int64_t C, int64_t box_h, int64_t box_w);
)
