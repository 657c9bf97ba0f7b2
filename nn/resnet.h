// ResNet-18/34/50/101 backbones with torchvision's parameter names ("conv1.weight",
// "layer3.22.conv2.weight", "layer1.0.downsample.1.running_var"), so a torchvision state_dict
// converted to safetensors loads as it is (its "fc.*" entries are reported as unexpected in
// non-strict loading, or skipped by load_pretrained).
//
// Output stride 8 or 16 by dilation instead of stride (DeepLab): OS16 dilates layer4 by 2,
// OS8 dilates layer3 by 2 and layer4 by 4. Two bottleneck conventions:
//  - stride_on_1x1 (the DeepLab-v2 reference code): the stride sits on conv1 (1x1) and every
//    block of a dilated layer uses that layer's dilation; a downsample projection is added
//    whenever the stride, the width or the dilation changes;
//  - torchvision (stride on conv2, the 3x3): the first block of a dilated layer uses the
//    previous layer's dilation (replace_stride_with_dilation).
// width scales every channel count (64, 128, 256, 512 x expansion) for small models.
#pragma once
#include <memory>
#include <string>

#include "nn/layers.h"

namespace c3::nn {

struct ResNetConfig {
  int depth = 101;            // 18, 34, 50, 101
  int output_stride = 8;      // 8, 16 or 32
  bool stride_on_1x1 = true;  // DeepLab-v2 reference convention
  double width = 1.0;         // channel multiplier
  bool maxpool_ceil = true;   // DeepLab-v2 reference: ceil mode
  bool frozen_bn = true;      // eval statistics, affine not trained
};

struct ResNetFeatures {
  Tensor layer1, layer2, layer3, layer4;
};

class ResNetBlock : public Module {
 public:
  ResNetBlock(bool bottleneck, int64_t in, int64_t planes, int stride, int dilation, bool stride_on_1x1,
              bool with_downsample);
  Tensor forward(const Tensor& x);
  int64_t out_channels() const { return out_; }
  std::shared_ptr<Conv2d> conv1, conv2, conv3;
  std::shared_ptr<BatchNorm2d> bn1, bn2, bn3;
  std::shared_ptr<ModuleList> downsample;  // "0": 1x1 conv, "1": BatchNorm2d; or null

 private:
  int64_t out_;
};

class ResNet : public Module {
 public:
  explicit ResNet(const ResNetConfig& cfg);
  ResNetFeatures forward(const Tensor& x);  // x [N,H,W,3] normalized
  void init(Generator& g);                  // torchvision's initialization
  void set_frozen_bn(bool on);
  // Loads a torchvision state_dict (safetensors file path), ignoring "fc.*"; every other
  // name must match: missing or mis-shaped entries are an error naming them. A c3semiseg
  // checkpoint (names "student.backbone.*") gives its student's backbone.
  LoadReport load_pretrained(const std::string& path);
  int64_t channels(int layer) const { return channels_[layer - 1]; }  // output channels of layerN
  const ResNetConfig& config() const { return cfg_; }

  std::shared_ptr<Conv2d> conv1;
  std::shared_ptr<BatchNorm2d> bn1;
  std::shared_ptr<ModuleList> layer1, layer2, layer3, layer4;

 private:
  ResNetConfig cfg_;
  int64_t channels_[4] = {};
};

}  // namespace c3::nn
