// cuDNN convolutions (f32 and bf16, NHWC activations, NHWC filters). See conv_cudnn.h.
//
// Thin wrappers: RAII descriptors built per call (host objects, microseconds), one cuDNN
// handle per thread, and the algorithm for each problem chosen once and cached. Compiled
// by g++ for the emulator too, where every entry point throws: cuDNN runs only on a GPU.
#include "kernels/cuda/conv_cudnn.h"

#include <stdexcept>
#include <string>

#include "kernels/conv_algo.h"
#include "kernels/cuda/check.h"
#include "kernels/launch_counter.h"

#ifdef __CUDACC__
#include <cudnn.h>

#include <algorithm>
#include <array>
#include <climits>
#include <map>
#include <mutex>
#include <set>
#include <type_traits>
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
using ActivationDesc =
    Descriptor<cudnnActivationDescriptor_t, cudnnCreateActivationDescriptor, cudnnDestroyActivationDescriptor>;

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

// The element type of a call and the math its algorithms may use. f32: TF32 tensor cores only
// with opt.allow_tf32 (else CUDNN_FMA_MATH). bf16 (cuDNN's PSEUDO_BFLOAT16_CONFIG: bf16 tensors
// and filter, FP32 convolution compute type): tensor cores always, since bf16 products are exact
// in FP32 and they accumulate in FP32 as the FMA kernels do; allow_tf32 does not apply.
struct ConvType {
  cudnnDataType_t data;
  bool tensor_ops;  // the ranking's tensor-core math types may run as ranked
};
ConvType conv_type(cudnnDataType_t data, const CudnnConvOptions& opt) {
  return {data, data == CUDNN_DATA_BFLOAT16 || opt.allow_tf32};
}
// The math type on the descriptor while cuDNN ranks: it says which kinds the ranking may list.
// DEFAULT lets cuDNN use TF32 tensor cores for f32 (Ampere and later); FMA forbids them. Never
// TENSOR_OP_MATH_ALLOW_CONVERSION: it allows rounding f32 (and bf16) data to FP16.
cudnnMathType_t ranking_math(const ConvType& t) {
  if (t.data == CUDNN_DATA_BFLOAT16) return CUDNN_TENSOR_OP_MATH;
  return t.tensor_ops ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
}

// bf16 convolutions need compute capability 8.0 or later (cuDNN lists PSEUDO_BFLOAT16_CONFIG
// only there); without this check an older GPU fails later with "no algorithm is usable".
void require_bf16_device(const char* fn) {
  thread_local int checked_device = -1;  // the last device that passed, per thread
  int dev = 0;
  CUDA_CHECK(cudaGetDevice(&dev));
  if (dev == checked_device) return;
  int major = 0, minor = 0;
  CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
  CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev));
  if (major < 8)
    throw std::runtime_error(std::string(fn) + ": bf16 convolutions need a GPU of compute capability 8.0 or later "
                             "(cuDNN's PSEUDO_BFLOAT16_CONFIG); device " + std::to_string(dev) + " is " +
                             std::to_string(major) + "." + std::to_string(minor) + ": use f32 on it");
  checked_device = dev;
}

// The descriptors of one problem. The legacy API takes int sizes and strides. The convolution's
// compute type is FP32 for both element types (FLOAT_CONFIG, PSEUDO_BFLOAT16_CONFIG).
struct ConvDescs {
  TensorDesc x, y;
  FilterDesc w;
  ConvDesc conv;
  ConvType type;
  ConvDescs(const ConvGeom& g, const ConvType& t) : type(t) {
    for (int64_t n : {g.N * g.H * g.W * g.C, g.N * g.Ho * g.Wo * g.K, g.K * g.taps()})
      if (n > INT_MAX)
        throw std::length_error("conv2d (cuDNN): a tensor of " + std::to_string(n) +
                                " elements exceeds cuDNN's int range (" + geom_str(g) + "); use a smaller batch");
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(x.get(), CUDNN_TENSOR_NHWC, t.data, int(g.N), int(g.C), int(g.H),
                                           int(g.W)));
    CUDNN_CHECK(cudnnSetFilter4dDescriptor(w.get(), t.data, CUDNN_TENSOR_NHWC, int(g.K), int(g.C), int(g.kh),
                                           int(g.kw)));
    CUDNN_CHECK(cudnnSetConvolution2dDescriptor(conv.get(), int(g.ph), int(g.pw), int(g.sh), int(g.sw), int(g.dh),
                                                int(g.dw), CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    CUDNN_CHECK(cudnnSetConvolutionMathType(conv.get(), ranking_math(t)));
    int n = 0, c = 0, h = 0, wd = 0;
    CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(conv.get(), x.get(), w.get(), &n, &c, &h, &wd));
    if (n != g.N || c != g.K || h != g.Ho || wd != g.Wo)
      throw std::logic_error("conv2d (cuDNN): cuDNN's output size " + std::to_string(h) + "x" + std::to_string(wd) +
                             " differs from ours " + std::to_string(g.Ho) + "x" + std::to_string(g.Wo) + " for " +
                             geom_str(g));
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(y.get(), CUDNN_TENSOR_NHWC, t.data, int(g.N), int(g.K), int(g.Ho),
                                           int(g.Wo)));
  }
};

enum class Dir : int { forward, backward_data, backward_filter, forward_bias_relu };
const char* dir_name(Dir d) {
  switch (d) {
    case Dir::forward: return "forward";
    case Dir::backward_data: return "backward data";
    case Dir::backward_filter: return "backward filter";
    case Dir::forward_bias_relu: return "forward + bias + ReLU";
  }
  return "?";
}

// The usable candidates of cuDNN's ranking, each with the workspace it needs once its math
// type is set (that is what the run will need). kernels/conv_algo.h filters and orders them.
template <class Perf, class WorkspaceSize>
std::vector<ConvCandidate> candidates(const Perf* perf, int count, const CudnnConvOptions& opt, ConvDescs& d,
                                      WorkspaceSize workspace_size) {
  const bool tensor_ops = d.type.tensor_ops;
  std::vector<ConvRanked> ranked;
  for (int i = 0; i < count; ++i) {
    const Perf& p = perf[i];
    ConvRanked r{int(p.algo), p.status == CUDNN_STATUS_SUCCESS, int(p.mathType), 0,
                 p.determinism == CUDNN_DETERMINISTIC};
    if (r.ok && p.mathType != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION) {
      CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv.get(), tensor_ops ? p.mathType : CUDNN_FMA_MATH));
      r.ok = workspace_size(p.algo, &r.workspace) == CUDNN_STATUS_SUCCESS;
    }
    ranked.push_back(r);
  }
  return usable_candidates(ranked, tensor_ops, CUDNN_TENSOR_OP_MATH, CUDNN_FMA_MATH,
                           CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION, opt.workspace_limit, opt.deterministic);
}

// The device buffers of one call; a timed search (cudnnFind*Ex) runs the algorithms on them.
struct ConvBuffers {
  const void* in0;  // forward: x, backward data: w, backward filter: x
  const void* in1;  // forward: w, backward data: dy, backward filter: dy
  void* out;        // forward: y, backward data: dx, backward filter: dw
};

// cuDNN's ranking of every algorithm: its heuristics, or with opt.benchmark a timed run of each
// (cudnnFind*AlgorithmEx on the call's own buffers, scratch of the largest workspace the
// heuristics' usable candidates need, from the caller's allocator).
template <class Perf, class GetMax, class Get, class Find, class WorkspaceSize>
std::vector<ConvCandidate> rank(const CudnnConvOptions& opt, ConvDescs& d, const ConvWorkspaceFn& workspace,
                                GetMax get_max, Get get, Find find, WorkspaceSize workspace_size) {
  int max_count = 0, count = 0;
  CUDNN_CHECK(get_max(&max_count));
  std::vector<Perf> perf(size_t(std::max(max_count, 1)));
  CUDNN_CHECK(get(max_count, &count, perf.data()));
  std::vector<ConvCandidate> heuristic = candidates(perf.data(), count, opt, d, workspace_size);
  if (!opt.benchmark || heuristic.empty()) return heuristic;
  size_t bytes = 0;
  for (const ConvCandidate& c : heuristic) bytes = std::max(bytes, c.workspace);
  void* ws = bytes ? workspace(bytes) : nullptr;
  // The search sets each algorithm's math type itself; the descriptor's says which it may use.
  CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv.get(), ranking_math(d.type)));
  CUDNN_CHECK(find(max_count, &count, perf.data(), ws, bytes));
  std::vector<ConvCandidate> timed = candidates(perf.data(), count, opt, d, workspace_size);
  return timed.empty() ? heuristic : timed;
}

std::vector<ConvCandidate> rank(Dir dir, const CudnnConvOptions& opt, ConvDescs& d, const ConvBuffers& b,
                                const ConvWorkspaceFn& workspace) {
  cudnnHandle_t h = handle();
  if (dir == Dir::forward)
    return rank<cudnnConvolutionFwdAlgoPerf_t>(
        opt, d, workspace, [&](int* n) { return cudnnGetConvolutionForwardAlgorithmMaxCount(h, n); },
        [&](int n, int* c, cudnnConvolutionFwdAlgoPerf_t* p) {
          return cudnnGetConvolutionForwardAlgorithm_v7(h, d.x.get(), d.w.get(), d.conv.get(), d.y.get(), n, c, p);
        },
        [&](int n, int* c, cudnnConvolutionFwdAlgoPerf_t* p, void* ws, size_t bytes) {
          return cudnnFindConvolutionForwardAlgorithmEx(h, d.x.get(), b.in0, d.w.get(), b.in1, d.conv.get(),
                                                        d.y.get(), b.out, n, c, p, ws, bytes);
        },
        [&](cudnnConvolutionFwdAlgo_t a, size_t* s) {
          return cudnnGetConvolutionForwardWorkspaceSize(h, d.x.get(), d.w.get(), d.conv.get(), d.y.get(), a, s);
        });
  if (dir == Dir::backward_data)
    return rank<cudnnConvolutionBwdDataAlgoPerf_t>(
        opt, d, workspace, [&](int* n) { return cudnnGetConvolutionBackwardDataAlgorithmMaxCount(h, n); },
        [&](int n, int* c, cudnnConvolutionBwdDataAlgoPerf_t* p) {
          return cudnnGetConvolutionBackwardDataAlgorithm_v7(h, d.w.get(), d.y.get(), d.conv.get(), d.x.get(), n, c,
                                                             p);
        },
        [&](int n, int* c, cudnnConvolutionBwdDataAlgoPerf_t* p, void* ws, size_t bytes) {
          return cudnnFindConvolutionBackwardDataAlgorithmEx(h, d.w.get(), b.in0, d.y.get(), b.in1, d.conv.get(),
                                                             d.x.get(), b.out, n, c, p, ws, bytes);
        },
        [&](cudnnConvolutionBwdDataAlgo_t a, size_t* s) {
          return cudnnGetConvolutionBackwardDataWorkspaceSize(h, d.w.get(), d.y.get(), d.conv.get(), d.x.get(), a, s);
        });
  return rank<cudnnConvolutionBwdFilterAlgoPerf_t>(
      opt, d, workspace, [&](int* n) { return cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(h, n); },
      [&](int n, int* c, cudnnConvolutionBwdFilterAlgoPerf_t* p) {
        return cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, d.x.get(), d.y.get(), d.conv.get(), d.w.get(), n, c,
                                                             p);
      },
      [&](int n, int* c, cudnnConvolutionBwdFilterAlgoPerf_t* p, void* ws, size_t bytes) {
        return cudnnFindConvolutionBackwardFilterAlgorithmEx(h, d.x.get(), b.in0, d.y.get(), b.in1, d.conv.get(),
                                                             d.w.get(), b.out, n, c, p, ws, bytes);
      },
      [&](cudnnConvolutionBwdFilterAlgo_t a, size_t* s) {
        return cudnnGetConvolutionBackwardFilterWorkspaceSize(h, d.x.get(), d.y.get(), d.conv.get(), d.w.get(), a, s);
      });
}

// One cached choice per problem: the geometry, the direction, the element type (an f32 and a bf16
// convolution of one shape run different kernels) and every option that changes the ranking.
using AlgoKey = std::array<int64_t, 19>;
struct AlgoCache {
  std::mutex mu;
  std::map<AlgoKey, ConvChoice> map;
  std::set<AlgoKey> fused_refused;  // problems cuDNN's fused forward did not run
};
AlgoCache& algo_cache() {
  static AlgoCache c;
  return c;
}
// d.type.tensor_ops: opt.allow_tf32 for f32; always true for bf16 (one entry whatever it says).
AlgoKey algo_key(Dir dir, const ConvGeom& g, const CudnnConvOptions& opt, const ConvType& t) {
  return {g.N, g.H, g.W, g.C, g.K, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, int64_t(dir), int64_t(t.data),
          t.tensor_ops, int64_t(opt.workspace_limit), opt.benchmark, opt.deterministic};
}

// Ranks the candidates of a problem once (cached), then runs `launch` with the current one,
// falling back to the next on failure (kernels/conv_algo.h); the cache keeps the one that ran.
// `launch(algo, workspace, bytes)` returns cuDNN's status.
template <class Launch>
void run_conv(Dir dir, const ConvGeom& g, const CudnnConvOptions& opt, ConvDescs& d, const ConvBuffers& b,
              const ConvWorkspaceFn& workspace, Launch launch) {
  const AlgoKey key = algo_key(dir, g, opt, d.type);
  AlgoCache& c = algo_cache();
  ConvChoice choice;
  bool found = false;
  {
    std::lock_guard<std::mutex> lock(c.mu);
    auto it = c.map.find(key);
    if (it != c.map.end()) choice = it->second, found = true;
  }
  if (!found) choice.candidates = rank(dir, opt, d, b, workspace);  // outside the lock
  const size_t before = choice.current;
  const bool is_bf16 = d.type.data == CUDNN_DATA_BFLOAT16;
  std::string what = std::string("conv2d (cuDNN) ") + dir_name(dir) + (is_bf16 ? " bf16" : "") + " of " +
                     geom_str(g) + " (workspace limit " + std::to_string(opt.workspace_limit >> 20) + " MiB" +
                     (d.type.tensor_ops ? "" : ", full FP32") + (opt.deterministic ? ", deterministic" : "") + ")";
  // cuDNN's bf16 tensor-core kernels want C and K multiples of 8 (Legacy API, Tensor Core
  // operations); where the ranking is empty for bf16, say so.
  if (is_bf16 && choice.candidates.empty() && (g.C % 8 != 0 || g.K % 8 != 0))
    what += " [bf16 with C = " + std::to_string(g.C) + ", K = " + std::to_string(g.K) +
            ": cuDNN's bf16 kernels want channel counts that are multiples of 8; pad the channels with zeros]";
  run_with_fallback(choice, what, [&](const ConvCandidate& a) -> std::string {
    CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv.get(), cudnnMathType_t(a.math)));
    void* ws = nullptr;
    try {
      if (a.workspace) ws = workspace(a.workspace);
    } catch (const std::exception& e) {
      return std::string("no workspace: ") + e.what();
    }
    const cudnnStatus_t st = launch(a.algo, ws, a.workspace);
    return st == CUDNN_STATUS_SUCCESS ? std::string() : std::string(cudnnGetErrorString(st));
  });
  if (!found || choice.current != before) {
    std::lock_guard<std::mutex> lock(c.mu);
    c.map[key] = choice;
  }
}

template <class T> constexpr cudnnDataType_t cudnn_data_type();
template <> constexpr cudnnDataType_t cudnn_data_type<float>() { return CUDNN_DATA_FLOAT; }
template <> constexpr cudnnDataType_t cudnn_data_type<bf16>() { return CUDNN_DATA_BFLOAT16; }

// The three directions, once for both element types. The scaling factors are float for both
// (cuDNN takes double ones only for double data).
template <class T>
ConvType checked_type(const char* fn, const CudnnConvOptions& opt) {
  if constexpr (std::is_same_v<T, bf16>) require_bf16_device(fn);
  return conv_type(cudnn_data_type<T>(), opt);
}

template <class T>
void forward(const char* fn, const T* x, const T* w, T* y, const ConvGeom& g, const CudnnConvOptions& opt,
             const ConvWorkspaceFn& workspace) {
  if (g.out_pixels() == 0 || g.K == 0) return;
  ConvDescs d(g, checked_type<T>(fn, opt));
  const float one = 1.f, zero = 0.f;
  run_conv(Dir::forward, g, opt, d, {x, w, y}, workspace, [&](int algo, void* ws, size_t bytes) {
    count_launch();
    return cudnnConvolutionForward(handle(), &one, d.x.get(), x, d.w.get(), w, d.conv.get(),
                                   cudnnConvolutionFwdAlgo_t(algo), ws, bytes, &zero, d.y.get(), y);
  });
  sync_if_debug();
}

// conv + bias + ReLU in one cuDNN call (see conv_cudnn.h); false: not run, the caller falls back.
bool forward_bias_relu(const float* x, const float* w, const float* bias, float* y, const ConvGeom& g,
                       const CudnnConvOptions& opt, const ConvWorkspaceFn& workspace) {
  if (g.out_pixels() == 0 || g.K == 0) return true;
  ConvDescs d(g, checked_type<float>("conv2d_forward_bias_relu_f32", opt));
  const AlgoKey key = algo_key(Dir::forward_bias_relu, g, opt, d.type);
  AlgoCache& c = algo_cache();
  auto refuse = [&] {
    std::lock_guard<std::mutex> lock(c.mu);
    c.fused_refused.insert(key);
    return false;
  };
  {
    std::lock_guard<std::mutex> lock(c.mu);
    if (c.fused_refused.count(key)) return false;
  }
  const cudnnConvolutionFwdAlgo_t algo = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM;
  CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv.get(), ranking_math(d.type)));
  size_t bytes = 0;
  if (cudnnGetConvolutionForwardWorkspaceSize(handle(), d.x.get(), d.w.get(), d.conv.get(), d.y.get(), algo,
                                              &bytes) != CUDNN_STATUS_SUCCESS ||
      bytes > opt.workspace_limit)
    return refuse();
  void* ws = nullptr;
  try {
    if (bytes) ws = workspace(bytes);
  } catch (const std::exception&) {  // out of memory now, perhaps not later: not cached
    return false;
  }
  TensorDesc b;
  CUDNN_CHECK(cudnnSetTensor4dDescriptor(b.get(), CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, 1, int(g.K), 1, 1));
  ActivationDesc act;
  CUDNN_CHECK(cudnnSetActivationDescriptor(act.get(), CUDNN_ACTIVATION_RELU, CUDNN_PROPAGATE_NAN, 0.0));
  const float one = 1.f, zero = 0.f;
  const cudnnStatus_t st =
      cudnnConvolutionBiasActivationForward(handle(), &one, d.x.get(), x, d.w.get(), w, d.conv.get(), algo, ws, bytes,
                                            &zero, d.y.get(), y, b.get(), bias, act.get(), d.y.get(), y);
  if (st != CUDNN_STATUS_SUCCESS) return refuse();
  count_launch();
  sync_if_debug();
  return true;
}

template <class T>
void backward_data(const char* fn, const T* dy, const T* w, T* dx, const ConvGeom& g, const CudnnConvOptions& opt,
                   const ConvWorkspaceFn& workspace) {
  if (g.N * g.H * g.W * g.C == 0) return;
  ConvDescs d(g, checked_type<T>(fn, opt));
  const float one = 1.f, zero = 0.f;
  run_conv(Dir::backward_data, g, opt, d, {w, dy, dx}, workspace, [&](int algo, void* ws, size_t bytes) {
    count_launch();
    return cudnnConvolutionBackwardData(handle(), &one, d.w.get(), w, d.y.get(), dy, d.conv.get(),
                                        cudnnConvolutionBwdDataAlgo_t(algo), ws, bytes, &zero, d.x.get(), dx);
  });
  sync_if_debug();
}

template <class T>
void backward_filter(const char* fn, const T* x, const T* dy, T* dw, const ConvGeom& g, const CudnnConvOptions& opt,
                     const ConvWorkspaceFn& workspace) {
  if (g.K * g.taps() == 0) return;
  if (g.out_pixels() == 0) {  // an empty batch: the gradient is zero (cuDNN rejects N = 0)
    CUDA_CHECK(cudaMemset(dw, 0, size_t(g.K * g.taps()) * sizeof(T)));  // 0x0000 is +0 in bf16 too
    return;
  }
  ConvDescs d(g, checked_type<T>(fn, opt));
  const float one = 1.f, zero = 0.f;
  run_conv(Dir::backward_filter, g, opt, d, {x, dy, dw}, workspace, [&](int algo, void* ws, size_t bytes) {
    count_launch();
    return cudnnConvolutionBackwardFilter(handle(), &one, d.x.get(), x, d.y.get(), dy, d.conv.get(),
                                          cudnnConvolutionBwdFilterAlgo_t(algo), ws, bytes, &zero, d.w.get(), dw);
  });
  sync_if_debug();
}

}  // namespace

void conv2d_forward_f32(const float* x, const float* w, float* y, const ConvGeom& g, const CudnnConvOptions& opt,
                        const ConvWorkspaceFn& workspace) {
  forward("conv2d_forward_f32", x, w, y, g, opt, workspace);
}
bool conv2d_forward_bias_relu_f32(const float* x, const float* w, const float* bias, float* y, const ConvGeom& g,
                                  const CudnnConvOptions& opt, const ConvWorkspaceFn& workspace) {
  return forward_bias_relu(x, w, bias, y, g, opt, workspace);
}
void conv2d_backward_data_f32(const float* dy, const float* w, float* dx, const ConvGeom& g,
                              const CudnnConvOptions& opt, const ConvWorkspaceFn& workspace) {
  backward_data("conv2d_backward_data_f32", dy, w, dx, g, opt, workspace);
}
void conv2d_backward_filter_f32(const float* x, const float* dy, float* dw, const ConvGeom& g,
                                const CudnnConvOptions& opt, const ConvWorkspaceFn& workspace) {
  backward_filter("conv2d_backward_filter_f32", x, dy, dw, g, opt, workspace);
}

void conv2d_forward_bf16(const bf16* x, const bf16* w, bf16* y, const ConvGeom& g, const CudnnConvOptions& opt,
                         const ConvWorkspaceFn& workspace) {
  forward("conv2d_forward_bf16", x, w, y, g, opt, workspace);
}
void conv2d_backward_data_bf16(const bf16* dy, const bf16* w, bf16* dx, const ConvGeom& g,
                               const CudnnConvOptions& opt, const ConvWorkspaceFn& workspace) {
  backward_data("conv2d_backward_data_bf16", dy, w, dx, g, opt, workspace);
}
void conv2d_backward_filter_bf16(const bf16* x, const bf16* dy, bf16* dw, const ConvGeom& g,
                                 const CudnnConvOptions& opt, const ConvWorkspaceFn& workspace) {
  backward_filter("conv2d_backward_filter_bf16", x, dy, dw, g, opt, workspace);
}

size_t conv_algo_cache_size() {
  std::lock_guard<std::mutex> lock(algo_cache().mu);
  return algo_cache().map.size();
}
void conv_algo_cache_clear() {
  std::lock_guard<std::mutex> lock(algo_cache().mu);
  algo_cache().map.clear();
  algo_cache().fused_refused.clear();
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
bool conv2d_forward_bias_relu_f32(const float*, const float*, const float*, float*, const ConvGeom&,
                                  const CudnnConvOptions&, const ConvWorkspaceFn&) {
  not_emulated("conv2d_forward_bias_relu_f32");
}
void conv2d_backward_data_f32(const float*, const float*, float*, const ConvGeom&, const CudnnConvOptions&,
                              const ConvWorkspaceFn&) {
  not_emulated("conv2d_backward_data_f32");
}
void conv2d_backward_filter_f32(const float*, const float*, float*, const ConvGeom&, const CudnnConvOptions&,
                                const ConvWorkspaceFn&) {
  not_emulated("conv2d_backward_filter_f32");
}
void conv2d_forward_bf16(const bf16*, const bf16*, bf16*, const ConvGeom&, const CudnnConvOptions&,
                         const ConvWorkspaceFn&) {
  not_emulated("conv2d_forward_bf16");
}
void conv2d_backward_data_bf16(const bf16*, const bf16*, bf16*, const ConvGeom&, const CudnnConvOptions&,
                               const ConvWorkspaceFn&) {
  not_emulated("conv2d_backward_data_bf16");
}
void conv2d_backward_filter_bf16(const bf16*, const bf16*, bf16*, const ConvGeom&, const CudnnConvOptions&,
                                 const ConvWorkspaceFn&) {
  not_emulated("conv2d_backward_filter_bf16");
}
size_t conv_algo_cache_size() { return 0; }
void conv_algo_cache_clear() {}

#endif

}  // namespace kernels::KERNELS_NS
