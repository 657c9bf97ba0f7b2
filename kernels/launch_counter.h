// A count of kernel launches, so tests can hold launch budgets (the optimizer step and the
// teacher's EMA: one launch each over the parameter arena).
//
// Counted at one point per backend: launch() on the GPU (kernels/cuda/compat.h), the
// emulator's run() in emulation, and on the CPU at the entry of each kernel function that
// stands for a GPU launch: one per call, also where the GPU takes two kernels (a two-pass
// reduction), except the convolution, which counts the GPU's calls (cuDNN's, the bias add,
// one per gradient; conv + bias + ReLU counts cuDNN's one fused f32 call, also for bf16, which
// takes two on a GPU). cuDNN and cuBLAS calls count one each (the library may start more).
#pragma once
#include <cstdint>

namespace kernels {
uint64_t launches();  // since the process started
void count_launch();
}  // namespace kernels
