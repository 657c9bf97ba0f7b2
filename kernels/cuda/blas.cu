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
  CublasHandle() { CUBLAS_CHECK(cublasCreate(&handle_)); }
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

void check_int(const char* what, int64_t v) {
  if (v < 0 || v > INT_MAX) throw std::runtime_error(std::string("gemm_f32: ") + what + " = " + std::to_string(v) +
                                                     " outside cuBLAS's int range");
}

}  // namespace

void gemm_f32(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
              const float* B, int64_t ldb, float beta, float* C, int64_t ldc, bool tf32) {
  check_int("M", M); check_int("N", N); check_int("K", K);
  check_int("lda", lda); check_int("ldb", ldb); check_int("ldc", ldc);
  if (M == 0 || N == 0) return;
  // K == 0 is legal for cuBLAS (C = beta * C); lda/ldb must still be >= 1.
  const int lda_ = int(lda > 0 ? lda : 1), ldb_ = int(ldb > 0 ? ldb : 1);
  const cublasComputeType_t compute = tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  count_launch();
  CUBLAS_CHECK(cublasGemmEx(thread_handle(), tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N,
                            int(N), int(M), int(K), &alpha, B, CUDA_R_32F, ldb_, A, CUDA_R_32F, lda_, &beta, C,
                            CUDA_R_32F, int(ldc), compute, CUBLAS_GEMM_DEFAULT));
  if (cuda_sync_debug()) CUDA_CHECK(cudaDeviceSynchronize());
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
void gemm_set_workspace(void*, size_t) {}
}  // namespace kernels::emu

#endif
