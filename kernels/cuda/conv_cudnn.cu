// cuDNN convolutions (f32, NHWC activations, NHWC filters). See conv_cudnn.h.
//
// Thin wrappers: RAII descriptors built per call (host objects, microseconds), one cuDNN
// handle per thread, and the algorithm for each problem chosen once and cached. Compiled
// by g++ for the emulator too, where every entry point throws: cuDNN runs only on a GPU.
#include "kernels/cuda/conv_cudnn.h"

#include <stdexcept>
#include <string>

#include "kernels/cuda/check.h"

#ifdef __CUDACC__
#include <cudnn.h>

#include <array>
#include <climits>
#include <map>
#include <mutex>
#include <vector>
#endif

namespace kernels::KERNELS_NS {

#ifdef __CUDACC__
namespace {

[[noreturn]] void cudnn_fail(cudnnStatus_t st, const char* expr, const char* file, int line) {
  throw std::runtime_error(std::string("cuDNN error: ") + cudnnGetErrorString(st) + " in " + expr + " at " + file +
                           ":" + std::to_string(line));
}
#define CUDNN_CHECK(expr)                                                         \
  do {                                                                            \
    cudnnStatus_t c3_st_ = (expr);                                                \
    if (c3_st_ != CUDNN_STATUS_SUCCESS) cudnn_fail(c3_st_, #expr, __FILE__, __LINE__); \
  } while (0)

template <class D, cudnnStatus_t (*Create)(D*), cudnnStatus_t (*Destroy)(D)>
class Descriptor {
 public:
  Descriptor() { CUDNN_CHECK(Create(&d_)); }
  ~Descriptor() { Destroy(d_); }
  Descriptor(const Descriptor&) = delete;
  Descriptor& operator=(const Descriptor&) = delete;
  D get() const { return d_; }

 private:
  D d_ = nullptr;
};
using TensorDesc = Descriptor<cudnnTensorDescriptor_t, cudnnCreateTensorDescriptor, cudnnDestroyTensorDescriptor>;
using FilterDesc = Descriptor<cudnnFilterDescriptor_t, cudnnCreateFilterDescriptor, cudnnDestroyFilterDescriptor>;
using ConvDesc =
    Descriptor<cudnnConvolutionDescriptor_t, cudnnCreateConvolutionDescriptor, cudnnDestroyConvolutionDescriptor>;

// One handle per thread: a cuDNN handle must not be used by two threads at once.
cudnnHandle_t handle() {
  struct Owner {
    cudnnHandle_t h = nullptr;
    Owner() { CUDNN_CHECK(cudnnCreate(&h)); }
    ~Owner() { cudnnDestroy(h); }  // status ignored: may run while the process tears down
  };
  thread_local Owner owner;
  return owner.h;
}

void sync_if_debug() {
  if (cuda_sync_debug()) CUDA_CHECK(cudaDeviceSynchronize());
}

std::string geom_str(const ConvGeom& g) {
  auto s = [](int64_t v) { return std::to_string(v); };
  return "x [" + s(g.N) + "," + s(g.H) + "," + s(g.W) + "," + s(g.C) + "], w [" + s(g.K) + "," + s(g.kh) + "," +
         s(g.kw) + "," + s(g.C) + "], stride " + s(g.sh) + "x" + s(g.sw) + ", pad " + s(g.ph) + "x" + s(g.pw) +
         ", dilation " + s(g.dh) + "x" + s(g.dw);
}

// The descriptors of one problem. The legacy API takes int sizes and strides.
struct ConvDescs {
  TensorDesc x, y;
  FilterDesc w;
  ConvDesc conv;
  ConvDescs(const ConvGeom& g, bool allow_tf32) {
    for (int64_t n : {g.N * g.H * g.W * g.C, g.N * g.Ho * g.Wo * g.K, g.K * g.taps()})
      if (n > INT_MAX)
        throw std::length_error("conv2d (cuDNN): a tensor of " + std::to_string(n) +
                                " elements exceeds cuDNN's int range (" + geom_str(g) + "); use a smaller batch");
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(x.get(), CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, int(g.N), int(g.C), int(g.H),
                                           int(g.W)));
    CUDNN_CHECK(cudnnSetFilter4dDescriptor(w.get(), CUDNN_DATA_FLOAT, CUDNN_TENSOR_NHWC, int(g.K), int(g.C),
                                           int(g.kh), int(g.kw)));
    CUDNN_CHECK(cudnnSetConvolution2dDescriptor(conv.get(), int(g.ph), int(g.pw), int(g.sh), int(g.sw), int(g.dh),
                                                int(g.dw), CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    // DEFAULT lets cuDNN use TF32 tensor cores (Ampere and later); FMA forbids them. Not
    // TENSOR_OP_MATH_ALLOW_CONVERSION: for f32 data that allows rounding to FP16.
    CUDNN_CHECK(cudnnSetConvolutionMathType(conv.get(), allow_tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH));
    int n = 0, c = 0, h = 0, wd = 0;
    CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(conv.get(), x.get(), w.get(), &n, &c, &h, &wd));
    if (n != g.N || c != g.K || h != g.Ho || wd != g.Wo)
      throw std::logic_error("conv2d (cuDNN): cuDNN's output size " + std::to_string(h) + "x" + std::to_string(wd) +
                             " differs from ours " + std::to_string(g.Ho) + "x" + std::to_string(g.Wo) + " for " +
                             geom_str(g));
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(y.get(), CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, int(g.N), int(g.K),
                                           int(g.Ho), int(g.Wo)));
  }
};

enum class Dir : int { forward, backward_data, backward_filter };
const char* dir_name(Dir d) {
  return d == Dir::forward ? "forward" : d == Dir::backward_data ? "backward data" : "backward filter";
}

struct Algo {
  int algo = 0;                            // cudnnConvolution{Fwd,BwdData,BwdFilter}Algo_t
  cudnnMathType_t math = CUDNN_FMA_MATH;   // set on the descriptor before running
  size_t workspace = 0;
};

// The first of cuDNN's ranked candidates that succeeds, respects the math mode, and whose
// workspace (asked again with its math type set: that is what the run will need) fits.
template <class Perf, class WorkspaceSize>
Algo pick(const std::vector<Perf>& perf, int count, const CudnnConvOptions& opt, ConvDescs& d, Dir dir,
          const ConvGeom& g, WorkspaceSize workspace_size) {
  for (int i = 0; i < count; ++i) {
    const Perf& p = perf[i];
    if (p.status != CUDNN_STATUS_SUCCESS || p.mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION) continue;
    if (!opt.allow_tf32 && p.mathType == CUDNN_TENSOR_OP_MATH) continue;
    const cudnnMathType_t math = opt.allow_tf32 ? p.mathType : CUDNN_FMA_MATH;
    CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv.get(), math));
    size_t bytes = 0;
    if (workspace_size(p.algo, &bytes) != CUDNN_STATUS_SUCCESS || bytes > opt.workspace_limit) continue;
    return Algo{int(p.algo), math, bytes};
  }
  throw std::runtime_error(std::string("conv2d (cuDNN) ") + dir_name(dir) + ": no algorithm runs " + geom_str(g) +
                           " within the workspace limit of " + std::to_string(opt.workspace_limit >> 20) + " MiB" +
                           (opt.allow_tf32 ? "" : " in full FP32 mode"));
}

Algo choose(Dir dir, const ConvGeom& g, const CudnnConvOptions& opt, ConvDescs& d) {
  cudnnHandle_t h = handle();
  int max_count = 0, count = 0;
  if (dir == Dir::forward) {
    CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(h, &max_count));
    std::vector<cudnnConvolutionFwdAlgoPerf_t> perf(max_count);
    CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h, d.x.get(), d.w.get(), d.conv.get(), d.y.get(), max_count,
                                                       &count, perf.data()));
    return pick(perf, count, opt, d, dir, g, [&](cudnnConvolutionFwdAlgo_t a, size_t* b) {
      return cudnnGetConvolutionForwardWorkspaceSize(h, d.x.get(), d.w.get(), d.conv.get(), d.y.get(), a, b);
    });
  }
  if (dir == Dir::backward_data) {
    CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(h, &max_count));
    std::vector<cudnnConvolutionBwdDataAlgoPerf_t> perf(max_count);
    CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, d.w.get(), d.y.get(), d.conv.get(), d.x.get(),
                                                            max_count, &count, perf.data()));
    return pick(perf, count, opt, d, dir, g, [&](cudnnConvolutionBwdDataAlgo_t a, size_t* b) {
      return cudnnGetConvolutionBackwardDataWorkspaceSize(h, d.w.get(), d.y.get(), d.conv.get(), d.x.get(), a, b);
    });
  }
  CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(h, &max_count));
  std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> perf(max_count);
  CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, d.x.get(), d.y.get(), d.conv.get(), d.w.get(),
                                                            max_count, &count, perf.data()));
  return pick(perf, count, opt, d, dir, g, [&](cudnnConvolutionBwdFilterAlgo_t a, size_t* b) {
    return cudnnGetConvolutionBackwardFilterWorkspaceSize(h, d.x.get(), d.y.get(), d.conv.get(), d.w.get(), a, b);
  });
}

using AlgoKey = std::array<int64_t, 16>;
struct AlgoCache {
  std::mutex mu;
  std::map<AlgoKey, Algo> map;
};
AlgoCache& algo_cache() {
  static AlgoCache c;
  return c;
}

// Chooses (once per problem) and applies the algorithm's math type to the descriptor.
Algo algo_for(Dir dir, const ConvGeom& g, const CudnnConvOptions& opt, ConvDescs& d) {
  const AlgoKey key{g.N,  g.H,  g.W,  g.C,  g.K,  g.kh,          g.kw,           g.sh,
                    g.sw, g.ph, g.pw, g.dh, g.dw, int64_t(dir), opt.allow_tf32, int64_t(opt.workspace_limit)};
  AlgoCache& c = algo_cache();
  Algo a;
  bool found = false;
  {
    std::lock_guard<std::mutex> lock(c.mu);
    auto it = c.map.find(key);
    if (it != c.map.end()) a = it->second, found = true;
  }
  if (!found) {  // chosen outside the lock; two threads racing here pick the same answer
    a = choose(dir, g, opt, d);
    std::lock_guard<std::mutex> lock(c.mu);
    c.map.emplace(key, a);
  }
  CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv.get(), a.math));
  return a;
}

void* get_workspace(const Algo& a, const ConvWorkspaceFn& workspace) {
  return a.workspace ? workspace(a.workspace) : nullptr;
}

}  // namespace

void conv2d_forward_f32(const float* x, const float* w, float* y, const ConvGeom& g, const CudnnConvOptions& opt,
                        const ConvWorkspaceFn& workspace) {
  if (g.out_pixels() == 0 || g.K == 0) return;
  ConvDescs d(g, opt.allow_tf32);
  const Algo a = algo_for(Dir::forward, g, opt, d);
  void* ws = get_workspace(a, workspace);
  const float one = 1.f, zero = 0.f;
  CUDNN_CHECK(cudnnConvolutionForward(handle(), &one, d.x.get(), x, d.w.get(), w, d.conv.get(),
                                      cudnnConvolutionFwdAlgo_t(a.algo), ws, a.workspace, &zero, d.y.get(), y));
  sync_if_debug();
}

void conv2d_backward_data_f32(const float* dy, const float* w, float* dx, const ConvGeom& g,
                              const CudnnConvOptions& opt, const ConvWorkspaceFn& workspace) {
  if (g.N * g.H * g.W * g.C == 0) return;
  ConvDescs d(g, opt.allow_tf32);
  const Algo a = algo_for(Dir::backward_data, g, opt, d);
  void* ws = get_workspace(a, workspace);
  const float one = 1.f, zero = 0.f;
  CUDNN_CHECK(cudnnConvolutionBackwardData(handle(), &one, d.w.get(), w, d.y.get(), dy, d.conv.get(),
                                           cudnnConvolutionBwdDataAlgo_t(a.algo), ws, a.workspace, &zero, d.x.get(),
                                           dx));
  sync_if_debug();
}

void conv2d_backward_filter_f32(const float* x, const float* dy, float* dw, const ConvGeom& g,
                                const CudnnConvOptions& opt, const ConvWorkspaceFn& workspace) {
  if (g.K * g.taps() == 0) return;
  if (g.out_pixels() == 0) {  // an empty batch: the gradient is zero (cuDNN rejects N = 0)
    CUDA_CHECK(cudaMemset(dw, 0, size_t(g.K * g.taps()) * sizeof(float)));
    return;
  }
  ConvDescs d(g, opt.allow_tf32);
  const Algo a = algo_for(Dir::backward_filter, g, opt, d);
  void* ws = get_workspace(a, workspace);
  const float one = 1.f, zero = 0.f;
  CUDNN_CHECK(cudnnConvolutionBackwardFilter(handle(), &one, d.x.get(), x, d.y.get(), dy, d.conv.get(),
                                             cudnnConvolutionBwdFilterAlgo_t(a.algo), ws, a.workspace, &zero,
                                             d.w.get(), dw));
  sync_if_debug();
}

size_t conv_algo_cache_size() {
  std::lock_guard<std::mutex> lock(algo_cache().mu);
  return algo_cache().map.size();
}
void conv_algo_cache_clear() {
  std::lock_guard<std::mutex> lock(algo_cache().mu);
  algo_cache().map.clear();
}

#else  // the emulated build: cuDNN cannot run on the CPU

namespace {
[[noreturn]] void not_emulated(const char* fn) {
  throw std::runtime_error(std::string(fn) + ": cuDNN is not emulated (cuDNN convolutions run only on a GPU)");
}
}  // namespace

void conv2d_forward_f32(const float*, const float*, float*, const ConvGeom&, const CudnnConvOptions&,
                        const ConvWorkspaceFn&) {
  not_emulated("conv2d_forward_f32");
}
void conv2d_backward_data_f32(const float*, const float*, float*, const ConvGeom&, const CudnnConvOptions&,
                              const ConvWorkspaceFn&) {
  not_emulated("conv2d_backward_data_f32");
}
void conv2d_backward_filter_f32(const float*, const float*, float*, const ConvGeom&, const CudnnConvOptions&,
                                const ConvWorkspaceFn&) {
  not_emulated("conv2d_backward_filter_f32");
}
size_t conv_algo_cache_size() { return 0; }
void conv_algo_cache_clear() {}

#endif

}  // namespace kernels::KERNELS_NS
