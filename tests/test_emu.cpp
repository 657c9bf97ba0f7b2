// Tests of the emulator itself: exact results for the CUDA idioms our kernels use, and
// the rule violations it must catch.
#include <doctest/doctest.h>

#include <numeric>
#include <string>
#include <vector>

#include "kernels/cuda/compat.h"

// Plain CUDA kernels ("extern __shared__" dynamic shared memory, global namespace), included
// unchanged; the emulator only needs their extern shared arrays named once.
#include "emu_foreign/reverse_sum.cu"
EMU_EXTERN_SHARED(s_rev)
EMU_EXTERN_SHARED(s_sum)

namespace {

#if defined(__SANITIZE_THREAD__)
constexpr bool kTsan = true;  // the ThreadSanitizer flavour: shared-memory races are errors
#else
constexpr bool kTsan = false;
#endif

struct OrderGuard {
  explicit OrderGuard(emu::FiberOrder o) { emu::set_fiber_order(o); }
  ~OrderGuard() { emu::set_fiber_order(emu::FiberOrder::forward); }
};

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

}  // namespace

TEST_CASE("emu: block reduction and warp-shuffle reduction are exact, both fiber orders") {
  for (auto order : {emu::FiberOrder::forward, emu::FiberOrder::reverse}) {
    OrderGuard g(order);
    for (int n : {1, 255, 256, 1000, 4097}) {
      std::vector<int> in(n);
      for (int i = 0; i < n; ++i) in[i] = (i * 37) % 101 - 50;
      const long expect = std::accumulate(in.begin(), in.end(), 0L);
      int blocks = (n + 255) / 256;
      std::vector<int> part(blocks, -7);
      CHECK(launch(block_sum, dim3(blocks), dim3(256), 0, nullptr, in.data(), part.data(), n) == cudaSuccess);
      CHECK(std::accumulate(part.begin(), part.end(), 0L) == expect);
      int total = 0;
      launch(warp_sum, dim3((n + 95) / 96), dim3(96), 0, nullptr, in.data(), &total, n);
      CHECK(total == expect);
    }
  }
}

TEST_CASE("emu: histogram with atomics and dynamic-shared scan are exact") {
  const int n = 10007, nb = 17;
  std::vector<int> in(n);
  for (int i = 0; i < n; ++i) in[i] = i * 7 + 3;
  std::vector<unsigned> bins(nb, 0), expect(nb, 0);
  for (int v : in) expect[v % nb]++;
  launch(histogram, dim3(5), dim3(128), 0, nullptr, in.data(), bins.data(), n, nb);
  CHECK(bins == expect);

  for (auto order : {emu::FiberOrder::forward, emu::FiberOrder::reverse}) {
    OrderGuard g(order);
    const int m = 200;
    std::vector<int> x(m), y(m, 0);
    for (int i = 0; i < m; ++i) x[i] = i % 5 - 1;
    launch(block_scan, dim3(1), dim3(256), 2 * 256 * sizeof(int), nullptr, x.data(), y.data(), m);
    int run = 0;
    for (int i = 0; i < m; ++i) { run += x[i]; REQUIRE(y[i] == run); }
  }
}

TEST_CASE("emu: votes, xor shuffles with width, and 2-D coordinates") {
  std::vector<int> p(32, 0);
  p[3] = p[17] = 1;
  unsigned ballot = 0; int any = -1, all = -1;
  launch(votes, dim3(1), dim3(32), 0, nullptr, p.data(), &ballot, &any, &all);
  CHECK(ballot == ((1u << 3) | (1u << 17)));
  CHECK(any == 1);
  CHECK(all == 0);

  std::vector<float> in(64), out(64);
  for (int i = 0; i < 64; ++i) in[i] = float(i);
  launch(xor_and_width, dim3(1), dim3(64), 0, nullptr, in.data(), out.data());
  for (int i = 0; i < 64; ++i) {
    int g0 = i / 8 * 8;
    CHECK(out[i] == doctest::Approx(8 * g0 + 28));
  }

  std::vector<int> c(6 * 40, -1);
  launch(coordinates, dim3(5, 2), dim3(8, 3), 0, nullptr, c.data());
  for (int y = 0; y < 6; ++y)
    for (int x = 0; x < 40; ++x) REQUIRE(c[y * 40 + x] == y * 1000 + x);
}

TEST_CASE("emu: a missing __syncthreads shows up in one of the two fiber orders") {
  const int blocks = 3, t = 64, n = blocks * t;
  std::vector<int> in(n), expect(n);
  for (int i = 0; i < n; ++i) in[i] = i + 1;
  for (int b = 0; b < blocks; ++b)
    for (int i = 0; i < t; ++i) expect[b * t + i] = in[b * t + (i + 1) % t];
  int wrong_orders = 0;
  for (auto order : {emu::FiberOrder::forward, emu::FiberOrder::reverse}) {
    OrderGuard g(order);
    std::vector<int> out(n, 0);
    if (kTsan) {  // the race detector names it instead
      CHECK_THROWS_WITH_AS(launch(neighbour_no_sync, dim3(blocks), dim3(t), 0, nullptr, in.data(), out.data(), n),
                           doctest::Contains("data race on byte offset"), emu::Error);
      ++wrong_orders;
      continue;
    }
    launch(neighbour_no_sync, dim3(blocks), dim3(t), 0, nullptr, in.data(), out.data(), n);
    wrong_orders += out != expect;
  }
  CHECK(wrong_orders >= 1);
}

TEST_CASE("emu: rule violations raise clear errors") {
  std::vector<int> out(64, 0);
  CHECK_THROWS_WITH_AS(launch(divergent_barrier, dim3(1), dim3(32), 0, nullptr, out.data()),
                       doctest::Contains("divergent __syncthreads: 16 of 32 threads"), emu::Error);
  CHECK_THROWS_WITH_AS(launch(shuffle_outside_mask, dim3(1), dim3(32), 0, nullptr, out.data()),
                       doctest::Contains("which excludes it"), emu::Error);
  CHECK_THROWS_WITH_AS(launch(coordinates, dim3(1), dim3(2048), 0, nullptr, out.data()),
                       doctest::Contains("not 1..1024 threads"), emu::Error);
  std::vector<float> f(32);
  CHECK_THROWS_WITH_AS(launch(read_dynamic_unwritten, dim3(1), dim3(32), 64 * 1024, nullptr, f.data()),
                       doctest::Contains("exceed the 49152-byte limit"), emu::Error);
  // Unwritten dynamic shared memory reads as NaN, never as a plausible zero.
  launch(read_dynamic_unwritten, dim3(1), dim3(32), 32 * sizeof(float), nullptr, f.data());
  CHECK(std::isnan(f[0]));
  CHECK(std::isnan(f[31]));
}

TEST_CASE("emu: plain CUDA with extern __shared__ runs unchanged, both fiber orders") {
  for (auto order : {emu::FiberOrder::forward, emu::FiberOrder::reverse}) {
    OrderGuard g(order);
    for (int n : {1, 100, 128, 1000}) {
      CAPTURE(n);
      const int bs = 128, blocks = (n + bs - 1) / bs;
      std::vector<int> in(n), out(n, -1), expect(n);
      for (int i = 0; i < n; ++i) in[i] = i * 3 - 7;
      for (int b = 0; b < blocks; ++b) {
        int base = b * bs, len = std::min(bs, n - base);
        for (int t = 0; t < len; ++t) expect[base + t] = in[base + len - 1 - t];
      }
      REQUIRE(launch(foreign_reverse, dim3(blocks), dim3(bs), bs * sizeof(int), nullptr, in.data(), out.data(), n) ==
              cudaSuccess);
      CHECK(out == expect);

      std::vector<float> x(n), part(blocks, -1.f);
      for (int i = 0; i < n; ++i) x[i] = 0.25f * float(i % 13) - 1.f;
      REQUIRE(launch(foreign_sum, dim3(blocks), dim3(bs), bs * sizeof(float), nullptr, x.data(), part.data(), n) ==
              cudaSuccess);
      for (int b = 0; b < blocks; ++b) {
        double ref = 0;
        for (int i = b * bs; i < std::min(n, (b + 1) * bs); ++i) ref += x[i];
        CHECK(part[b] == doctest::Approx(ref).epsilon(1e-5));
      }
    }
  }
  // The extern array is the block's dynamic shared memory, as dynamic_shared<T>() sees it.
  extern __shared__ int s_rev[];
  extern __shared__ float s_sum[];
  CHECK(static_cast<void*>(s_rev) == static_cast<void*>(dynamic_shared<int>()));
  CHECK(static_cast<void*>(s_sum) == emu::dynamic_shared_ptr());
}

namespace {
// Runs `f` (a launch) and returns the emu::Error message it raised, or "" if none.
template <class F> std::string launch_error(F f) {
  try {
    f();
  } catch (const emu::Error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("emu: launches a GPU rejects raise errors naming the kernel and the launch site") {
  std::vector<int> out(64, 0);
  int* o = out.data();
  const std::string here = std::string(__FILE__).substr(std::string(__FILE__).find_last_of('/') + 1) + ":";
  auto line_of = [&](int l) { return here + std::to_string(l); };

  int l = __LINE__ + 1;
  std::string e = launch_error([&] { launch(coordinates, dim3(1), dim3(1025), 0, nullptr, o); });
  CHECK(e.find("'(anonymous namespace)::coordinates(int*)'") != std::string::npos);
  CHECK(e.find(line_of(l)) != std::string::npos);
  CHECK(e.find("not 1..1024 threads") != std::string::npos);
  CHECK(launch_error([&] { launch(coordinates, dim3(1), dim3(32, 33), 0, nullptr, o); }).find("1..1024") !=
        std::string::npos);
  CHECK(launch_error([&] { launch(coordinates, dim3(1), dim3(1, 1, 65), 0, nullptr, o); }).find("1..1024") !=
        std::string::npos);

  l = __LINE__ + 1;
  e = launch_error([&] { launch(coordinates, dim3(1, 65536), dim3(1), 0, nullptr, o); });
  CHECK(e.find("coordinates") != std::string::npos);
  CHECK(e.find(line_of(l)) != std::string::npos);
  CHECK(e.find("grid (1,65536,1) is out of range") != std::string::npos);
  CHECK(launch_error([&] { launch(coordinates, dim3(1, 1, 65536), dim3(1), 0, nullptr, o); }).find("out of range") !=
        std::string::npos);
  CHECK(launch_error([&] { launch(coordinates, dim3(2147483648u), dim3(1), 0, nullptr, o); }).find("out of range") !=
        std::string::npos);
  // The largest legal grid.y and grid.z run.
  std::vector<int> big(65535, 0);
  CHECK(launch_error([&] { launch(coordinates, dim3(1, 65535), dim3(1), 0, nullptr, big.data()); }) == "");

  // Dynamic shared memory: 48 KB without opting in, 227 KB with.
  const size_t k48 = 48 * 1024, k227 = 227 * 1024;
  CHECK(launch_error([&] { launch(fill_dynamic, dim3(1), dim3(64), k48, nullptr, o, int(k48 / 4)); }) == "");
  CHECK(out[0] == int(k48 / 4) - 1);
  l = __LINE__ + 1;
  e = launch_error([&] { launch(fill_dynamic, dim3(1), dim3(64), k48 + 4, nullptr, o, int(k48 / 4) + 1); });
  CHECK(e.find("fill_dynamic(int*, int)") != std::string::npos);
  CHECK(e.find(line_of(l)) != std::string::npos);
  CHECK(e.find("exceed the 49152-byte limit (opt in with allow_dynamic_shared)") != std::string::npos);

  CHECK(allow_dynamic_shared(fill_dynamic_opt_in, k227 + 1) == cudaErrorInvalidValue);  // as on an H100
  CHECK(launch_error([&] { launch(fill_dynamic_opt_in, dim3(1), dim3(64), k48 + 4, nullptr, o, 10); }).find(
            "49152-byte limit") != std::string::npos);
  REQUIRE(allow_dynamic_shared(fill_dynamic_opt_in, k227) == cudaSuccess);
  CHECK(launch_error([&] { launch(fill_dynamic_opt_in, dim3(2), dim3(128), k227, nullptr, o, int(k227 / 4)); }) == "");
  CHECK(out[0] == int(k227 / 4) - 1);
  l = __LINE__ + 1;
  e = launch_error([&] { launch(fill_dynamic_opt_in, dim3(1), dim3(64), k227 + 16, nullptr, o, 1); });
  CHECK(e.find(line_of(l)) != std::string::npos);
  CHECK(e.find("exceed the 232448-byte limit of the device, even with allow_dynamic_shared") != std::string::npos);
}

// Needs the ThreadSanitizer flavour (g++ -fsanitize=thread, see emu.cpp): no access hook on
// plain __shared__ arrays exists in the normal build. Skipped there.
TEST_CASE("emu: a shared-memory race is reported with the offset and both threads (TSan flavour)" *
          doctest::skip(!kTsan)) {
  std::vector<int> out(128, -1);
  for (auto order : {emu::FiberOrder::forward, emu::FiberOrder::reverse}) {
    OrderGuard g(order);
    CAPTURE(int(order));
    std::string e = launch_error([&] { launch(race_missing_barrier, dim3(2), dim3(64), 0, nullptr, out.data()); });
    CHECK(e.find("kernel '(anonymous namespace)::race_missing_barrier(int*)'") != std::string::npos);
    CHECK(e.find("test_emu.cpp:") != std::string::npos);
    CHECK(e.find("data race on byte offset ") != std::string::npos);
    CHECK(e.find("race_missing_barrier(int*)::slots'") != std::string::npos);
    // Threads t and t+1 meet on slot t+1: byte offset 4(t+1).
    bool pair_named = false;
    for (unsigned t = 0; t + 1 < 64; ++t) {
      std::string a = "thread (" + std::to_string(t) + ",0,0)", b = "thread (" + std::to_string(t + 1) + ",0,0)";
      std::string off = "byte offset " + std::to_string(4 * (t + 1)) + " of";
      if (e.find(a) != std::string::npos && e.find(b) != std::string::npos && e.find(off) != std::string::npos)
        pair_named = true;
    }
    CHECK_MESSAGE(pair_named, e);
  }
}

TEST_CASE("emu: reading a neighbour's slot after __syncthreads is not a race, both fiber orders") {
  for (auto order : {emu::FiberOrder::forward, emu::FiberOrder::reverse}) {
    OrderGuard g(order);
    for (unsigned bs : {1u, 33u, 128u}) {
      std::vector<int> out(bs, -1);
      CHECK(launch_error([&] { launch(neighbour_after_barrier, dim3(3), dim3(bs), 0, nullptr, out.data()); }) == "");
      for (unsigned t = 0; t < bs; ++t) REQUIRE(out[t] == int((t + 1) % bs) * 2);
    }
  }
}
