#include "semiseg/infer.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "core/ops.h"
#include "core/parse.h"

namespace c3::semiseg {

std::string InferOptions::describe() const {
  std::string s;
  char b[96];
  if (window_h > 0) {
    std::snprintf(b, sizeof b, "window %dx%d stride %dx%d", window_h, window_w, stride_h, stride_w);
    s = b;
  } else {
    s = "whole image";
  }
  if (scales != std::vector<double>{1.0}) {
    s += ", scales ";
    for (size_t i = 0; i < scales.size(); ++i) {
      std::snprintf(b, sizeof b, "%s%g", i ? "," : "", scales[i]);
      s += b;
    }
  }
  if (flip) s += ", flip";
  return s;
}

std::vector<int> window_starts(int size, int window, int stride) {
  C3_CHECK(size > 0 && window > 0 && stride > 0, "window_starts: size, window and stride must be positive");
  const int grids = std::max(size - window + stride - 1, 0) / stride + 1;
  std::vector<int> starts;
  for (int i = 0; i < grids; ++i) {
    const int end = std::min(i * stride + window, size);
    starts.push_back(std::max(end - window, 0));
  }
  return starts;
}

Tensor flip_width(const Tensor& x) {
  C3_CHECK(x.rank() == 4, "flip_width: expected an NHWC tensor, got rank ", x.rank());
  const int64_t N = x.shape()[0], H = x.shape()[1], W = x.shape()[2], C = x.shape()[3];
  std::vector<int32_t> idx(size_t(N * H * W));
  for (int64_t r = 0; r < N * H; ++r)
    for (int64_t w = 0; w < W; ++w) idx[size_t(r * W + w)] = int32_t(r * W + (W - 1 - w));
  return gather_rows(x.reshape({N * H * W, C}), Tensor::from_vector(idx, {int64_t(idx.size())}, x.device()))
      .reshape({N, H, W, C});
}

namespace {
// Logits of the windows of x, each placed at its position and averaged where they overlap.
Tensor slide_logits(const ForwardFn& forward, const Tensor& x, const InferOptions& o) {
  const int64_t N = x.shape()[0], H = x.shape()[1], W = x.shape()[2];
  const int wh = std::min<int64_t>(o.window_h, H), ww = std::min<int64_t>(o.window_w, W);
  const std::vector<int> ys = window_starts(int(H), o.window_h, o.stride_h), xs = window_starts(int(W), o.window_w, o.stride_w);
  std::vector<float> count(size_t(H * W), 0.f);
  Tensor sum;
  for (int y : ys)
    for (int x0 : xs) {
      Tensor logits = forward(slice(slice(x, 1, y, wh), 2, x0, ww));
      C3_CHECK(logits.shape()[1] == wh && logits.shape()[2] == ww, "slide inference: the model's logits are ",
               logits.shape()[1], "x", logits.shape()[2], " for a ", wh, "x", ww, " window (they must be at input size)");
      // Zeros around the window: the window's logits in place in a full-size map.
      auto pad = [&](const Tensor& t, int dim, int64_t before, int64_t after) {
        std::vector<Tensor> parts;
        Shape s = t.shape();
        if (before > 0) s[size_t(dim)] = before, parts.push_back(Tensor::zeros(s, t.dtype(), t.device()));
        parts.push_back(t);
        if (after > 0) s[size_t(dim)] = after, parts.push_back(Tensor::zeros(s, t.dtype(), t.device()));
        return parts.size() == 1 ? t : concat(parts, dim);
      };
      Tensor placed = pad(pad(logits, 1, y, H - y - wh), 2, x0, W - x0 - ww);
      sum = sum.defined() ? add(sum, placed) : placed;
      for (int64_t i = y; i < y + wh; ++i)
        for (int64_t j = x0; j < x0 + ww; ++j) count[size_t(i * W + j)] += 1.f;
    }
  // Divide each pixel's logits by its window count: [N*H*W, C] times a per-row factor.
  const int64_t C = sum.shape()[3];
  std::vector<float> recip(size_t(N * H * W));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t p = 0; p < H * W; ++p) recip[size_t(n * H * W + p)] = 1.f / count[size_t(p)];
  return mul(sum.reshape({N * H * W, C}), Tensor::from_vector(recip, {N * H * W, 1}, x.device())).reshape({N, H, W, C});
}

Tensor logits_at(const ForwardFn& forward, const Tensor& x, const InferOptions& o) {
  return o.window_h > 0 ? slide_logits(forward, x, o) : forward(x);
}
}  // namespace

Tensor infer_probs(const ForwardFn& forward, const Tensor& x, const InferOptions& o, bool align_corners) {
  C3_CHECK(x.rank() == 4, "infer_probs: expected images [N,H,W,3], got rank ", x.rank());
  check_infer_options(o);
  const int64_t H = x.shape()[1], W = x.shape()[2];
  if (o.whole_image_only()) return softmax(forward(x));
  Tensor total;
  int terms = 0;
  for (double s : o.scales) {
    const int64_t h = std::max<int64_t>(1, std::llround(double(H) * s)), w = std::max<int64_t>(1, std::llround(double(W) * s));
    const Tensor xs = h == H && w == W ? x : resize_bilinear(x, h, w, false);
    for (int f = 0; f < (o.flip ? 2 : 1); ++f) {
      Tensor logits = logits_at(forward, f ? flip_width(xs) : xs, o);
      if (f) logits = flip_width(logits);
      if (h != H || w != W) logits = resize_bilinear(logits, H, W, align_corners);
      Tensor p = softmax(logits);
      total = total.defined() ? add(total, p) : p;
      ++terms;
    }
  }
  return terms == 1 ? total : mul(total, 1.0 / terms);
}

void parse_window(const std::string& opt, const std::string& text, int& h, int& w) {
  const size_t x = text.find('x');
  const auto a = x == std::string::npos ? std::nullopt : parse_count(text.substr(0, x));
  const auto b = x == std::string::npos ? std::nullopt : parse_count(text.substr(x + 1));
  C3_CHECK(a && b && *a >= 1 && *b >= 1 && *a <= 16384 && *b <= 16384, opt,
           " needs HxW with whole numbers in [1, 16384], got '", text, "'");
  h = int(*a);
  w = int(*b);
}

std::vector<double> parse_scales(const std::string& text) {
  std::vector<double> out;
  size_t start = 0;
  while (true) {
    const size_t comma = text.find(',', start);
    const std::string part = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    const auto v = parse_number(part);
    C3_CHECK(v && *v >= 0.05 && *v <= 8, "--scales needs comma-separated factors in [0.05, 8], got '", text, "'");
    out.push_back(*v);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

void check_infer_options(const InferOptions& o) {
  C3_CHECK(!o.scales.empty(), "inference: at least one scale");
  for (double s : o.scales) C3_CHECK(std::isfinite(s) && s >= 0.05 && s <= 8, "inference: scale ", s, " outside [0.05, 8]");
  C3_CHECK((o.window_h > 0) == (o.window_w > 0), "inference: a window needs both a height and a width");
  if (o.window_h > 0) {
    C3_CHECK(o.stride_h >= 1 && o.stride_w >= 1, "--stride: needs HxW with both at least 1 (with --window)");
    C3_CHECK(o.stride_h <= o.window_h && o.stride_w <= o.window_w, "--stride ", o.stride_h, "x", o.stride_w,
             " is larger than the window ", o.window_h, "x", o.window_w, ": pixels between windows would have no logits");
  }
}

}  // namespace c3::semiseg
