// Plain CUDA, written as for nvcc alone (no include, no project helper): dynamic shared memory
// through "extern __shared__", kernels in the global namespace. The Makefile compiles every
// tests/emu_kernels/*.cu against the emulator as it stands; tests/test_emu.cpp launches them.

// Reverses each block's slice of `in` through shared memory.
__global__ void foreign_reverse(const int* in, int* out, int n) {
  extern __shared__ int s_rev[];
  int t = threadIdx.x, base = blockIdx.x * blockDim.x;
  if (base + t < n) s_rev[t] = in[base + t];
  __syncthreads();
  int len = min((int)blockDim.x, n - base);
  if (t < len) out[base + t] = s_rev[len - 1 - t];
}

// Tree reduction in dynamic shared memory: one partial sum per block.
__global__ void foreign_sum(const float* in, float* partial, int n) {
  extern __shared__ float s_sum[];
  unsigned t = threadIdx.x, i = blockIdx.x * blockDim.x + t;
  s_sum[t] = i < (unsigned)n ? in[i] : 0.0f;
  __syncthreads();
  for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
    if (t < s) s_sum[t] += s_sum[t + s];
    __syncthreads();
  }
  if (t == 0) partial[blockIdx.x] = s_sum[0];
}
