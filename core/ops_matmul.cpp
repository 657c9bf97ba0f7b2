#include "core/ops_matmul.h"

#include <atomic>

#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/precision.h"
#include "kernels/cpu/blas.h"
#include "kernels/cuda/blas.h"

namespace c3 {
namespace {

std::atomic<bool> g_allow_tf32{true};

std::string op_desc(const Tensor& a, const Tensor& b, bool ta, bool tb) {
  return detail::concat("matmul(", a.desc(), ta ? " (transposed)" : "", ", ", b.desc(), tb ? " (transposed)" : "", ")");
}

// cuBLAS works in 32 MiB from the caching allocator (PyTorch's size for Hopper), one per host
// thread, made before the thread's handle so that it outlives it.
[[maybe_unused]] void ensure_cublas_workspace() {
  thread_local Tensor ws;
  if (ws.defined()) return;
  ws = Tensor::empty({32 << 20}, DType::u8, Device::cuda);
  C3_CUDA("matmul", kernels::cuda::gemm_set_workspace(ws.raw(), ws.nbytes()));
}

// out = op(a) op(b), no autograd.
Tensor matmul_raw(const Tensor& a, const Tensor& b, bool ta, bool tb) {
  const int64_t M = ta ? a.dim(1) : a.dim(0), K = ta ? a.dim(0) : a.dim(1);
  const int64_t N = tb ? b.dim(0) : b.dim(1);
  Tensor out = Tensor::empty({M, N}, a.dtype(), a.device());
  const int64_t lda = a.dim(1), ldb = b.dim(1);
  if (a.is_cuda()) {
    C3_CUDA("matmul", ensure_cublas_workspace();
            kernels::cuda::gemm_f32(ta, tb, M, N, K, 1.f, a.data<float>(), lda, b.data<float>(), ldb, 0.f, out.data<float>(),
                                    N, allow_tf32()));
  } else if (a.dtype() == DType::f32)
    kernels::cpu::gemm(ta, tb, M, N, K, 1.f, a.data<float>(), lda, b.data<float>(), ldb, 0.f, out.data<float>(), N);
  else
    kernels::cpu::gemm(ta, tb, M, N, K, 1.0, a.data<double>(), lda, b.data<double>(), ldb, 0.0, out.data<double>(), N);
  return out;
}

}  // namespace

void set_allow_tf32(bool on) { g_allow_tf32.store(on, std::memory_order_relaxed); }
bool allow_tf32() { return g_allow_tf32.load(std::memory_order_relaxed); }

Tensor matmul(const Tensor& a_in, const Tensor& b_in, bool ta, bool tb) {
  // fp32 in the precision table (the contrastive similarities): bf16 operands are widened.
  const Tensor a = precision_input("matmul", a_in), b = precision_input("matmul", b_in);
  C3_CHECK(a.rank() == 2 && b.rank() == 2, op_desc(a, b, ta, tb), ": both operands must be 2-D");
  check_same_device("matmul", a, b);
  check_float("matmul", a);
  C3_CHECK(a.dtype() == b.dtype(), op_desc(a, b, ta, tb), ": dtype mismatch");
  check_cuda_dtype("matmul", a);
  const int64_t Ka = ta ? a.dim(0) : a.dim(1), Kb = tb ? b.dim(1) : b.dim(0);
  C3_CHECK(Ka == Kb, op_desc(a, b, ta, tb), ": inner dimensions differ (", Ka, " vs ", Kb, ")");
  Tensor out = matmul_raw(a, b, ta, tb);
  if (!any_requires_grad({&a, &b})) return out;
  // dA needs b and dB needs a: save only the operand the other's gradient reads.
  Tensor sa = b.requires_grad() ? a.detach() : Tensor();
  Tensor sb = a.requires_grad() ? b.detach() : Tensor();
  // With C = op(A) op(B) and G = dC:  d op(A) = G op(B)^T,  d op(B) = op(A)^T G; transposing
  // where an operand was stored transposed gives one product per case, with no copies.
  record(out, "matmul", {a, b}, [=](const Tensor& g, const Needs& needs) {
    Tensor ga, gb;
    if (needs[0]) ga = ta ? matmul(sb, g, tb, true) : matmul(g, sb, false, !tb);
    if (needs[1]) gb = tb ? matmul(g, sa, true, ta) : matmul(sa, g, !ta, false);
    return std::vector<Tensor>{ga, gb};
  });
  return out;
}

}  // namespace c3
