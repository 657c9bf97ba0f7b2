// cuBLAS GEMM (f32), row-major, same contract as kernels::cpu::gemm (kernels/cpu/blas.h).
// `tf32` picks CUBLAS_COMPUTE_32F_FAST_TF32 (tensor cores, inputs rounded to 10-bit
// mantissas) over CUBLAS_COMPUTE_32F; ops pass c3::allow_tf32().
// cuBLAS cannot run under the emulator: the kernels::emu versions throw.
#pragma once
#include "kernels/device_api.h"

C3_KERNELS_DECLARE(
  void gemm_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc, bool tf32);
  // This thread's cuBLAS handle works in `bytes` at `ws` (device memory the caller keeps
  // alive) instead of memory cuBLAS allocates itself.
  void gemm_set_workspace(void* ws, size_t bytes);
)
