// The cross-set pixel contrastive loss of C3-SemiSeg (METHOD.md "L_con"), differentiable in
// the anchors only.
//
//   loss = -(tau / tau_b) * mean_i [ (1/|P(i)|) sum_{p in P(i)} log( e^{s_ip} / (e^{s_ip} + sum_{n in N(i)} e^{s_in}) ) ]
//   s_ij = <z_i, z'_j> / tau,  P(i) = { j != i : y_j == y_i },  N(i) = { j : y_j != y_i }.
// The mean runs over the anchors with |P(i)| > 0 AND |N(i)| > 0; the other anchors are left
// out of the numerator and of the count (a class sampled once, or a batch of one class,
// has no term to contribute). When no anchor qualifies the loss is 0 with a zero gradient.
//
// z [M, D]: L2-normalised student embeddings at the sampled positions (the anchors);
// z' [M, D]: the contrast side at the same positions (student or teacher), treated as a
// constant (stop-gradient: the op detaches it); labels i32 [M]. f32 on CPU and CUDA, f64 on
// the CPU. Computed as S = z z'^T (matmul: OpenBLAS / cuBLAS, TF32 on the GPU unless
// set_allow_tf32(false)), then one fused kernel per anchor row giving the row's loss and
// d(loss)/dS; backward of the matmul gives dz = dS z'.
#pragma once
#include "core/tensor.h"

namespace c3::semiseg {

Tensor contrastive_loss(const Tensor& z, const Tensor& z_contrast, const Tensor& labels, double tau = 0.15,
                        double tau_b = 0.1);

// The same loss from the raw similarities S [M, M] = z z'^T (before the 1/tau),
// differentiable in S.
Tensor contrastive_loss_from_similarity(const Tensor& S, const Tensor& labels, double tau = 0.15,
                                        double tau_b = 0.1);

}  // namespace c3::semiseg
