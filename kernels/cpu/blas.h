// CPU GEMM through OpenBLAS, row-major, for the ops that are matrix products (matmul, the 1x1
// and im2col convolutions). A thin wrapper: it adds size checks and the K == 0 case, nothing else.
#pragma once
#include <cstdint>

namespace kernels::cpu {

// C[M,N] = alpha * op(A) * op(B) + beta * C, all row-major.
// op(A) is [M,K]: A is stored [M,K] (lda >= K), or [K,M] when trans_a (lda >= M).
// op(B) is [K,N]: B is stored [K,N] (ldb >= N), or [N,K] when trans_b (ldb >= K).
// With beta == 0, C is written (never read), so it may hold garbage or NaN.
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
          const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha, const double* A, int64_t lda,
          const double* B, int64_t ldb, double beta, double* C, int64_t ldc);

// Contiguous operands: the leading dimensions follow from the shapes.
template <class T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const T* A, const T* B, T* C) {
  gemm(trans_a, trans_b, M, N, K, T(1), A, trans_a ? M : K, B, trans_b ? K : N, T(0), C, N);
}

// The CPU threads of this process (n >= 1): one OpenMP pool for our loops and, with OpenBLAS's
// OpenMP build (what the Makefile links), for its GEMMs too.
void set_threads(int n);

}  // namespace kernels::cpu
