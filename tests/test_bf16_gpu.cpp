// bf16 convolutions (cuDNN) against the CPU f32 kernels on the same bf16-rounded inputs, at
// the kernel level (kernels/cuda/conv_cudnn.h): forward, backward data and backward filter over
// dilation, stride 2, 1x1, 7x7 and odd channel counts; the algorithm cache keyed by element
// type; the launch count. GPU cases are in the doctest suite "gpu"
// (make gpu-check runs it); here only the emulated entry points' refusal runs.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "kernels/bf16_math.h"
#include "kernels/cpu/conv.h"
#include "kernels/cuda/conv_cudnn.h"
#include "kernels/launch_counter.h"
#include "tests/helpers.h"

using namespace c3test;
using kernels::bf16;

TEST_CASE("bf16 cuDNN: the emulated entry points refuse to run") {
  const kernels::ConvGeom g = kernels::make_conv_geom(1, 3, 3, 1, 1, 2, 2, 1, 1, 0, 0, 1, 1);
  std::vector<bf16> x(9), w(4), y(4);
  auto ws = [](size_t) -> void* { return nullptr; };
  CHECK_THROWS_WITH(kernels::emu::conv2d_forward_bf16(x.data(), w.data(), y.data(), g, {}, ws),
                    doctest::Contains("conv2d_forward_bf16: cuDNN is not emulated"));
  CHECK_THROWS_WITH(kernels::emu::conv2d_backward_data_bf16(y.data(), w.data(), x.data(), g, {}, ws),
                    doctest::Contains("conv2d_backward_data_bf16: cuDNN is not emulated"));
  CHECK_THROWS_WITH(kernels::emu::conv2d_backward_filter_bf16(x.data(), y.data(), w.data(), g, {}, ws),
                    doctest::Contains("conv2d_backward_filter_bf16: cuDNN is not emulated"));
}

#ifdef C3_HAVE_CUDA
#include <cuda_runtime_api.h>

namespace {

// bf16 convolutions need compute capability 8.0 (Ampere) or later; on an older GPU the
// entry points must refuse with an error saying so (checked once, then the case ends).
bool bf16_device() {
  int dev = 0, major = 0;
  REQUIRE(cudaGetDevice(&dev) == cudaSuccess);
  REQUIRE(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) == cudaSuccess);
  return major >= 8;
}

// Random values in [-1, 1] rounded to bf16, and the same values widened back to f32 (exactly):
// the GPU gets the first, the CPU reference the second.
struct Bf16Data {
  std::vector<bf16> b;
  std::vector<float> f;
};
Bf16Data bf16_data(int64_t n, uint32_t seed) {
  Bf16Data d;
  for (float v : random_floats(n, seed)) {
    d.b.push_back(kernels::narrow<bf16>(v));
    d.f.push_back(kernels::widen(d.b.back()));
  }
  return d;
}
std::vector<float> widened(const std::vector<bf16>& v) {
  std::vector<float> out;
  for (bf16 h : v) out.push_back(kernels::widen(h));
  return out;
}

// A device buffer holding a host vector (or n uninitialised elements), freed on scope exit.
template <class T>
struct DeviceBuf {
  T* p = nullptr;
  size_t n = 0;
  explicit DeviceBuf(size_t count) : n(count) {
    p = static_cast<T*>(kernels::cuda::device_malloc(std::max<size_t>(n, 1) * sizeof(T)));
    REQUIRE(p != nullptr);
  }
  explicit DeviceBuf(const std::vector<T>& v) : DeviceBuf(v.size()) {
    kernels::cuda::memcpy_h2d(p, v.data(), n * sizeof(T));
  }
  ~DeviceBuf() { kernels::cuda::device_free(p); }
  DeviceBuf(const DeviceBuf&) = delete;
  DeviceBuf& operator=(const DeviceBuf&) = delete;
  std::vector<T> host() const {
    std::vector<T> v(n);
    kernels::cuda::memcpy_d2h(v.data(), p, n * sizeof(T));
    return v;
  }
};

// The convolutions' scratch: plain device memory, kept until the test's end (cudaFree of a
// buffer a kernel may still use would wait for it anyway).
struct Scratch {
  std::vector<void*> blocks;
  ~Scratch() {
    for (void* b : blocks) kernels::cuda::device_free(b);
  }
  kernels::ConvWorkspaceFn fn() {
    return [this](size_t bytes) {
      void* p = kernels::cuda::device_malloc(bytes);
      if (!p) throw std::runtime_error("test scratch: out of device memory");
      blocks.push_back(p);
      return p;
    };
  }
};

// The tolerance of a bf16 output against the CPU's f32 result on the same bf16 inputs:
//   |got - ref| <= 2^-8 |ref| + 2^-8 scale,   scale = max |ref| over the output
// 2^-8 |ref|: the one rounding of each output to bf16 (8 significant bits, to nearest: at most
// half an ulp, 2^-8 of the value). 2^-8 scale: the FP32 sums in another order or algorithm
// than the CPU's (a few 1e-6 of the scale over these sums of up to ~10^4 products), plus
// room for a rounding of a partial sum to bf16 inside a library kernel (half an ulp of the
// largest output at most). A wrong layout or tap is off by O(scale); sums kept in bf16 instead
// of FP32 drift by about sqrt(terms) * 2^-9 of the scale, several times this bound.
bool close_bf16(const std::string& what, const std::vector<bf16>& got, const std::vector<float>& ref) {
  REQUIRE(got.size() == ref.size());
  double scale = 0;
  for (float v : ref) scale = std::max(scale, std::abs(double(v)));
  const double u = std::ldexp(1.0, -8);
  const std::vector<float> g = widened(got);
  return close_arrays(what, g.data(), ref.data(), int64_t(g.size()), u * scale, u);
}

struct Conv {
  int64_t N, H, W, C, K, kh, kw, sh, sw, ph, pw, dh, dw;
  kernels::ConvGeom geom() const { return kernels::make_conv_geom(N, H, W, C, K, kh, kw, sh, sw, ph, pw, dh, dw); }
  std::string str() const {
    char b[200];
    std::snprintf(b, sizeof b, "x[%lld,%lld,%lld,%lld] w[%lld,%lld,%lld] s%lldx%lld p%lldx%lld d%lldx%lld",
                  (long long)N, (long long)H, (long long)W, (long long)C, (long long)K, (long long)kh, (long long)kw,
                  (long long)sh, (long long)sw, (long long)ph, (long long)pw, (long long)dh, (long long)dw);
    return b;
  }
};

// The three bf16 directions of one problem against kernels::cpu's f32 convolution of the same
// bf16 values (forward: x, w; backward: dy, the gradients of sum(y * dy)).
void check_bf16_conv(const Conv& c, const kernels::CudnnConvOptions& opt, uint32_t seed) {
  const kernels::ConvGeom g = c.geom();
  REQUIRE(g.out_pixels() > 0);
  const Bf16Data x = bf16_data(g.N * g.H * g.W * g.C, seed), w = bf16_data(g.K * g.taps(), seed + 1);
  const Bf16Data dy = bf16_data(g.out_pixels() * g.K, seed + 2);
  std::vector<float> y_ref(size_t(g.out_pixels() * g.K)), dx_ref(x.f.size()), dw_ref(w.f.size());
  kernels::cpu::conv2d_forward<float>(x.f.data(), w.f.data(), nullptr, y_ref.data(), g);
  kernels::cpu::conv2d_backward<float>(x.f.data(), w.f.data(), dy.f.data(), dx_ref.data(), dw_ref.data(), g);

  DeviceBuf<bf16> xd(x.b), wd(w.b), dyd(dy.b), yd(y_ref.size()), dxd(dx_ref.size()), dwd(dw_ref.size());
  Scratch scratch;
  kernels::cuda::conv2d_forward_bf16(xd.p, wd.p, yd.p, g, opt, scratch.fn());
  kernels::cuda::conv2d_backward_data_bf16(dyd.p, wd.p, dxd.p, g, opt, scratch.fn());
  kernels::cuda::conv2d_backward_filter_bf16(xd.p, dyd.p, dwd.p, g, opt, scratch.fn());
  const std::string tag = c.str() + (opt.benchmark ? " benchmark" : "") + (opt.deterministic ? " deterministic" : "");
  CHECK(close_bf16("y bf16 " + tag, yd.host(), y_ref));
  CHECK(close_bf16("dx bf16 " + tag, dxd.host(), dx_ref));
  CHECK(close_bf16("dw bf16 " + tag, dwd.host(), dw_ref));
}

// Channel counts that are multiples of 8 (what cuDNN's bf16 tensor-core kernels want).
const Conv kBf16Convs[] = {
    {2, 33, 65, 16, 24, 3, 3, 1, 1, 2, 2, 2, 2},   // dilated 3x3 (ASPP-like)
    {2, 65, 97, 8, 64, 7, 7, 2, 2, 3, 3, 1, 1},    // 7x7 stride-2 stem (RGB padded to 8 channels)
    {1, 33, 33, 64, 32, 1, 1, 1, 1, 0, 0, 1, 1},   // 1x1
    {2, 17, 15, 64, 128, 1, 1, 2, 2, 0, 0, 1, 1},  // 1x1 stride 2 (a ResNet downsample), odd sizes
    {2, 17, 9, 16, 32, 3, 3, 2, 2, 1, 1, 1, 1},    // 3x3 stride 2, odd sizes
    {1, 31, 29, 8, 8, 3, 1, 1, 2, 4, 0, 4, 1},     // rectangular kernel, stride, pad and dilation
};
// Channel counts that are not (the RGB stem, a 19-class dilated classifier, odd everything).
const Conv kOddChannelConvs[] = {
    {2, 65, 97, 3, 64, 7, 7, 2, 2, 3, 3, 1, 1},    // 7x7 stride-2 stem on 3 channels
    {1, 20, 20, 24, 19, 3, 3, 1, 1, 6, 6, 6, 6},   // dilated 3x3 to 19 classes (DeepLab's ASPP)
    {3, 17, 9, 5, 7, 3, 3, 2, 2, 1, 1, 1, 1},      // odd C and K, stride 2
};

}  // namespace

GPU_TEST_CASE("bf16 conv (cuDNN): forward, backward data and backward filter match the CPU in f32") {
  if (!bf16_device()) {
    CHECK_THROWS_WITH(check_bf16_conv(kBf16Convs[0], {}, 300), doctest::Contains("compute capability 8.0"));
    return;
  }
  kernels::CudnnConvOptions opt;  // allow_tf32 (the default) does not apply to bf16
  uint32_t seed = 300;
  for (const Conv& c : kBf16Convs) check_bf16_conv(c, opt, seed += 10);
  // opt.allow_tf32 = false must not change bf16 math (nor add a second cache entry, below).
  opt.allow_tf32 = false;
  check_bf16_conv(kBf16Convs[0], opt, seed += 10);
  // Timed ranking (cudnnFind*AlgorithmEx) and deterministic-only algorithms run right too.
  opt.allow_tf32 = true;
  opt.benchmark = true;
  check_bf16_conv(kBf16Convs[4], opt, seed += 10);
  opt.benchmark = false;
  opt.deterministic = true;
  check_bf16_conv(kBf16Convs[0], opt, seed += 10);
}

GPU_TEST_CASE("bf16 conv (cuDNN): channel counts that are not multiples of 8 run right, or fail saying so") {
  // cuDNN's bf16 tensor-core kernels want C and K multiples of 8; for other counts cuDNN runs
  // other kernels, and where it has none the error must say to pad the channels.
  if (!bf16_device()) return;  // the refusal is checked above
  uint32_t seed = 400;
  for (const Conv& c : kOddChannelConvs) {
    try {
      check_bf16_conv(c, {}, seed += 10);
    } catch (const std::exception& e) {
      const std::string msg = e.what();
      MESSAGE("bf16 conv " << c.str() << " is not run by cuDNN: " << msg);
      CHECK(msg.find("multiples of 8") != std::string::npos);
    }
  }
}

GPU_TEST_CASE("bf16 conv (cuDNN): the algorithm cache keys on the element type; each call counts one launch") {
  if (!bf16_device()) return;
  const Conv c{1, 15, 13, 16, 16, 3, 3, 1, 1, 1, 1, 1, 1};
  const kernels::ConvGeom g = c.geom();
  const Bf16Data x = bf16_data(g.N * g.H * g.W * g.C, 500), w = bf16_data(g.K * g.taps(), 501);
  DeviceBuf<bf16> xb(x.b), wb(w.b), yb(size_t(g.out_pixels() * g.K));
  DeviceBuf<float> xf(x.f), wf(w.f), yf(size_t(g.out_pixels() * g.K));
  Scratch scratch;
  kernels::CudnnConvOptions opt;
  kernels::cuda::conv_algo_cache_clear();
  kernels::cuda::conv2d_forward_f32(xf.p, wf.p, yf.p, g, opt, scratch.fn());
  CHECK(kernels::cuda::conv_algo_cache_size() == 1);
  kernels::cuda::conv2d_forward_bf16(xb.p, wb.p, yb.p, g, opt, scratch.fn());
  CHECK(kernels::cuda::conv_algo_cache_size() == 2);  // not the f32 entry of the same shape
  opt.allow_tf32 = false;
  kernels::cuda::conv2d_forward_bf16(xb.p, wb.p, yb.p, g, opt, scratch.fn());
  CHECK(kernels::cuda::conv_algo_cache_size() == 2);  // bf16 ignores allow_tf32: the same entry
  kernels::cuda::conv2d_forward_f32(xf.p, wf.p, yf.p, g, opt, scratch.fn());
  CHECK(kernels::cuda::conv_algo_cache_size() == 3);  // full-FP32 f32 is a problem of its own
  // Both types computed the same convolution of the same values.
  std::vector<float> ref(yf.n);
  kernels::cpu::conv2d_forward<float>(x.f.data(), w.f.data(), nullptr, ref.data(), g);
  CHECK(close_arrays("y f32", yf.host().data(), ref.data(), int64_t(ref.size()), 1e-4, 1e-5));
  CHECK(close_bf16("y bf16", yb.host(), ref));
  // A cached problem runs the algorithm that ran before: one cuDNN call, one launch each.
  DeviceBuf<bf16> dyb(yb.host()), dxb(xb.n), dwb(wb.n);
  opt.allow_tf32 = true;
  kernels::cuda::conv2d_backward_data_bf16(dyb.p, wb.p, dxb.p, g, opt, scratch.fn());
  kernels::cuda::conv2d_backward_filter_bf16(xb.p, dyb.p, dwb.p, g, opt, scratch.fn());
  uint64_t before = kernels::launches();
  kernels::cuda::conv2d_forward_bf16(xb.p, wb.p, yb.p, g, opt, scratch.fn());
  CHECK(kernels::launches() - before == 1);
  before = kernels::launches();
  kernels::cuda::conv2d_backward_data_bf16(dyb.p, wb.p, dxb.p, g, opt, scratch.fn());
  CHECK(kernels::launches() - before == 1);
  before = kernels::launches();
  kernels::cuda::conv2d_backward_filter_bf16(xb.p, dyb.p, dwb.p, g, opt, scratch.fn());
  CHECK(kernels::launches() - before == 1);
  // An empty batch: no cuDNN call; dw is zero.
  const kernels::ConvGeom empty = kernels::make_conv_geom(0, 15, 13, 16, 16, 3, 3, 1, 1, 1, 1, 1, 1);
  before = kernels::launches();
  kernels::cuda::conv2d_backward_filter_bf16(xb.p, dyb.p, dwb.p, empty, opt, scratch.fn());
  CHECK(kernels::launches() - before == 0);
  for (float v : widened(dwb.host())) CHECK(v == 0.f);
}

#endif  // C3_HAVE_CUDA
