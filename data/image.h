// Images and label maps in memory: 8-bit, rows of pixels, channels interleaved (HWC),
// the layout of PNG/JPEG decoders and of NHWC batches.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace c3::data {

struct Image {
  int h = 0, w = 0, c = 0;  // c = 3 for RGB images, 1 for label maps
  std::vector<uint8_t> px;  // h * w * c bytes

  Image() = default;
  Image(int h_, int w_, int c_, uint8_t fill = 0) : h(h_), w(w_), c(c_), px(size_t(h_) * w_ * c_, fill) {}
  uint8_t* at(int y, int x) { return px.data() + (size_t(y) * w + x) * c; }
  const uint8_t* at(int y, int x) const { return px.data() + (size_t(y) * w + x) * c; }
  bool empty() const { return px.empty(); }
};

}  // namespace c3::data
