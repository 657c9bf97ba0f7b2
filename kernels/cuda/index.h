// CUDA indexing kernels (f32), same semantics as kernels/cpu/index.h, except for bad indices:
// the CPU op checks them first, the GPU kernels set *bad = 1 (a device int the caller zeroed)
// and the op throws after reading it back.
//
// scatter_add_rows accumulates with float atomicAdd: when indices repeat, the order of the
// additions (and so the last bits of the result) varies from run to run. Nondeterministic.
#pragma once
#include "kernels/device_api.h"

C3_KERNELS_DECLARE(
  void copy_rows_f32(const float* src, int64_t src_stride, float* dst, int64_t dst_stride, int64_t rows,
                     int64_t len);
  // out[k, :] = x[idx[k], :]; a row with a bad index is written as zeros.
  void gather_rows_f32(const float* x, const int32_t* idx, float* out, int64_t R, int64_t K, int64_t C,
                       int32_t* bad);
  // out[idx[k], :] += src[k, :] (accumulates; zero `out` first); bad indices are skipped.
  void scatter_add_rows_f32(const float* src, const int32_t* idx, float* out, int64_t R, int64_t K, int64_t C,
                            int32_t* bad);
  void l2_normalize_rows_f32(const float* x, float* y, int64_t rows, int64_t C, float eps);
  void l2_normalize_rows_backward_f32(const float* x, const float* g, float* gx, int64_t rows, int64_t C,
                                      float eps);
)
