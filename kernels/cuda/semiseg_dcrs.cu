// DCRS step on the GPU: histogram search for the per-class quantile, refined to the exact
// order statistic (see kernels/cuda/semiseg_dcrs.h for the five passes).
#include "kernels/cuda/check.h"
#include "kernels/cuda/launch_util.h"
#include "kernels/cuda/semiseg_dcrs.h"

namespace kernels::KERNELS_NS {
namespace {
constexpr int kBlock = 256;
constexpr int kScanThreads = 1024;  // the histogram scan: kDcrsBins / 1024 = 4 bins a thread
constexpr int kBinsPerThread = kDcrsBins / kScanThreads;
static_assert(kDcrsBins % kScanThreads == 0, "bins must split evenly over the scan threads");

#define C3_GRID_STRIDE(i, n) \
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

__global__ void zero_kernel(int32_t* a, int64_t na, int32_t* b, int64_t nb, int32_t* c, int64_t nc) {
  C3_GRID_STRIDE(i, na + nb + nc) {
    if (i < na) a[i] = 0;
    else if (i < na + nb) b[i - na] = 0;
    else c[i - na - nb] = 0;
  }
}

// Per-class counters are kept per block in shared memory (C ints) and added to the global
// ones once per block: every pixel adds to one of only C addresses, which global atomics
// would serialize.
__device__ void zero_local(int* local, int C) {
  for (int c = threadIdx.x; c < C; c += blockDim.x) local[c] = 0;
  __syncthreads();
}
__device__ void flush_local(const int* local, int C, int32_t* global_a, int32_t* global_b) {
  __syncthreads();
  for (int c = threadIdx.x; c < C; c += blockDim.x)
    if (local[c] != 0) {
      atomicAdd(global_a + c, local[c]);
      if (global_b) atomicAdd(global_b + c, local[c]);
    }
}

// Pass 1: confidence, argmax, class counts and the groups' histograms. With T = 0 the mask
// is all ones and every pixel counts as kept.
__global__ void pixels_kernel(DcrsIo io, DcrsWorkspace ws) {
  int* local = dynamic_shared<int>();
  zero_local(local, io.C);
  C3_GRID_STRIDE(i, io.P) {
    float best;
    int arg;
    dcrs_pixel_max(io.probs + i * io.C, io.C, best, arg);
    io.conf[i] = best;
    io.label[i] = arg;
    atomicAdd(local + arg, 1);
    if (io.T > 0) atomicAdd(ws.hist + int64_t(dcrs_group(arg, io.T)) * kDcrsBins + dcrs_bin(best), 1);
    else io.mask[i] = 1;
  }
  flush_local(local, io.C, io.count, io.T > 0 ? nullptr : ws.kept);
}

// Exclusive prefix sum over the block (blockDim.x a multiple of 32); *total gets the sum.
// Every thread must call it.
__device__ int block_exclusive_scan(int v, int* warp_sums, int* total) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
  int inc = v;
  for (int d = 1; d < 32; d <<= 1) {
    const int o = __shfl_up_sync(0xffffffffu, inc, d);
    if (lane >= d) inc += o;
  }
  __syncthreads();  // warp_sums and total may still be read by the previous call
  if (lane == 31) warp_sums[warp] = inc;
  __syncthreads();
  if (warp == 0) {
    const int w = lane < nwarps ? warp_sums[lane] : 0;
    int wi = w;
    for (int d = 1; d < 32; d <<= 1) {
      const int o = __shfl_up_sync(0xffffffffu, wi, d);
      if (lane >= d) wi += o;
    }
    if (lane < nwarps) warp_sums[lane] = wi - w;
    if (lane == 31) *total = wi;
  }
  __syncthreads();
  return warp_sums[warp] + inc - v;
}

// Pass 2, one block: for each group, the bin holding descending rank r and the rank inside
// it; candidate offsets are the running sum of the selected bins' sizes. Thread j owns the
// j-th run of kBinsPerThread bins counted from the top.
// One block of 1024 threads: __launch_bounds__ caps its registers so that the block fits.
__global__ void __launch_bounds__(kScanThreads) scan_kernel(DcrsIo io, DcrsWorkspace ws) {
  __shared__ int warp_sums[32];
  __shared__ int total;
  __shared__ int offset;
  if (threadIdx.x == 0) offset = 0;
  for (int t = 0; t < io.T; ++t) {
    const int32_t* h = ws.hist + int64_t(t) * kDcrsBins;
    const int top = kDcrsBins - 1 - threadIdx.x * kBinsPerThread;
    int mine = 0;
    for (int q = 0; q < kBinsPerThread; ++q) mine += h[top - q];
    const int before = block_exclusive_scan(mine, warp_sums, &total);
    int32_t* sel = ws.sel + 5 * t;
    if (total == 0) {
      if (threadIdx.x == 0) sel[0] = -1, sel[1] = 0, sel[2] = 0, sel[3] = offset, sel[4] = 0;
    } else {
      const int64_t r = dcrs_rank(total, io.s[t]);
      if (before <= r && r < before + mine) {  // exactly one thread
        int cum = before;
        for (int q = 0; q < kBinsPerThread; ++q) {
          const int c = h[top - q];
          if (r < cum + c) {
            sel[0] = top - q, sel[1] = int(r - cum), sel[2] = c, sel[3] = offset, sel[4] = 0;
            break;
          }
          cum += c;
        }
      }
    }
    __syncthreads();  // sel[2] of this group is written before the offset moves on
    if (threadIdx.x == 0) offset += sel[2];
    __syncthreads();
  }
}

// Pass 3: copy the confidences of each group's selected bin to its candidate range.
__global__ void collect_kernel(DcrsIo io, DcrsWorkspace ws) {
  C3_GRID_STRIDE(i, io.P) {
    int32_t* sel = ws.sel + 5 * dcrs_group(io.label[i], io.T);
    const float v = io.conf[i];
    if (sel[0] >= 0 && dcrs_bin(v) == sel[0]) ws.cand[sel[3] + atomicAdd(sel + 4, 1)] = v;
  }
}

// Pass 4, one block per group: radix select of the candidate at descending rank sel[1],
// 8 key bits a pass from the top; then the quantile and the threshold.
__global__ void select_kernel(DcrsIo io, DcrsWorkspace ws) {
  __shared__ int hist[256];
  __shared__ uint32_t prefix, prefix_mask;
  __shared__ int rank;
  const int t = blockIdx.x;
  const int32_t* sel = ws.sel + 5 * t;
  const bool present = sel[0] >= 0;  // uniform over the block
  const float* cand = ws.cand + sel[3];
  const int n = sel[2];
  if (threadIdx.x == 0) prefix = 0, prefix_mask = 0, rank = sel[1];
  for (int shift = 24; shift >= 0 && present; shift -= 8) {
    for (int d = threadIdx.x; d < 256; d += blockDim.x) hist[d] = 0;
    __syncthreads();
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
      const uint32_t key = dcrs_key(cand[i]);
      if ((key & prefix_mask) == prefix) atomicAdd(hist + ((key >> shift) & 255u), 1);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      int cum = 0;
      for (int d = 255; d >= 0; --d) {
        if (rank < cum + hist[d]) {
          rank -= cum;
          prefix |= uint32_t(d) << shift;
          prefix_mask |= 255u << shift;
          break;
        }
        cum += hist[d];
      }
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    if (present) {
      const float q = dcrs_key_value(prefix);
      io.quantile[t] = q;
      if (io.update) io.thr[t] = dcrs_ema(io.thr[t], q, io.momentum);
    } else {
      io.quantile[t] = NAN;
    }
  }
}

// Pass 5: the mask with the updated thresholds, and kept pixels per class.
__global__ void mask_kernel(DcrsIo io, DcrsWorkspace ws) {
  int* local = dynamic_shared<int>();
  zero_local(local, io.C);
  C3_GRID_STRIDE(i, io.P) {
    const int c = io.label[i];
    const bool keep = io.conf[i] >= io.thr[dcrs_group(c, io.T)];
    io.mask[i] = keep ? 1 : 0;
    if (keep) atomicAdd(local + c, 1);
  }
  flush_local(local, io.C, ws.kept, nullptr);
}

__global__ void fraction_kernel(DcrsIo io, DcrsWorkspace ws) {
  for (int c = threadIdx.x; c < io.C; c += blockDim.x) io.kept_fraction[c] = dcrs_fraction(ws.kept[c], io.count[c]);
}
}  // namespace

void dcrs_step(const DcrsIo& io, const DcrsWorkspace& ws) {
  const int64_t nhist = io.T > 0 ? int64_t(io.T) * kDcrsBins : 0;
  LAUNCH_CHECK(launch(zero_kernel, grid_for(nhist + 2 * io.C, kBlock), dim3(kBlock), 0, nullptr, ws.hist, nhist,
                      ws.kept, int64_t(io.C), io.count, int64_t(io.C)));
  const size_t shmem = size_t(io.C) * sizeof(int);
  if (io.P > 0) LAUNCH_CHECK(launch(pixels_kernel, grid_for(io.P, kBlock), dim3(kBlock), shmem, nullptr, io, ws));
  if (io.T > 0) {
    LAUNCH_CHECK(launch(scan_kernel, dim3(1), dim3(kScanThreads), 0, nullptr, io, ws));
    if (io.P > 0) LAUNCH_CHECK(launch(collect_kernel, grid_for(io.P, kBlock), dim3(kBlock), 0, nullptr, io, ws));
    LAUNCH_CHECK(launch(select_kernel, dim3(unsigned(io.T)), dim3(kBlock), 0, nullptr, io, ws));
    if (io.P > 0) LAUNCH_CHECK(launch(mask_kernel, grid_for(io.P, kBlock), dim3(kBlock), shmem, nullptr, io, ws));
  }
  LAUNCH_CHECK(launch(fraction_kernel, dim3(1), dim3(kBlock), 0, nullptr, io, ws));
}

}  // namespace kernels::KERNELS_NS
