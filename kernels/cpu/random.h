// CPU random fills over Philox4x32-10 (kernels/philox_math.h has the counter convention).
// Element i of a fill depends only on (draw.seed, draw.offset, draw.stream, i), so the CUDA
// kernels of kernels/cuda/random.h give the same values. Each fill writes n outputs and
// consumes philox_groups(n) = ceil(n / 4) counter blocks starting at draw.offset.
#pragma once
#include <cstdint>

#include "kernels/philox_math.h"

namespace kernels::cpu {

void random_bits(uint32_t* out, int64_t n, PhiloxDraw draw);                  // raw words
void random_uniform(float* out, int64_t n, PhiloxDraw draw, float lo, float hi);  // [lo, hi), lo < hi
void random_normal(float* out, int64_t n, PhiloxDraw draw, float mean, float std);
// lo + [0, range), range in [1, 2^32], unbiased (Lemire with rejection); lo + range - 1 fits int32.
void random_int(int32_t* out, int64_t n, PhiloxDraw draw, int64_t lo, uint64_t range);
// 1 with probability threshold / 2^32 (see bernoulli_threshold), else 0.
void random_bernoulli(uint8_t* out, int64_t n, PhiloxDraw draw, uint64_t threshold);

}  // namespace kernels::cpu
