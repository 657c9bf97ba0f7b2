// CUDA softmax, log-softmax and fused cross-entropy losses (f32), declared for the GPU
// (kernels::cuda) and the emulator (kernels::emu). Same semantics as kernels/cpu/softmax.h;
// `out` (2 floats) and `scratch` are device memory.
#pragma once
#include "kernels/device_api.h"

C3_KERNELS_DECLARE(
  void softmax_f32(const float* x, float* y, int64_t rows, int64_t C, bool log);
  void softmax_backward_f32(const float* y, const float* g, float* gx, int64_t rows, int64_t C, bool log);

  // Bytes of device scratch either loss needs (per-block partial sums and a flag; ~8 KB).
  size_t loss_scratch_bytes();
  // Returns the first invalid pixel or -1; reads that back, so it synchronizes the device.
  // With `defer` (a device u64, all ones when no bad label was seen) the first invalid pixel is
  // folded into it (atomic min) instead, nothing is read back, and the call returns -1.
  int64_t cross_entropy_f32(const float* logits, const uint8_t* labels, const float* weight, int64_t ignore_index,
                            int64_t npix, int64_t C, float* grad, float* out, void* scratch,
                            unsigned long long* defer = nullptr);
  int64_t cross_entropy_f32(const float* logits, const int32_t* labels, const float* weight, int64_t ignore_index,
                            int64_t npix, int64_t C, float* grad, float* out, void* scratch,
                            unsigned long long* defer = nullptr);
  // mask may be null (all ones). Does not synchronize.
  void soft_cross_entropy_f32(const float* logits, const float* target, const uint8_t* mask, int64_t npix, int64_t C,
                              float* grad, float* out, void* scratch);
  void soft_cross_entropy_f32(const float* logits, const float* target, const float* mask, int64_t npix, int64_t C,
                              float* grad, float* out, void* scratch);
)
