// Test-time inference (semiseg/infer.h): sliding windows, scales and flip, each against
// whole-image inference where they must agree, and against references built here on the host.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>

#include "core/ops.h"
#include "nn/deeplab.h"
#include "semiseg/infer.h"
#include "tests/helpers.h"

using namespace c3;
using namespace c3::semiseg;
using c3test::random_tensor;

namespace {
// A per-pixel model (no context): its logits at a pixel depend on that pixel only, so windows,
// flips and (on a constant image) scales must not change them.
Tensor pointwise(const Tensor& x) { return concat({x, mul(x, 2.0), square(x)}, 3); }

double max_abs_diff(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  const auto x = a.to_vector<float>(), y = b.to_vector<float>();
  double m = 0;
  for (size_t i = 0; i < x.size(); ++i) m = std::max(m, double(std::fabs(x[i] - y[i])));
  return m;
}

// Host references over NHWC float vectors.
std::vector<float> host_crop(const std::vector<float>& v, int N, int H, int W, int C, int y, int x, int h, int w) {
  std::vector<float> out;
  for (int n = 0; n < N; ++n)
    for (int i = y; i < y + h; ++i)
      for (int j = x; j < x + w; ++j)
        for (int c = 0; c < C; ++c) out.push_back(v[((size_t(n) * H + i) * W + j) * C + c]);
  return out;
}
std::vector<float> host_mirror(const std::vector<float>& v, int N, int H, int W, int C) {
  std::vector<float> out(v.size());
  for (int n = 0; n < N; ++n)
    for (int i = 0; i < H; ++i)
      for (int j = 0; j < W; ++j)
        for (int c = 0; c < C; ++c)
          out[((size_t(n) * H + i) * W + j) * C + c] = v[((size_t(n) * H + i) * W + (W - 1 - j)) * C + c];
  return out;
}
std::vector<double> host_softmax(const std::vector<double>& v, int C) {
  std::vector<double> out(v.size());
  for (size_t p = 0; p < v.size(); p += size_t(C)) {
    double m = v[p], s = 0;
    for (int c = 1; c < C; ++c) m = std::max(m, v[p + size_t(c)]);
    for (int c = 0; c < C; ++c) s += std::exp(v[p + size_t(c)] - m);
    for (int c = 0; c < C; ++c) out[p + size_t(c)] = std::exp(v[p + size_t(c)] - m) / s;
  }
  return out;
}

nn::DeepLabConfig tiny_model() {
  nn::DeepLabConfig m;
  m.backbone.depth = 18;
  m.backbone.width = 0.125;
  m.backbone.frozen_bn = false;
  m.num_classes = 4;
  m.projection_head = false;
  return m;
}
}  // namespace

TEST_CASE("infer: window starts follow mmsegmentation's grid and cover every pixel") {
  // Hand-computed from mmseg's slide_inference: grids = max(size - window + stride - 1, 0) //
  // stride + 1; start = max(min(i * stride + window, size) - window, 0).
  CHECK(window_starts(10, 4, 3) == std::vector<int>{0, 3, 6});
  CHECK(window_starts(11, 4, 3) == std::vector<int>{0, 3, 6, 7});
  CHECK(window_starts(512, 512, 341) == std::vector<int>{0});
  CHECK(window_starts(1024, 512, 341) == std::vector<int>{0, 341, 512});
  CHECK(window_starts(6, 9, 4) == std::vector<int>{0});  // a window larger than the side
  for (int size : {1, 7, 33, 64})
    for (int window : {1, 5, 16, 70})
      for (int stride = 1; stride <= window; stride += 3) {
        CAPTURE(size);
        CAPTURE(window);
        CAPTURE(stride);
        const std::vector<int> s = window_starts(size, window, stride);
        const int w = std::min(window, size);
        std::vector<int> covered(size_t(size), 0);
        for (size_t i = 0; i < s.size(); ++i) {
          CHECK((s[i] >= 0 && s[i] + w <= size));
          if (i) CHECK((s[i] > s[i - 1] && s[i] - s[i - 1] <= stride));
          for (int p = s[i]; p < s[i] + w; ++p) covered[size_t(p)] = 1;
        }
        CHECK(s.front() == 0);
        CHECK(s.back() + w == size);
        CHECK(std::count(covered.begin(), covered.end(), 0) == 0);
      }
}

TEST_CASE("infer: a per-pixel model gives the whole-image probabilities through windows, flips and scales") {
  const Tensor x = random_tensor({2, 13, 22, 3}, 7);
  const Tensor whole = softmax(pointwise(x));
  InferOptions o;
  o.window_h = 5, o.window_w = 8, o.stride_h = 3, o.stride_w = 5;  // overlaps of 1, 2 and 4 windows
  CHECK(max_abs_diff(infer_probs(pointwise, x, o, false), whole) < 1e-6);
  o.flip = true;
  CHECK(max_abs_diff(infer_probs(pointwise, x, o, false), whole) < 1e-6);
  // Scales: bilinear resizing keeps a constant image constant, so a per-pixel model agrees.
  const Tensor flat = Tensor::full({1, 12, 20, 3}, 0.3);
  InferOptions s;
  s.scales = {0.5, 1.0, 1.75};
  s.flip = true;
  CHECK(max_abs_diff(infer_probs(pointwise, flat, s, false), softmax(pointwise(flat))) < 1e-6);
  // ... and a varying image at another scale does not (the scale path is really taken).
  s.scales = {0.5};
  CHECK(max_abs_diff(infer_probs(pointwise, x, s, false), whole) > 1e-3);
}

TEST_CASE("infer: DeepLab, sliding windows and flip against references built on the host") {
  nn::DeepLab model(tiny_model(), 3);
  model.eval();
  NoGradGuard ng;
  const ForwardFn fwd = [&](const Tensor& t) { return model.forward(t); };
  const int N = 2, H = 24, W = 40, C = 4;
  const Tensor x = random_tensor({N, H, W, 3}, 11);
  const Tensor whole = softmax(model.forward(x));

  InferOptions o;  // one window the size of the image: the whole image
  o.window_h = H, o.window_w = W, o.stride_h = H, o.stride_w = W;
  CHECK(max_abs_diff(infer_probs(fwd, x, o, true), whole) < 1e-6);

  // Overlapping windows: each window's logits from the model on a host-cut crop, summed and
  // counted on the host, softmax on the host.
  o.window_h = 16, o.window_w = 24, o.stride_h = 8, o.stride_w = 10;
  const std::vector<float> xv = x.to_vector<float>();
  std::vector<double> sum(size_t(N) * H * W * C, 0.0), count(size_t(H) * W, 0.0);
  for (int y : {0, 8})
    for (int x0 : {0, 10, 16}) {
      const Tensor crop = Tensor::from_vector(host_crop(xv, N, H, W, 3, y, x0, 16, 24), {N, 16, 24, 3});
      const std::vector<float> l = model.forward(crop).to_vector<float>();
      for (int n = 0; n < N; ++n)
        for (int i = 0; i < 16; ++i)
          for (int j = 0; j < 24; ++j)
            for (int c = 0; c < C; ++c)
              sum[((size_t(n) * H + y + i) * W + x0 + j) * C + c] += l[((size_t(n) * 16 + i) * 24 + j) * C + c];
      for (int i = 0; i < 16; ++i)
        for (int j = 0; j < 24; ++j) count[size_t(y + i) * W + x0 + j] += 1;
    }
  for (size_t p = 0; p < sum.size(); ++p) sum[p] /= count[(p / C) % (size_t(H) * W)];
  const std::vector<double> ref = host_softmax(sum, C);
  const Tensor slid = infer_probs(fwd, x, o, true);
  CHECK(c3test::close_arrays("slide", slid.to_vector<float>().data(), ref.data(), int64_t(ref.size()), 1e-6, 1e-5));
  CHECK(max_abs_diff(slid, whole) > 1e-4);  // the windows see less context: not the whole image

  // Flip: the mean of the image's probabilities and the mirrored image's, mirrored back.
  InferOptions f;
  f.flip = true;
  const std::vector<float> p1 = whole.to_vector<float>();
  const Tensor xm = Tensor::from_vector(host_mirror(xv, N, H, W, 3), {N, H, W, 3});
  const std::vector<float> p2 = host_mirror(softmax(model.forward(xm)).to_vector<float>(), N, H, W, C);
  std::vector<double> mean(p1.size());
  for (size_t i = 0; i < p1.size(); ++i) mean[i] = 0.5 * (double(p1[i]) + double(p2[i]));
  CHECK(c3test::close_arrays("flip", infer_probs(fwd, x, f, true).to_vector<float>().data(), mean.data(),
                             int64_t(mean.size()), 1e-6, 1e-5));
}

TEST_CASE("infer: malformed window, stride and scale options are errors naming the option") {
  int h = 0, w = 0;
  parse_window("--window", "64x128", h, w);
  CHECK((h == 64 && w == 128));
  for (const char* bad : {"64", "64x", "x128", "0x128", "64x-1", "64x128x2", "axb", "64x99999"})
    CHECK_THROWS_WITH_AS(parse_window("--window", bad, h, w), doctest::Contains("--window needs HxW"), Error);
  CHECK(parse_scales("0.75,1,1.25") == std::vector<double>{0.75, 1.0, 1.25});
  for (const char* bad : {"", "1,", "0.01", "1,x", "9"})
    CHECK_THROWS_WITH_AS(parse_scales(bad), doctest::Contains("--scales"), Error);
  InferOptions o;
  o.window_h = 8, o.window_w = 8, o.stride_h = 9, o.stride_w = 4;
  CHECK_THROWS_WITH_AS(check_infer_options(o), doctest::Contains("larger than the window"), Error);
  o.stride_h = 0;
  CHECK_THROWS_WITH_AS(check_infer_options(o), doctest::Contains("--stride"), Error);
}

GPU_TEST_CASE("infer: the GPU gives the CPU's probabilities through windows, scales and flip") {
  nn::DeepLab cpu_model(tiny_model(), 5), gpu_model(tiny_model(), 5);
  gpu_model.to(Device::cuda);
  cpu_model.eval();
  gpu_model.eval();
  NoGradGuard ng;
  const Tensor x = random_tensor({2, 24, 40, 3}, 13);
  InferOptions o;
  o.window_h = 16, o.window_w = 24, o.stride_h = 8, o.stride_w = 10;
  o.scales = {0.75, 1.0};
  o.flip = true;
  const Tensor want = infer_probs([&](const Tensor& t) { return cpu_model.forward(t); }, x, o, true);
  const Tensor got = infer_probs([&](const Tensor& t) { return gpu_model.forward(t); }, x.to(Device::cuda), o, true);
  // Probabilities in [0, 1]; 2e-3 covers TF32 convolutions on the GPU.
  CHECK(max_abs_diff(got.cpu(), want) < 2e-3);
}
