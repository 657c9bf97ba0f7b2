// Pooling over NHWC tensors [N, H, W, C], differentiable.
#pragma once
#include "core/tensor.h"

namespace c3 {

// Max pooling with a square window: PyTorch's output size (floor or ceil mode, where a last
// window starting beyond the input and its left padding is dropped) and semantics (padding
// never wins, ties go to the first cell in row-major window order, NaN propagates). Needs
// padding <= kernel / 2. The backward sends each output's gradient to its argmax.
Tensor max_pool2d(const Tensor& x, int kernel = 3, int stride = 2, int padding = 1, bool ceil_mode = false);

// [N, H, W, C] -> [N, 1, 1, C], the mean over H and W.
Tensor global_avg_pool(const Tensor& x);

}  // namespace c3
