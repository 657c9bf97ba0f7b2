// Timing helpers shared by every benchmark program (kernel lab, whole step): wall-clock
// timing on the host, CUDA-event timing on the GPU with the L2 flushed between repeats, and
// the machine's ceilings measured in the same run (a large copy for bandwidth, a large GEMM
// for arithmetic), so each figure can be given as a fraction of what the device can do.
#pragma once
#include <functional>
#include <string>

namespace lab {

struct Timing {
  double best = 0, median = 0;  // seconds per run
  int reps = 0;
};

// One warm-up call, then `reps` timed calls (more until min_seconds of timed work), each
// after evicting the caches by writing a buffer larger than them. `before`, when given, runs
// untimed before each call (e.g. the forward whose backward is timed).
Timing time_host(const std::function<void()>& fn, int reps, double min_seconds = 0,
                 const std::function<void()>& before = {});
// The same on the GPU with CUDA events around each call; the L2 is flushed (a memset of
// twice its size) before each call, outside the timed region. Throws without CUDA.
Timing time_cuda(const std::function<void()>& fn, int reps);

struct Ceilings {
  double gbps = 0;         // copy bandwidth: 2 x bytes / time (read + write)
  double tflops_fp32 = 0;  // SGEMM
  double tflops_tf32 = 0;  // TF32 GEMM (GPU only; 0 on the CPU)
  std::string how;         // what was measured
};
// CPU: a large memcpy split over the OpenMP threads, OpenBLAS SGEMM, with `threads` threads.
Ceilings cpu_ceilings(int threads);
// GPU: a 1 GiB device-to-device copy; cuBLAS SGEMM 8192^3 in FP32 and in TF32.
Ceilings cuda_ceilings();

// Sets the OpenMP and OpenBLAS thread counts (0 = all cores, or OMP_NUM_THREADS when set).
void set_threads(int threads);
int max_threads();

bool cuda_present();        // a usable GPU and a CUDA build
std::string cuda_device();  // "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs)" or ""
std::string cpu_device();   // the CPU model and core count

}  // namespace lab
