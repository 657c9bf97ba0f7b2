// cuBLAS GEMM, row-major, same contract as kernels::cpu::gemm (kernels/cpu/blas.h):
// C[M,N] = alpha * op(A) * op(B) + beta * C, op(A) [M,K] (stored [K,M] when trans_a), op(B) [K,N]
// (stored [N,K] when trans_b); with beta == 0, C is written, never read.
//
// f32: `tf32` picks CUBLAS_COMPUTE_32F_FAST_TF32 (tensor cores, inputs rounded to 10-bit
// mantissas) over CUBLAS_COMPUTE_32F; ops pass c3::allow_tf32().
// bf16: A and B bf16, C bf16 or f32 (the overload picks), compute CUBLAS_COMPUTE_32F: products
// exact in FP32, sums in FP32 (tensor cores), alpha and beta float. With a bf16 C the result is
// rounded once on store, and the handle forbids reduced-precision reductions
// (CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION), so split-K partial sums stay FP32 too.
// A device that cannot run bf16 GEMMs makes cuBLAS fail, and the error names the call.
//
// Each call counts one launch (kernels/launch_counter.h). cuBLAS cannot run under the
// emulator: the kernels::emu versions throw.
#pragma once
#include "kernels/bf16_math.h"
#include "kernels/device_api.h"

C3_KERNELS_DECLARE(
  void gemm_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc, bool tf32);
  void gemm_bf16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const kernels::bf16* A,
                 int64_t lda, const kernels::bf16* B, int64_t ldb, float beta, kernels::bf16* C, int64_t ldc);
  void gemm_bf16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const kernels::bf16* A,
                 int64_t lda, const kernels::bf16* B, int64_t ldb, float beta, float* C, int64_t ldc);
  // This thread's cuBLAS handle works in `bytes` at `ws` (device memory the caller keeps
  // alive) instead of memory cuBLAS allocates itself. The f32 and bf16 GEMMs share it.
  void gemm_set_workspace(void* ws, size_t bytes);
)
