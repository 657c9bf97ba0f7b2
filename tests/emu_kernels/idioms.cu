// Kernels of the emulator's own tests (tests/test_emu.cpp), in the project's style: they
// include compat.h and use its dynamic_shared<T>(). Compiled against the emulator like every
// kernel file, so the race-detecting test binary (c3tests-race) instruments them.
#include "kernels/cuda/compat.h"

namespace emu_test {

// Shared-memory tree reduction, one partial sum per block.
__global__ void block_sum(const int* in, int* out, int n) {
  __shared__ int buf[256];
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  buf[threadIdx.x] = i < n ? in[i] : 0;
  __syncthreads();
  for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) buf[threadIdx.x] += buf[threadIdx.x + s];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[blockIdx.x] = buf[0];
}

// Warp-shuffle reduction, then one atomic per warp.
__global__ void warp_sum(const int* in, int* out, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  int v = i < n ? in[i] : 0;
  for (int d = 16; d > 0; d >>= 1) v += __shfl_down_sync(0xffffffffu, v, d);
  if (threadIdx.x % 32 == 0) atomicAdd(out, v);
}

__global__ void histogram(const int* in, unsigned* bins, int n, int nbins) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
    atomicAdd(&bins[in[i] % nbins], 1);
}

// Inclusive Hillis-Steele scan of one block in dynamic shared memory (double buffered).
__global__ void block_scan(const int* in, int* out, int n) {
  int* buf = dynamic_shared<int>();
  int t = threadIdx.x, pout = 0, pin = 1;
  buf[t] = t < n ? in[t] : 0;
  __syncthreads();
  for (int off = 1; off < (int)blockDim.x; off <<= 1) {
    pout = 1 - pout; pin = 1 - pout;
    int v = buf[pin * blockDim.x + t];
    if (t >= off) v += buf[pin * blockDim.x + t - off];
    buf[pout * blockDim.x + t] = v;
    __syncthreads();
  }
  if (t < n) out[t] = buf[pout * blockDim.x + t];
}

// Missing barrier: each thread reads its neighbour's slot without waiting for it.
__global__ void neighbour_no_sync(const int* in, int* out, int n) {
  __shared__ int buf[64];
  int t = threadIdx.x;
  buf[t] = in[blockIdx.x * blockDim.x + t];
  int next = buf[(t + 1) % blockDim.x];  // BUG: needs __syncthreads() before this read
  out[blockIdx.x * blockDim.x + t] = next;
}

// Thread i writes slot i, then reads slot i+1 with no barrier between: a race.
__global__ void race_missing_barrier(int* out) {
  __shared__ int slots[128];
  unsigned t = threadIdx.x;
  slots[t] = int(t) * 2;
  out[t] = slots[(t + 1) % blockDim.x];
}
// The same exchange with the barrier: no race.
__global__ void neighbour_after_barrier(int* out) {
  __shared__ int slots[128];
  unsigned t = threadIdx.x;
  slots[t] = int(t) * 2;
  __syncthreads();
  out[t] = slots[(t + 1) % blockDim.x];
}

__global__ void divergent_barrier(int* out) {
  if (threadIdx.x < 16) {
    __syncthreads();
  }
  out[threadIdx.x] = 1;
}

__global__ void shuffle_outside_mask(int* out) {
  int v = __shfl_sync(0x0000ffffu, (int)threadIdx.x, 0);  // lanes 16..31 are not in the mask
  out[threadIdx.x] = v;
}

__global__ void votes(const int* in, unsigned* ballot, int* any, int* all) {
  int p = in[threadIdx.x];
  unsigned b = __ballot_sync(0xffffffffu, p);
  int a = __any_sync(0xffffffffu, p), l = __all_sync(0xffffffffu, p);
  if (threadIdx.x == 0) { *ballot = b; *any = a; *all = l; }
}

__global__ void xor_and_width(const float* in, float* out) {
  float v = in[threadIdx.x];
  for (int m = 4; m > 0; m >>= 1) v += __shfl_xor_sync(0xffffffffu, v, m, 8);  // sum over 8-lane groups
  out[threadIdx.x] = v;
}

__global__ void read_dynamic_unwritten(float* out) {
  float* s = dynamic_shared<float>();
  out[threadIdx.x] = s[threadIdx.x];
}

// Writes (and reads back) every byte of its dynamic shared memory.
__global__ void fill_dynamic(int* out, int words) {
  int* s = dynamic_shared<int>();
  for (int i = threadIdx.x; i < words; i += blockDim.x) s[i] = i;
  __syncthreads();
  if (threadIdx.x == 0) out[0] = s[words - 1];
}
__global__ void fill_dynamic_opt_in(int* out, int words) {
  int* s = dynamic_shared<int>();
  for (int i = threadIdx.x; i < words; i += blockDim.x) s[i] = i;
  __syncthreads();
  if (threadIdx.x == 0) out[0] = s[words - 1];
}

__global__ void coordinates(int* out) {
  int x = blockIdx.x * blockDim.x + threadIdx.x, y = blockIdx.y * blockDim.y + threadIdx.y;
  int w = gridDim.x * blockDim.x;
  out[y * w + x] = y * 1000 + x;
}

// A kernel whose static __shared__ arrays take 32 KB: with 16 KB of dynamic shared memory it
// fills the 48 KB a launch may use without opting in.
__global__ void static_32k(int* out, int words) {
  __shared__ float big[4096];
  __shared__ float more[4096];
  int* s = dynamic_shared<int>();
  for (int i = threadIdx.x; i < 4096; i += blockDim.x) { big[i] = float(i); more[i] = 1.0f; }
  for (int i = threadIdx.x; i < words; i += blockDim.x) s[i] = i;
  __syncthreads();
  if (threadIdx.x == 0) out[0] = int(big[4095] + more[0]) + (words ? s[words - 1] : 0);
}
// 50 KB of static shared memory: more than any kernel may declare (nvcc refuses it).
__global__ void static_50k(int* out) {
  __shared__ int huge[12800];
  huge[threadIdx.x] = 1;
  __syncthreads();
  out[threadIdx.x] = huge[0];
}
// "extern __shared__" inside a namespace (a mangled symbol) is dynamic shared memory too.
__global__ void extern_in_namespace(float* out) {
  extern __shared__ float ns_dyn[];
  ns_dyn[threadIdx.x] = float(threadIdx.x);
  __syncthreads();
  out[threadIdx.x] = ns_dyn[blockDim.x - 1 - threadIdx.x];
}
float* extern_in_namespace_base() {
  extern __shared__ float ns_dyn[];
  return ns_dyn;
}

}  // namespace emu_test
