// Batch normalization over channels-last tensors (BatchNorm2d on NHWC): x is [N, H, W, C]
// (any rank >= 2 with channels last is accepted; statistics are over all other dims).
// weight, bias, running_mean, running_var are [C], same dtype and device as x.
#pragma once
#include "core/tensor.h"

namespace c3 {

enum class BatchNormMode {
  train,   // batch statistics (biased variance) normalize; running stats updated in place with
           // PyTorch's rule (running = (1-m)*running + m*batch, unbiased variance); gradients
           // for x, weight, bias (through the batch statistics)
  eval,    // running statistics normalize; gradients for x, weight, bias
  frozen,  // running statistics and a fixed affine map y = x*a + b, a = w/sqrt(var+eps),
           // b = bias - mean*a: gradient for x only, never for weight or bias (the reference
           // protocol of frozen BN backbones)
};
const char* batch_norm_mode_name(BatchNormMode mode);

// y = (x - mean) / sqrt(var + eps) * weight + bias per channel. The running statistics are
// buffers: they must not require grad; train mode needs more than one value per channel.
// relu: y = relu(y) in the same pass (the values and gradients of relu(batch_norm(...)), with
// one pass over memory instead of two each way); the backward masks the gradient by y.
Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                  const Tensor& running_var, BatchNormMode mode, double momentum = 0.1, double eps = 1e-5,
                  bool relu = false);

// Frozen BatchNorm folded into the convolution before it. conv2d(x, conv_weight, conv_bias)
// followed by batch_norm(..., frozen) is, per output channel k, conv2d(x, weight', bias') with
//   scale[k] = weight[k] / sqrt(running_var[k] + eps)   (batch_norm's frozen scale, same bits)
//   weight'  = conv_weight * scale[k]                   (conv_weight [K, kh, kw, Cin]: row k)
//   bias'    = (conv_bias[k] - running_mean[k]) * scale[k] + bias[k]   (conv_bias undefined: 0)
// in one launch. Differentiable in conv_weight and conv_bias (their gradients are the folded
// ones' times scale per output channel: the unfolded chain's, up to rounding); the BatchNorm's
// tensors are constants and must not require grad (only a frozen BatchNorm folds). The result
// is computed from the current weights at each call: nothing is stored. f32 or f64 (CUDA: f32).
struct FoldedConv {
  Tensor weight, bias;
};
FoldedConv fold_frozen_batch_norm(const Tensor& conv_weight, const Tensor& conv_bias, const Tensor& weight,
                                  const Tensor& bias, const Tensor& running_mean, const Tensor& running_var,
                                  double eps = 1e-5);

}  // namespace c3
