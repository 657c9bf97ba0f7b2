// CPU 2-D convolution through oneDNN (Debian's libdnnl, the library PyTorch's CPU convs use):
// f32, the same layouts and arithmetic contract as kernels/cpu/conv.h (NHWC activations,
// [Cout, kh, kw, Cin] weights, zero padding, dilation, groups = 1), computed by oneDNN's
// direct convolution kernels instead of im2col + GEMM. Per geometry and pass (forward, data
// gradient, filter gradient): where oneDNN has no direct kernel (its fallback is its own
// im2col + GEMM, slower than ours), that pass runs on kernels/cpu/conv.h. The im2col path
// stays the reference: tests/test_conv_dnnl.cpp holds these functions to it.
//
// oneDNN reads and writes the activations in place (its NHWC format, no copies); the weights
// go through one reorder per call into the blocked layout its kernels want (and the filter
// gradient back out of it), a copy the size of the weights. Primitives are built once per
// geometry and kept. oneDNN runs on the process's OpenMP threads (set_threads).
#pragma once
#include <cstddef>

#include "kernels/conv_math.h"

namespace kernels::cpu::dnnl_conv {

// y = conv(x, w) + bias (bias may be null), then relu(y) when `relu` (the relu op's function,
// relu_rows: oneDNN's own ReLU post-op turns NaN into 0).
// `training`: the forward of a training step (oneDNN may choose another kernel for inference).
void forward(const float* x, const float* w, const float* bias, float* y, const ConvGeom& g, bool relu,
             bool training);
// dx and dw from dy, either may be null (not wanted); both are overwritten.
void backward(const float* x, const float* w, const float* dy, float* dx, float* dw, const ConvGeom& g);

enum class Pass { forward, data, filter };
// Whether oneDNN runs this pass of this geometry (a direct kernel); else im2col does.
// `training`: for Pass::forward, a training step's forward (else inference's).
bool direct(const ConvGeom& g, Pass pass, bool training = true);

// Primitives are kept for at most this many geometries per pass kind (forward, backward).
inline constexpr size_t kKeptGeometries = 256;

// Drops the kept primitives (tests; a process that trains keeps them).
void clear_cache();
// How many geometries have primitives kept (tests: a second call with a seen shape builds none).
size_t cached_geometries();

}  // namespace kernels::cpu::dnnl_conv
