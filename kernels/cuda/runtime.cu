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
// Device-side work and uploads from page-locked memory go on the default stream in order;
// only reads by the host (memcpy_d2h) and synchronize() wait.
void memcpy_d2d(void* d, const void* s, size_t n) { CUDA_CHECK(cudaMemcpyAsync(d, s, n, cudaMemcpyDeviceToDevice, 0)); }
void memcpy_h2d_async(void* d, const void* s, size_t n) { CUDA_CHECK(cudaMemcpyAsync(d, s, n, cudaMemcpyHostToDevice, 0)); }
void* event_record() {
  cudaEvent_t e = nullptr;
  CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  CUDA_CHECK(cudaEventRecord(e, 0));
  return e;
}
bool event_done(void* e) {
  const cudaError_t r = cudaEventQuery(static_cast<cudaEvent_t>(e));
  if (r == cudaErrorNotReady) {
    cudaGetLastError();
    return false;
  }
  CUDA_CHECK(r);
  return true;
}
void event_destroy(void* e) { cudaEventDestroy(static_cast<cudaEvent_t>(e)); }
void memset_device(void* d, int v, size_t n) { CUDA_CHECK(cudaMemsetAsync(d, v, n, 0)); }
void synchronize() { CUDA_CHECK(cudaDeviceSynchronize()); }
void* host_malloc_pinned(size_t bytes) {
  void* p = nullptr;
  CUDA_CHECK(cudaHostAlloc(&p, bytes, cudaHostAllocPortable));
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
void memcpy_h2d_async(void* d, const void* s, size_t n) { std::memcpy(d, s, n); }
void* event_record() { return nullptr; }
bool event_done(void*) { return true; }
void event_destroy(void*) {}
void memset_device(void* d, int v, size_t n) { std::memset(d, v, n); }
void synchronize() {}
void* host_malloc_pinned(size_t bytes) { return std::aligned_alloc(64, (bytes + 63) / 64 * 64); }
void host_free_pinned(void* p) { std::free(p); }
#endif

}  // namespace kernels::KERNELS_NS
