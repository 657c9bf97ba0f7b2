// cuBLAS behind a thread-local handle. cuBLAS is column-major; a row-major C = op(A) op(B)
// is the column-major C^T = op(B)^T op(A)^T, so the call swaps the operands (and M with N)
// and keeps each operand's own transpose flag: no copies.
#include <climits>
#include <stdexcept>
#include <string>

#include "kernels/cuda/blas.h"
#include "kernels/cuda/check.h"
#include "kernels/launch_counter.h"

#ifdef __CUDACC__
#include <cublas_v2.h>

namespace kernels {
namespace {

[[noreturn]] void cublas_fail(cublasStatus_t s, const char* expr, const char* file, int line) {
  throw std::runtime_error(std::string("cuBLAS error: ") + cublasGetStatusName(s) + " (" +
                           cublasGetStatusString(s) + ") in " + expr + " at " + file + ":" + std::to_string(line));
}

}  // namespace
}  // namespace kernels

#define CUBLAS_CHECK(expr)                                                          \
  do {                                                                              \
    cublasStatus_t c3_status_ = (expr);                                             \
    if (c3_status_ != CUBLAS_STATUS_SUCCESS)                                        \
      ::kernels::cublas_fail(c3_status_, #expr, __FILE__, __LINE__);                \
  } while (0)

namespace kernels::cuda {
namespace {

// One handle per host thread (a cuBLAS handle must not be shared by concurrent threads).
class CublasHandle {
 public:
  // Reductions in the compute type (FP32), never in a narrower output type (bf16): the bf16
  // GEMM's accumulation stays FP32 even when cuBLAS splits K. No effect on the f32 GEMMs.
  CublasHandle() {
    CUBLAS_CHECK(cublasCreate(&handle_));
    CUBLAS_CHECK(cublasSetMathMode(handle_, cublasMath_t(CUBLAS_DEFAULT_MATH |
                                                         CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION)));
  }
  // Not checked: at process exit the CUDA context may already be gone.
  ~CublasHandle() { if (handle_) cublasDestroy(handle_); }
  CublasHandle(const CublasHandle&) = delete;
  CublasHandle& operator=(const CublasHandle&) = delete;
  cublasHandle_t get() const { return handle_; }

 private:
  cublasHandle_t handle_ = nullptr;
};

cublasHandle_t thread_handle() {
  thread_local CublasHandle h;
  return h.get();
}

void check_int(const char* fn, const char* what, int64_t v) {
  if (v < 0 || v > INT_MAX)
    throw std::runtime_error(std::string(fn) + ": " + what + " = " + std::to_string(v) + " outside cuBLAS's int range");
}

// One cublasGemmEx call for every type: the row-major product as the column-major
// C^T = op(B)^T op(A)^T (operands and M, N swapped, each keeping its own transpose flag).
void gemm_ex(const char* fn, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const void* A,
             int64_t lda, const void* B, int64_t ldb, cudaDataType_t ab_type, float beta, void* C, int64_t ldc,
             cudaDataType_t c_type, cublasComputeType_t compute) {
  check_int(fn, "M", M); check_int(fn, "N", N); check_int(fn, "K", K);
  check_int(fn, "lda", lda); check_int(fn, "ldb", ldb); check_int(fn, "ldc", ldc);
  if (M == 0 || N == 0) return;
  // K == 0 is legal for cuBLAS (C = beta * C); lda/ldb must still be >= 1.
  const int lda_ = int(lda > 0 ? lda : 1), ldb_ = int(ldb > 0 ? ldb : 1);
  count_launch();
  CUBLAS_CHECK(cublasGemmEx(thread_handle(), tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N,
                            int(N), int(M), int(K), &alpha, B, ab_type, ldb_, A, ab_type, lda_, &beta, C, c_type,
                            int(ldc), compute, CUBLAS_GEMM_DEFAULT));
  if (cuda_sync_debug()) CUDA_CHECK(cudaDeviceSynchronize());
}

}  // namespace

void gemm_f32(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
              const float* B, int64_t ldb, float beta, float* C, int64_t ldc, bool tf32) {
  gemm_ex("gemm_f32", ta, tb, M, N, K, alpha, A, lda, B, ldb, CUDA_R_32F, beta, C, ldc, CUDA_R_32F,
          tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F);
}

void gemm_bf16(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const bf16* A, int64_t lda,
               const bf16* B, int64_t ldb, float beta, bf16* C, int64_t ldc) {
  gemm_ex("gemm_bf16", ta, tb, M, N, K, alpha, A, lda, B, ldb, CUDA_R_16BF, beta, C, ldc, CUDA_R_16BF,
          CUBLAS_COMPUTE_32F);
}

void gemm_bf16(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const bf16* A, int64_t lda,
               const bf16* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  gemm_ex("gemm_bf16 (f32 out)", ta, tb, M, N, K, alpha, A, lda, B, ldb, CUDA_R_16BF, beta, C, ldc, CUDA_R_32F,
          CUBLAS_COMPUTE_32F);
}

void gemm_set_workspace(void* ws, size_t bytes) { CUBLAS_CHECK(cublasSetWorkspace(thread_handle(), ws, bytes)); }

}  // namespace kernels::cuda

#else  // the emulated build: nothing to run cuBLAS on

namespace kernels::emu {
void gemm_f32(bool, bool, int64_t M, int64_t N, int64_t K, float, const float*, int64_t, const float*, int64_t, float,
              float*, int64_t, bool) {
  throw std::runtime_error("gemm_f32 [" + std::to_string(M) + "x" + std::to_string(K) + "]x[" + std::to_string(K) +
                           "x" + std::to_string(N) + "]: cuBLAS is not emulated (test GEMM on a GPU)");
}
void gemm_bf16(bool, bool, int64_t M, int64_t N, int64_t K, float, const bf16*, int64_t, const bf16*, int64_t, float,
               bf16*, int64_t) {
  throw std::runtime_error("gemm_bf16 [" + std::to_string(M) + "x" + std::to_string(K) + "]x[" + std::to_string(K) +
                           "x" + std::to_string(N) + "]: cuBLAS is not emulated (test GEMM on a GPU)");
}
void gemm_bf16(bool, bool, int64_t M, int64_t N, int64_t K, float, const bf16*, int64_t, const bf16*, int64_t, float,
               float*, int64_t) {
  throw std::runtime_error("gemm_bf16 (f32 out) [" + std::to_string(M) + "x" + std::to_string(K) + "]x[" +
                           std::to_string(K) + "x" + std::to_string(N) + "]: cuBLAS is not emulated (test GEMM on a GPU)");
}
void gemm_set_workspace(void*, size_t) {}
}  // namespace kernels::emu

#endif
