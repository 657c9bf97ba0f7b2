// A small DeepLab for tests: ResNet-18 at 1/8 width, 5 classes, no dropout and no projection
// head. v2: output stride 8, frozen BN, align_corners; V3+: output stride 16, trainable BN.
// The golden files of tools/make_golden.py are made with exactly this model.
#pragma once
#include "nn/deeplab.h"

namespace c3test {

inline c3::nn::DeepLabConfig small_deeplab(bool v3plus) {
  c3::nn::DeepLabConfig cfg;
  cfg.head = v3plus ? c3::nn::HeadKind::deeplab_v3plus : c3::nn::HeadKind::deeplab_v2;
  cfg.num_classes = 5;
  cfg.backbone.depth = 18;
  cfg.backbone.width = 0.125;
  cfg.backbone.output_stride = v3plus ? 16 : 8;
  cfg.backbone.frozen_bn = !v3plus;
  cfg.aspp_channels = 16;
  cfg.low_level_channels = 8;
  cfg.dropout = 0;
  cfg.projection_head = false;
  cfg.align_corners = !v3plus;
  return cfg;
}

}  // namespace c3test
