// Plain CUDA with a bug: each thread reads its neighbour's slot of dynamic shared memory
// without a __syncthreads() after the writes. Compiled unchanged; the race detector of
// c3tests-race reports it with the offset and both threads (tests/test_emu.cpp).
__global__ void plain_rotate_no_barrier(const float* in, float* out, int n) {
  extern __shared__ float s_rot[];
  int t = threadIdx.x, i = blockIdx.x * blockDim.x + t;
  s_rot[t] = i < n ? in[i] : 0.0f;
  float next = s_rot[(t + 1) % blockDim.x];  // BUG: another thread's slot, no barrier
  if (i < n) out[i] = next;
}
