// The kernels of tests/emu_kernels/*.cu, which the Makefile compiles against the emulator.
#pragma once
#include "kernels/cuda/compat.h"

namespace emu_test {  // idioms.cu
void block_sum(const int* in, int* out, int n);
void warp_sum(const int* in, int* out, int n);
void histogram(const int* in, unsigned* bins, int n, int nbins);
void block_scan(const int* in, int* out, int n);
void neighbour_no_sync(const int* in, int* out, int n);
void race_missing_barrier(int* out);
void neighbour_after_barrier(int* out);
void divergent_barrier(int* out);
void shuffle_outside_mask(int* out);
void votes(const int* in, unsigned* ballot, int* any, int* all);
void xor_and_width(const float* in, float* out);
void read_dynamic_unwritten(float* out);
void fill_dynamic(int* out, int words);
void fill_dynamic_opt_in(int* out, int words);
void coordinates(int* out);
void static_32k(int* out, int words);
void static_50k(int* out);
void extern_in_namespace(float* out);
float* extern_in_namespace_base();  // its extern __shared__ array, read on the host
}  // namespace emu_test

// plain_reverse_sum.cu and plain_race.cu: plain CUDA, global namespace.
void foreign_reverse(const int* in, int* out, int n);
void foreign_sum(const float* in, float* partial, int n);
void plain_rotate_no_barrier(const float* in, float* out, int n);
