// Memory and synchronization. Under the emulator "device" memory is ordinary host memory.
#include <cstdlib>
#include <cstring>

#include "kernels/cuda/check.h"
#include "kernels/device_api.h"

namespace kernels::KERNELS_NS {

#ifdef __CUDACC__
int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" error
    return 0;
  }
  return n;
}
void* device_malloc(size_t bytes) {
  void* p = nullptr;
  if (cudaMalloc(&p, bytes) != cudaSuccess) {
    cudaGetLastError();
    return nullptr;
  }
  return p;
}
void device_free(void* p) { CUDA_CHECK(cudaFree(p)); }
void memcpy_h2d(void* d, const void* s, size_t n) { CUDA_CHECK(cudaMemcpy(d, s, n, cudaMemcpyHostToDevice)); }
void memcpy_d2h(void* d, const void* s, size_t n) { CUDA_CHECK(cudaMemcpy(d, s, n, cudaMemcpyDeviceToHost)); }
void memcpy_d2d(void* d, const void* s, size_t n) { CUDA_CHECK(cudaMemcpy(d, s, n, cudaMemcpyDeviceToDevice)); }
void memset_device(void* d, int v, size_t n) { CUDA_CHECK(cudaMemset(d, v, n)); }
void synchronize() { CUDA_CHECK(cudaDeviceSynchronize()); }
void* host_malloc_pinned(size_t bytes) {
  void* p = nullptr;
  CUDA_CHECK(cudaMallocHost(&p, bytes));
  return p;
}
void host_free_pinned(void* p) { CUDA_CHECK(cudaFreeHost(p)); }
#else
int device_count() { return 1; }
void* device_malloc(size_t bytes) { return std::aligned_alloc(256, (bytes + 255) / 256 * 256); }
void device_free(void* p) { std::free(p); }
void memcpy_h2d(void* d, const void* s, size_t n) { std::memcpy(d, s, n); }
void memcpy_d2h(void* d, const void* s, size_t n) { std::memcpy(d, s, n); }
void memcpy_d2d(void* d, const void* s, size_t n) { std::memcpy(d, s, n); }
void memset_device(void* d, int v, size_t n) { std::memset(d, v, n); }
void synchronize() {}
void* host_malloc_pinned(size_t bytes) { return std::aligned_alloc(64, (bytes + 63) / 64 * 64); }
void host_free_pinned(void* p) { std::free(p); }
#endif

}  // namespace kernels::KERNELS_NS
