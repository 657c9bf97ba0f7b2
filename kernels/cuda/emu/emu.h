// CUDA emulation on the CPU: runs __global__ functions with CUDA semantics under g++.
//
// Each CUDA thread is a fiber (Boost.Context fcontext, 256 KB stack with a guard page).
// A block runs on one OS thread; blocks run one after another. Fibers switch only at
// __syncthreads() and at warp intrinsics, so a kernel that forgets a barrier produces a
// different result in forward and reverse fiber order (emu::set_fiber_order), which is
// how the tests catch it. Built with -fsanitize=thread, the emulator also turns each data
// race (shared or global memory, no __syncthreads between the two accesses) into an
// emu::Error naming the kernel, the byte offset and both threads, in any fiber order (see
// emu.cpp); the normal build has no hook on plain __shared__ array accesses, so it cannot.
// See ../shared/KERNEL_EMULATION.md for the design and numbers.
//
// A kernel file never includes this header directly: it includes kernels/cuda/compat.h.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <source_location>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

// ---- qualifiers -------------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
// thread_local, not "static thread_local": at block scope thread_local alone gives the same
// per-OS-thread static storage (one copy per running block), and "extern __shared__ T x[];"
// then still parses (as an extern thread_local declaration; see "dynamic shared memory").
#define __shared__ thread_local
#define __constant__ static
#define __restrict__ __restrict

// ---- runtime types ----------------------------------------------------------------------
struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
using uint3 = dim3;
// CUDA's 16-byte vector type (vector_types.h): 16-byte aligned, so a float4 load or store
// through a pointer that is not (a bug on the GPU) is one here too (UBSan in SANITIZE=1 builds).
struct alignas(16) float4 {
  float x, y, z, w;
};
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }
enum cudaError_t { cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaErrorMemoryAllocation = 2,
                   cudaErrorInvalidConfiguration = 9, cudaErrorLaunchFailure = 719 };
using cudaStream_t = struct CUstream_st*;
const char* cudaGetErrorString(cudaError_t e);
inline cudaError_t cudaGetLastError() { return cudaSuccess; }

inline thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;
constexpr int warpSize = 32;

namespace emu {

// Raised (out of launch(), never from inside a fiber) when a kernel breaks a CUDA rule:
// divergent or deadlocked barriers, a lane outside a shuffle mask, bad launch bounds.
struct Error : std::runtime_error { using std::runtime_error::runtime_error; };

enum class FiberOrder { forward, reverse };
// True in the race-detecting build (emu.cpp compiled with -fsanitize=thread: c3tests-race),
// where a data race between two barriers is an emu::Error whatever the fiber order.
bool race_detector();
// Bytes of the kernel's own static __shared__ arrays (0 when none or not found).
size_t static_shared_bytes(const void* kernel);
void set_fiber_order(FiberOrder o);
FiberOrder fiber_order();

// Shared memory limits of sm_90 (H100): 48 KB per block without opting in, 227 KB with
// cudaFuncSetAttribute(cudaFuncAttributeMaxDynamicSharedMemorySize) (allow_dynamic_shared).
constexpr size_t kDefaultSharedLimit = 48 * 1024;
constexpr size_t kOptInSharedLimit = 227 * 1024;

// Everything the scheduler needs to run one kernel: a type-erased body per thread.
struct LaunchSpec {
  dim3 grid, block;
  size_t dynamic_shared_bytes = 0;
  size_t max_dynamic_shared_bytes = kDefaultSharedLimit;
  std::function<void()> body;  // calls the kernel with its arguments
  const char* name = nullptr;    // null: looked up from `kernel` in the symbol table
  const void* kernel = nullptr;  // the __global__ function, for its name in messages
  std::source_location site;     // where launch() was called
};
void run(const LaunchSpec& spec);  // throws emu::Error
// The (demangled) name of a function from the executable's symbol table, or its address.
std::string function_name(const void* fn);

// launch()'s grid argument: anything a dim3 converts from, plus the call site (the default
// argument is evaluated where launch() is called), for the launch errors.
struct GridArg {
  dim3 dims;
  std::source_location site;
  template <class G>
    requires std::is_convertible_v<G, dim3>
  GridArg(G g, std::source_location s = std::source_location::current()) : dims(g), site(s) {}
};

// Called by the intrinsics below; implemented in emu.cpp.
void syncthreads(const char* file, int line);
void* dynamic_shared_ptr();
// Generic warp exchange: every lane in `mask` deposits `value`; returns what `pick` selects.
// pick(lane, values[32], present_mask) -> value for that lane.
uint64_t warp_exchange(unsigned mask, uint64_t value, int kind, int arg, int width,
                       const char* file, int line);
enum WarpKind { kShflIdx, kShflDown, kShflUp, kShflXor, kBallot, kAny, kAll, kSyncWarp };

// Per-kernel attribute for dynamic shared memory above 48 KB (the GPU needs
// cudaFuncSetAttribute; the emulator only records the limit).
void set_max_dynamic_shared(const void* kernel, size_t bytes);
size_t max_dynamic_shared(const void* kernel);

}  // namespace emu

#define __syncthreads() ::emu::syncthreads(__FILE__, __LINE__)

// ---- warp intrinsics ------------------------------------------------------------------
namespace emu::detail {
template <class T> uint64_t to_bits(T v) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>);
  uint64_t b = 0; std::memcpy(&b, &v, sizeof(T)); return b;
}
template <class T> T from_bits(uint64_t b) { T v; std::memcpy(&v, &b, sizeof(T)); return v; }
}  // namespace emu::detail

template <class T> T emu_shfl_sync(unsigned m, T v, int src, int w, const char* f, int l) {
  return emu::detail::from_bits<T>(emu::warp_exchange(m, emu::detail::to_bits(v), emu::kShflIdx, src, w, f, l));
}
template <class T> T emu_shfl_down_sync(unsigned m, T v, int d, int w, const char* f, int l) {
  return emu::detail::from_bits<T>(emu::warp_exchange(m, emu::detail::to_bits(v), emu::kShflDown, d, w, f, l));
}
template <class T> T emu_shfl_up_sync(unsigned m, T v, int d, int w, const char* f, int l) {
  return emu::detail::from_bits<T>(emu::warp_exchange(m, emu::detail::to_bits(v), emu::kShflUp, d, w, f, l));
}
template <class T> T emu_shfl_xor_sync(unsigned m, T v, int x, int w, const char* f, int l) {
  return emu::detail::from_bits<T>(emu::warp_exchange(m, emu::detail::to_bits(v), emu::kShflXor, x, w, f, l));
}
// Optional width argument, as in CUDA (default warpSize).
#define __shfl_sync(m, v, ...) emu_shfl_sync(m, v, EMU_ARG1(__VA_ARGS__), EMU_W2(__VA_ARGS__, 32), __FILE__, __LINE__)
#define __shfl_down_sync(m, v, ...) emu_shfl_down_sync(m, v, EMU_ARG1(__VA_ARGS__), EMU_W2(__VA_ARGS__, 32), __FILE__, __LINE__)
#define __shfl_up_sync(m, v, ...) emu_shfl_up_sync(m, v, EMU_ARG1(__VA_ARGS__), EMU_W2(__VA_ARGS__, 32), __FILE__, __LINE__)
#define __shfl_xor_sync(m, v, ...) emu_shfl_xor_sync(m, v, EMU_ARG1(__VA_ARGS__), EMU_W2(__VA_ARGS__, 32), __FILE__, __LINE__)
#define EMU_ARG1(a, ...) a
#define EMU_W2(a, w, ...) w
#define __ballot_sync(m, p) \
  static_cast<unsigned>(::emu::warp_exchange(m, (p) ? 1u : 0u, ::emu::kBallot, 0, 32, __FILE__, __LINE__))
#define __any_sync(m, p) \
  static_cast<int>(::emu::warp_exchange(m, (p) ? 1u : 0u, ::emu::kAny, 0, 32, __FILE__, __LINE__))
#define __all_sync(m, p) \
  static_cast<int>(::emu::warp_exchange(m, (p) ? 1u : 0u, ::emu::kAll, 0, 32, __FILE__, __LINE__))
#define __syncwarp(...) ((void)::emu::warp_exchange(EMU_MASK(__VA_ARGS__ __VA_OPT__(,) 0xffffffffu), 0, ::emu::kSyncWarp, 0, 32, __FILE__, __LINE__))
#define EMU_MASK(m, ...) m

// ---- atomics (GCC builtins; float and double through a CAS loop) -------------------------
template <class T> using emu_nd = std::type_identity_t<T>;  // non-deduced value parameter
template <class T> T emu_atomic_rmw(T* p, std::function<T(T)> f) {
  if constexpr (std::is_integral_v<T>) {
    T old = __atomic_load_n(p, __ATOMIC_RELAXED);
    while (!__atomic_compare_exchange_n(p, &old, f(old), true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {}
    return old;
  } else {
    using U = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
    U* q = reinterpret_cast<U*>(p);
    U old = __atomic_load_n(q, __ATOMIC_RELAXED);
    for (;;) {
      T ov; std::memcpy(&ov, &old, sizeof(T));
      T nv = f(ov); U nb; std::memcpy(&nb, &nv, sizeof(T));
      if (__atomic_compare_exchange_n(q, &old, nb, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) return ov;
    }
  }
}
template <class T> T atomicAdd(T* p, emu_nd<T> v) {
  if constexpr (std::is_integral_v<T>) return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
  else return emu_atomic_rmw<T>(p, [v](T o) { return o + v; });
}
template <class T> T atomicSub(T* p, emu_nd<T> v) { return __atomic_fetch_sub(p, v, __ATOMIC_RELAXED); }
template <class T> T atomicMax(T* p, emu_nd<T> v) { return emu_atomic_rmw<T>(p, [v](T o) { return o > v ? o : v; }); }
template <class T> T atomicMin(T* p, emu_nd<T> v) { return emu_atomic_rmw<T>(p, [v](T o) { return o < v ? o : v; }); }
template <class T> T atomicExch(T* p, emu_nd<T> v) { return emu_atomic_rmw<T>(p, [v](T) { return v; }); }
template <class T> T atomicCAS(T* p, emu_nd<T> cmp, emu_nd<T> v) {
  T expected = cmp;
  __atomic_compare_exchange_n(p, &expected, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
  return expected;
}
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

// ---- math: fast intrinsics map to precise libm -----------------------------------------
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
inline float __saturatef(float x) { return x < 0.f ? 0.f : (x > 1.f ? 1.f : x); }
inline int __float2int_rd(float x) { return static_cast<int>(std::floor(x)); }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __ffs(unsigned x) { return __builtin_ffs(static_cast<int>(x)); }
inline int __clz(unsigned x) { return x ? __builtin_clz(x) : 32; }
inline float __ldg(const float* p) { return *p; }
template <class T> inline T __ldg(const T* p) { return *p; }
// CUDA's device min/max overloads (global namespace, as in device code).
#define EMU_MINMAX(T) \
  inline T min(T a, T b) { return a < b ? a : b; } \
  inline T max(T a, T b) { return a > b ? a : b; }
EMU_MINMAX(int) EMU_MINMAX(unsigned) EMU_MINMAX(long long) EMU_MINMAX(unsigned long long)
EMU_MINMAX(long) EMU_MINMAX(unsigned long) EMU_MINMAX(float) EMU_MINMAX(double)
#undef EMU_MINMAX

// ---- dynamic shared memory --------------------------------------------------------------
template <class T> T* dynamic_shared() { return static_cast<T*>(emu::dynamic_shared_ptr()); }

// Standard CUDA's "extern __shared__ T name[];" compiles unchanged: it is an extern
// thread_local array, which the build turns into the block's dynamic shared memory. After g++
// compiles a .cu file for emulation, the Makefile renames each undefined thread-local symbol
// of the object (only such declarations make one) to emu_dynamic_smem, a 227 KB thread_local
// buffer in emu.cpp: the same memory dynamic_shared<T>() returns, filled with 0xFF per block.

// ---- launch ------------------------------------------------------------------------------
// launch(kernel, grid, block, shmem, stream, args...): the one way kernels are started.
// A launch the GPU would reject (block over 1024 threads, grid.y/z over 65535, grid.x over
// 2^31-1, dynamic shared memory over the kernel's limit) throws emu::Error naming the kernel
// and this call's file:line. The kernel's static __shared__ arrays (its own, read from the
// executable's symbol table; not those of __device__ functions it calls) count against the
// same limits as on a GPU: static + dynamic <= 48 KB, or <= 227 KB when opted in.
template <class... KArgs, class... Args>
cudaError_t launch(void (*kernel)(KArgs...), emu::GridArg grid, dim3 block, size_t shmem, cudaStream_t,
                   Args&&... args) {
  static_assert(sizeof...(KArgs) == sizeof...(Args), "launch: wrong number of kernel arguments");
  std::tuple<std::decay_t<KArgs>...> packed(static_cast<KArgs>(std::forward<Args>(args))...);
  emu::LaunchSpec spec;
  spec.grid = grid.dims; spec.block = block; spec.dynamic_shared_bytes = shmem;
  spec.kernel = reinterpret_cast<const void*>(kernel);
  spec.site = grid.site;
  spec.max_dynamic_shared_bytes = emu::max_dynamic_shared(spec.kernel);
  spec.body = [&] { std::apply(kernel, packed); };
  emu::run(spec);
  return cudaSuccess;
}
// cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes): as on an
// H100, more than 227 KB minus the kernel's static __shared__ bytes is refused
// (cudaErrorInvalidValue) and the old limit stays.
template <class... KArgs>
cudaError_t allow_dynamic_shared(void (*kernel)(KArgs...), size_t bytes) {
  const void* k = reinterpret_cast<const void*>(kernel);
  if (bytes + emu::static_shared_bytes(k) > emu::kOptInSharedLimit) return cudaErrorInvalidValue;
  emu::set_max_dynamic_shared(k, bytes);
  return cudaSuccess;
}
