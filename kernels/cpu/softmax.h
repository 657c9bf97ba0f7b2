// CPU softmax, log-softmax and the fused cross-entropy losses (f32 and f64), over rows of
// x viewed as [rows, C] (one row per pixel, NHWC). All write their outputs (never
// accumulate). Formulas: kernels/softmax_math.h.
//
// The losses write out[0] = the loss and out[1] = d(loss)/d(per-pixel term), i.e. 1/count
// (0 when nothing counts); `grad`, when not null, receives the UNNORMALIZED per-pixel
// gradient (weight or mask times d CE_i / d logits), which the op scales by out[1] and the
// upstream gradient in backward. Sums are deterministic: fixed chunks of pixels, added in
// chunk order, independent of the number of threads.
#pragma once
#include <cstdint>

namespace kernels::cpu {

// log = false: y = softmax(x); log = true: y = log_softmax(x).
template <class T> void softmax(const T* x, T* y, int64_t rows, int64_t C, bool log);
// gx from the forward OUTPUT y and the upstream gradient g.
template <class T> void softmax_backward(const T* y, const T* g, T* gx, int64_t rows, int64_t C, bool log);

// Hard labels (L = uint8_t or int32_t); weight [C] or null (all ones). The loss is
// sum over valid pixels of w[y_i] CE_i divided by the NUMBER of valid pixels. A pixel whose
// label is ignore_index counts nowhere and gets a zero gradient. Returns the flat index of
// the first pixel whose label is neither in [0, C) nor ignore_index (such pixels are treated
// as ignored), or -1 when every label is fine.
template <class T, class L>
int64_t cross_entropy(const T* logits, const L* labels, const T* weight, int64_t ignore_index, int64_t npix,
                      int64_t C, T* grad, T* out);

// Soft targets t [npix, C] and a per-pixel mask (M = uint8_t or T; null = all ones):
// loss = sum_i M_i sum_c -t_ic log softmax(z_i)_c / sum_i M_i.
template <class T, class M>
void soft_cross_entropy(const T* logits, const T* target, const M* mask, int64_t npix, int64_t C, T* grad, T* out);

}  // namespace kernels::cpu
