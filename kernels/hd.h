// C3_HD: the qualifier of the per-element math shared by the CPU and CUDA kernels
// (kernels/*_math.h): __host__ __device__ under nvcc, plain inline under g++.
#pragma once

#ifndef C3_HD
#ifdef __CUDACC__
#define C3_HD __host__ __device__ __forceinline__
#else
#define C3_HD inline
#endif
#endif
