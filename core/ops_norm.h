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

}  // namespace c3
