// CUDA indexing kernels (f32; copy, gather and scatter also bf16), same semantics as
// kernels/cpu/index.h, except for bad indices: the CPU op checks them first, the GPU kernels
// set *bad = 1 (a device int the caller zeroed) and the op throws after reading it back.
//
// scatter_add_rows accumulates with float atomicAdd: when indices repeat, the order of the
// additions (and so the last bits of the result) varies from run to run. Nondeterministic.
//
// bf16: copy_rows and gather_rows copy the elements' bits (the same kernels as f32, templated
// on the element type). scatter_add_rows_bf16 reads bf16 rows but accumulates into an f32
// `out`: every addition in f32, as in the f32 kernel; the caller rounds `out` to bf16 once at
// the end (cast), instead of rounding after each of the up to K additions into a row.
// l2_normalize stays f32 only.
#pragma once
#include "kernels/bf16_math.h"
#include "kernels/device_api.h"

C3_KERNELS_DECLARE(
  void copy_rows_f32(const float* src, int64_t src_stride, float* dst, int64_t dst_stride, int64_t rows,
                     int64_t len);
  void copy_rows_bf16(const bf16* src, int64_t src_stride, bf16* dst, int64_t dst_stride, int64_t rows,
                      int64_t len);
  // out[k, :] = x[idx[k], :]; a row with a bad index is written as zeros.
  void gather_rows_f32(const float* x, const int32_t* idx, float* out, int64_t R, int64_t K, int64_t C,
                       int32_t* bad);
  void gather_rows_bf16(const bf16* x, const int32_t* idx, bf16* out, int64_t R, int64_t K, int64_t C,
                        int32_t* bad);
  // out[idx[k], :] += src[k, :] (accumulates; zero `out` first); bad indices are skipped.
  void scatter_add_rows_f32(const float* src, const int32_t* idx, float* out, int64_t R, int64_t K, int64_t C,
                            int32_t* bad);
  // out (f32) [idx[k], :] += src (bf16) [k, :]: the f32 accumulator of a bf16 scatter.
  void scatter_add_rows_bf16(const bf16* src, const int32_t* idx, float* out, int64_t R, int64_t K, int64_t C,
                             int32_t* bad);
  void l2_normalize_rows_f32(const float* x, float* y, int64_t rows, int64_t C, float eps);
  void l2_normalize_rows_backward_f32(const float* x, const float* g, float* gx, int64_t rows, int64_t C,
                                      float eps);
)
