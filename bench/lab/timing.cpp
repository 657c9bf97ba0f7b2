#include "bench/lab/timing.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <thread>
#include <vector>

#include "kernels/cpu/blas.h"
#include "kernels/device_api.h"

#ifdef C3_HAVE_CUDA
#include <cuda_runtime.h>

#include "kernels/cuda/blas.h"
#endif

namespace lab {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

Timing summarize(std::vector<double> t) {
  std::sort(t.begin(), t.end());
  return {t.front(), t[t.size() / 2], int(t.size())};
}

// Writing 64 MiB evicts the last-level cache of any CPU we run on.
void flush_host_caches() {
  static std::vector<char> junk(size_t(64) << 20);
  static char v = 0;
  std::memset(junk.data(), ++v, junk.size());
}

}  // namespace

void set_threads(int threads) {
  kernels::cpu::set_threads(threads > 0 ? threads : max_threads());
}
// All cores, unless OMP_NUM_THREADS says otherwise.
int max_threads() {
  if (const char* e = std::getenv("OMP_NUM_THREADS"); e && std::atoi(e) > 0) return std::atoi(e);
  return int(std::max(1u, std::thread::hardware_concurrency()));
}

Timing time_host(const std::function<void()>& fn, int reps, double min_seconds, const std::function<void()>& before) {
  if (before) before();
  fn();  // warm-up: first-touch page faults, lazy allocations
  std::vector<double> t;
  const auto start = Clock::now();
  while (int(t.size()) < reps || seconds_since(start) < min_seconds) {
    if (before) before();
    flush_host_caches();
    const auto t0 = Clock::now();
    fn();
    t.push_back(seconds_since(t0));
    if (t.size() >= 1000) break;
  }
  return summarize(t);
}

std::string cpu_device() {
  std::ifstream f("/proc/cpuinfo");
  std::string line, model = "CPU";
  while (std::getline(f, line))
    if (line.rfind("model name", 0) == 0) {
      model = line.substr(line.find(':') + 2);
      break;
    }
  return model + ", " + std::to_string(max_threads()) + " cores";
}

Ceilings cpu_ceilings(int threads) {
  set_threads(threads);
  if (threads <= 0) threads = max_threads();
  Ceilings c;
  const size_t bytes = size_t(256) << 20;
  std::vector<char> a(bytes, 1), b(bytes, 0);
  Timing copy = time_host(
      [&] {
#pragma omp parallel
        {
          const size_t nt = size_t(omp_get_num_threads()), i = size_t(omp_get_thread_num());
          const size_t lo = bytes * i / nt, hi = bytes * (i + 1) / nt;
          std::memcpy(b.data() + lo, a.data() + lo, hi - lo);
        }
      },
      3);
  c.gbps = 2.0 * double(bytes) / copy.best / 1e9;
  const int64_t n = 2048;
  std::vector<float> A(size_t(n * n), 0.5f), B(size_t(n * n), 0.25f), C(size_t(n * n));
  Timing gemm = time_host([&] { kernels::cpu::gemm(false, false, n, n, n, A.data(), B.data(), C.data()); }, 3);
  c.tflops_fp32 = 2.0 * double(n) * n * n / gemm.best / 1e12;
  c.how = "memcpy 256 MiB over " + std::to_string(threads) + " OpenMP threads; OpenBLAS SGEMM 2048^3";
  return c;
}

#ifdef C3_HAVE_CUDA

#define LAB_CUDA(expr)                                                                              \
  do {                                                                                              \
    cudaError_t e_ = (expr);                                                                        \
    if (e_ != cudaSuccess) throw std::runtime_error(std::string(#expr) + ": " + cudaGetErrorString(e_)); \
  } while (0)

bool cuda_present() { return kernels::cuda::device_count() > 0; }

std::string cuda_device() {
  if (!cuda_present()) return "";
  cudaDeviceProp p{};
  LAB_CUDA(cudaGetDeviceProperties(&p, 0));
  char buf[1024];
  std::snprintf(buf, sizeof buf, "%s (sm_%d%d, %d SMs, %.0f GiB, L2 %d MiB)", p.name, p.major, p.minor,
                p.multiProcessorCount, double(p.totalGlobalMem) / (1 << 30), p.l2CacheSize >> 20);
  return buf;
}

Timing time_cuda(const std::function<void()>& fn, int reps) {
  cudaDeviceProp p{};
  LAB_CUDA(cudaGetDeviceProperties(&p, 0));
  static void* flush = nullptr;
  const size_t flush_bytes = std::max<size_t>(size_t(2) * size_t(p.l2CacheSize), size_t(64) << 20);
  if (!flush) LAB_CUDA(cudaMalloc(&flush, flush_bytes));
  cudaEvent_t e0, e1;
  LAB_CUDA(cudaEventCreate(&e0));
  LAB_CUDA(cudaEventCreate(&e1));
  fn();  // warm-up (lazy module loading, cuBLAS/cuDNN handles, allocator)
  fn();
  LAB_CUDA(cudaDeviceSynchronize());
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    LAB_CUDA(cudaMemsetAsync(flush, r & 0xff, flush_bytes, nullptr));  // evict the L2
    LAB_CUDA(cudaEventRecord(e0, nullptr));
    fn();
    LAB_CUDA(cudaEventRecord(e1, nullptr));
    LAB_CUDA(cudaEventSynchronize(e1));
    float ms = 0;
    LAB_CUDA(cudaEventElapsedTime(&ms, e0, e1));
    t.push_back(ms * 1e-3);
  }
  LAB_CUDA(cudaEventDestroy(e0));
  LAB_CUDA(cudaEventDestroy(e1));
  return summarize(t);
}

Ceilings cuda_ceilings() {
  Ceilings c;
  const size_t bytes = size_t(1) << 30;
  void *a = nullptr, *b = nullptr;
  LAB_CUDA(cudaMalloc(&a, bytes));
  LAB_CUDA(cudaMalloc(&b, bytes));
  LAB_CUDA(cudaMemset(a, 1, bytes));
  Timing copy = time_cuda([&] { LAB_CUDA(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, nullptr)); }, 10);
  c.gbps = 2.0 * double(bytes) / copy.median / 1e9;
  const int64_t n = 8192;  // three 256 MiB matrices, inside the copy buffers
  float *A = static_cast<float*>(a), *B = A + n * n, *C = static_cast<float*>(b);
  LAB_CUDA(cudaMemset(a, 0, bytes));
  for (bool tf32 : {false, true}) {
    Timing g = time_cuda([&] { kernels::cuda::gemm_f32(false, false, n, n, n, 1.f, A, n, B, n, 0.f, C, n, tf32); }, 5);
    (tf32 ? c.tflops_tf32 : c.tflops_fp32) = 2.0 * double(n) * n * n / g.median / 1e12;
  }
  LAB_CUDA(cudaFree(a));
  LAB_CUDA(cudaFree(b));
  c.how = "cudaMemcpy D2D 1 GiB (median of 10); cuBLAS GEMM 8192^3 FP32 and TF32 (median of 5)";
  return c;
}

#else

bool cuda_present() { return false; }
std::string cuda_device() { return ""; }
Timing time_cuda(const std::function<void()>&, int) { throw std::runtime_error("built without CUDA (CUDA=0)"); }
Ceilings cuda_ceilings() { throw std::runtime_error("built without CUDA (CUDA=0)"); }

#endif

}  // namespace lab
