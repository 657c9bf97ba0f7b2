// Pixel contrastive loss on the GPU: one block per anchor row of S makes four passes over
// the row (max and counts; the negatives' sum; the positives' terms; the gradient), each
// pass coalesced, combined by block reductions. A row of M <= a few thousand floats stays
// in L1/L2 between passes.
#include "kernels/cuda/check.h"
#include "kernels/cuda/launch_util.h"
#include "kernels/cuda/reduce_util.h"
#include "kernels/cuda/semiseg_contrast.h"
#include "kernels/semiseg_contrast_math.h"

namespace kernels::KERNELS_NS {
namespace {
constexpr int kBlock = 256;

__global__ void contrast_rows_kernel(const float* S, const int32_t* labels, int64_t M, float inv_tau,
                                     float* row_loss, int32_t* ok, float* dS) {
  __shared__ float fscratch[32];
  __shared__ int iscratch[32];
  const int64_t i = blockIdx.x;
  const float* row = S + i * M;
  float* g = dS + i * M;
  const int32_t yi = labels[i];
  float m = -INFINITY;
  int npos = 0, nneg = 0;
  for (int64_t j = threadIdx.x; j < M; j += blockDim.x) {
    const int role = contrast_role(i, j, yi, labels[j]);
    if (role != kContrastNone) m = fmaxf(m, row[j] * inv_tau);
    npos += role == kContrastPos;
    nneg += role == kContrastNeg;
  }
  m = block_max(m, fscratch, -INFINITY);
  npos = block_sum(npos, iscratch);
  nneg = block_sum(nneg, iscratch);
  const bool qualifies = npos > 0 && nneg > 0;  // uniform over the block
  float neg = 0.f;
  for (int64_t j = threadIdx.x; j < M && qualifies; j += blockDim.x)
    if (contrast_role(i, j, yi, labels[j]) == kContrastNeg) neg += c3_exp(row[j] * inv_tau - m);
  neg = block_sum(neg, fscratch);
  float term = 0.f, w = 0.f;
  for (int64_t j = threadIdx.x; j < M && qualifies; j += blockDim.x)
    if (contrast_role(i, j, yi, labels[j]) == kContrastPos) {
      const float a = row[j] * inv_tau - m;
      term += contrast_pos_term(a, neg);
      w += contrast_pos_inv_den(a, neg);
    }
  term = block_sum(term, fscratch);
  w = block_sum(w, fscratch);
  const float scale = qualifies ? inv_tau / float(npos) : 0.f;
  for (int64_t j = threadIdx.x; j < M; j += blockDim.x)
    g[j] = qualifies ? contrast_grad(contrast_role(i, j, yi, labels[j]), row[j] * inv_tau - m, neg, w, scale) : 0.f;
  if (threadIdx.x == 0) {
    row_loss[i] = qualifies ? term / float(npos) : 0.f;
    ok[i] = qualifies ? 1 : 0;
  }
}

// Launched with 1024 threads: __launch_bounds__ caps its registers so that such a block fits.
__global__ void __launch_bounds__(1024) contrast_finalize_kernel(const float* row_loss, const int32_t* ok, int64_t M, float scale,
                                         float* loss, float* coef) {
  __shared__ float fscratch[32];
  __shared__ int iscratch[32];
  float sum = 0.f;
  int q = 0;
  for (int64_t i = threadIdx.x; i < M; i += blockDim.x) sum += row_loss[i], q += ok[i];
  sum = block_sum(sum, fscratch);
  q = block_sum(q, iscratch);
  if (threadIdx.x == 0) {
    const float c = q > 0 ? scale / float(q) : 0.f;
    loss[0] = c * sum;
    coef[0] = c;
  }
}
}  // namespace

void contrast_rows_f32(const float* S, const int32_t* labels, int64_t M, float inv_tau, float* row_loss, int32_t* ok,
                       float* dS) {
  if (M == 0) return;
  LAUNCH_CHECK(launch(contrast_rows_kernel, dim3(unsigned(M)), dim3(kBlock), 0, nullptr, S, labels, M, inv_tau,
                      row_loss, ok, dS));
}

void contrast_finalize_f32(const float* row_loss, const int32_t* ok, int64_t M, float scale, float* loss,
                           float* coef) {
  LAUNCH_CHECK(launch(contrast_finalize_kernel, dim3(1), dim3(1024), 0, nullptr, row_loss, ok, M, scale, loss, coef));
}

}  // namespace kernels::KERNELS_NS
