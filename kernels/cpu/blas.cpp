#include "kernels/cpu/blas.h"

#include <cblas.h>
#include <omp.h>

#include <climits>
#include <stdexcept>
#include <string>

#include "kernels/launch_counter.h"

namespace kernels::cpu {
namespace {

// OpenBLAS takes int sizes (blasint); a larger product must be split by the caller.
void check_sizes(int64_t M, int64_t N, int64_t K, int64_t lda, int64_t ldb, int64_t ldc) {
  for (int64_t v : {M, N, K, lda, ldb, ldc})
    if (v < 0 || v > INT_MAX)
      throw std::runtime_error("gemm: size " + std::to_string(v) + " outside OpenBLAS's int range (M=" +
                               std::to_string(M) + ", N=" + std::to_string(N) + ", K=" + std::to_string(K) + ")");
}

// K == 0: op(A) op(B) is a zero matrix, so C = beta * C (BLAS implementations differ on
// whether they touch C then; do it here). beta == 0 writes zeros, ignoring NaN in C.
template <class T> void scale_c(int64_t M, int64_t N, T beta, T* C, int64_t ldc) {
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) C[m * ldc + n] = beta == T(0) ? T(0) : beta * C[m * ldc + n];
}

CBLAS_TRANSPOSE op(bool t) { return t ? CblasTrans : CblasNoTrans; }

}  // namespace

void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
          const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  count_launch();
  check_sizes(M, N, K, lda, ldb, ldc);
  if (M == 0 || N == 0) return;
  if (K == 0) return scale_c(M, N, beta, C, ldc);
  cblas_sgemm(CblasRowMajor, op(ta), op(tb), int(M), int(N), int(K), alpha, A, int(lda), B, int(ldb), beta, C,
              int(ldc));
}

void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const double* A, int64_t lda,
          const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
  count_launch();
  check_sizes(M, N, K, lda, ldb, ldc);
  if (M == 0 || N == 0) return;
  if (K == 0) return scale_c(M, N, beta, C, ldc);
  cblas_dgemm(CblasRowMajor, op(ta), op(tb), int(M), int(N), int(K), alpha, A, int(lda), B, int(ldb), beta, C,
              int(ldc));
}

void set_threads(int n) {
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}

}  // namespace kernels::cpu
