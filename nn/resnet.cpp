#include "nn/resnet.h"

#include <cmath>

#include "core/ops_pool.h"
#include "nn/safetensors.h"

namespace c3::nn {

ResNetBlock::ResNetBlock(bool bottleneck, int64_t in, int64_t planes, int stride, int dilation, bool stride_on_1x1,
                         bool with_downsample) {
  const int64_t expansion = bottleneck ? 4 : 1;
  out_ = planes * expansion;
  if (bottleneck) {
    const int s1 = stride_on_1x1 ? stride : 1, s3 = stride_on_1x1 ? 1 : stride;
    conv1 = register_module("conv1", std::make_shared<Conv2d>(in, planes, 1, s1, 0, 1, false));
    bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(planes));
    conv2 = register_module("conv2", std::make_shared<Conv2d>(planes, planes, 3, s3, dilation, dilation, false));
    bn2 = register_module("bn2", std::make_shared<BatchNorm2d>(planes));
    conv3 = register_module("conv3", std::make_shared<Conv2d>(planes, out_, 1, 1, 0, 1, false));
    bn3 = register_module("bn3", std::make_shared<BatchNorm2d>(out_));
  } else {
    conv1 = register_module("conv1", std::make_shared<Conv2d>(in, planes, 3, stride, dilation, dilation, false));
    bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(planes));
    conv2 = register_module("conv2", std::make_shared<Conv2d>(planes, planes, 3, 1, dilation, dilation, false));
    bn2 = register_module("bn2", std::make_shared<BatchNorm2d>(planes));
  }
  if (with_downsample) {
    downsample = register_module("downsample", std::make_shared<ModuleList>());
    downsample->push_back(std::make_shared<Conv2d>(in, out_, 1, stride, 0, 1, false));
    downsample->push_back(std::make_shared<BatchNorm2d>(out_));
  }
}

Tensor ResNetBlock::forward(const Tensor& x) {
  // conv_bn: a frozen BatchNorm folds into the conv before it (nn/layers.h).
  Tensor y = conv_bn(*conv1, *bn1, x, /*relu=*/true);
  if (conv3) {
    y = conv_bn(*conv2, *bn2, y, /*relu=*/true);
    y = conv_bn(*conv3, *bn3, y);
  } else {
    y = conv_bn(*conv2, *bn2, y);
  }
  Tensor shortcut = x;
  if (downsample) shortcut = conv_bn(downsample->at<Conv2d>(0), downsample->at<BatchNorm2d>(1), x);
  return add_relu(y, shortcut);
}

ResNet::ResNet(const ResNetConfig& cfg) : cfg_(cfg) {
  int blocks[4];
  bool bottleneck = true;
  switch (cfg.depth) {
    case 18: blocks[0] = 2, blocks[1] = 2, blocks[2] = 2, blocks[3] = 2, bottleneck = false; break;
    case 34: blocks[0] = 3, blocks[1] = 4, blocks[2] = 6, blocks[3] = 3, bottleneck = false; break;
    case 50: blocks[0] = 3, blocks[1] = 4, blocks[2] = 6, blocks[3] = 3; break;
    case 101: blocks[0] = 3, blocks[1] = 4, blocks[2] = 23, blocks[3] = 3; break;
    default: throw Error("ResNet: depth must be 18, 34, 50 or 101, got " + std::to_string(cfg.depth));
  }
  C3_CHECK(cfg.output_stride == 8 || cfg.output_stride == 16 || cfg.output_stride == 32,
           "ResNet: output_stride must be 8, 16 or 32, got ", cfg.output_stride);
  C3_CHECK(cfg.width > 0 && cfg.width <= 4, "ResNet: width multiplier must be in (0, 4], got ", cfg.width);
  auto ch = [&](int64_t c) { return std::max<int64_t>(1, int64_t(std::lround(double(c) * cfg.width))); };
  const int64_t stem = ch(64);
  conv1 = register_module("conv1", std::make_shared<Conv2d>(3, stem, 7, 2, 3, 1, false));
  bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(stem));
  // Strides and dilations of layer1..4.
  int stride[4] = {1, 2, 2, 2}, dil[4] = {1, 1, 1, 1};
  if (cfg.output_stride <= 16) stride[3] = 1, dil[3] = 2;
  if (cfg.output_stride == 8) stride[2] = 1, dil[2] = 2, dil[3] = 4;
  std::shared_ptr<ModuleList>* layers[4] = {&layer1, &layer2, &layer3, &layer4};
  int64_t in = stem;
  int prev_dil = 1;
  for (int l = 0; l < 4; ++l) {
    *layers[l] = register_module("layer" + std::to_string(l + 1), std::make_shared<ModuleList>());
    const int64_t planes = ch(64 << l);
    for (int b = 0; b < blocks[l]; ++b) {
      // torchvision: the first block of a dilated layer keeps the previous dilation.
      const int d = (!cfg.stride_on_1x1 && b == 0) ? prev_dil : dil[l];
      const int s = b == 0 ? stride[l] : 1;
      const int64_t out = planes * (bottleneck ? 4 : 1);
      // The DeepLab-v2 reference also projects the first block of a dilated layer.
      const bool ds = b == 0 && (s != 1 || in != out || (cfg.stride_on_1x1 && bottleneck && dil[l] > 1));
      auto block = std::make_shared<ResNetBlock>(bottleneck, in, planes, s, d, cfg.stride_on_1x1, ds);
      in = block->out_channels();
      (*layers[l])->push_back(block);
    }
    prev_dil = dil[l];
    channels_[l] = in;
  }
  set_frozen_bn(cfg.frozen_bn);
}

void ResNet::set_frozen_bn(bool on) {
  cfg_.frozen_bn = on;
  bn1->set_frozen(on);
  for (auto* layer : {layer1.get(), layer2.get(), layer3.get(), layer4.get()})
    for (size_t b = 0; b < layer->size(); ++b) {
      auto& blk = layer->at<ResNetBlock>(b);
      for (auto* bn : {blk.bn1.get(), blk.bn2.get(), blk.bn3.get()})
        if (bn) bn->set_frozen(on);
      if (blk.downsample) blk.downsample->at<BatchNorm2d>(1).set_frozen(on);
    }
}

void ResNet::init(Generator& g) {
  for (auto& [name, m] : named_modules())
    if (auto* c = dynamic_cast<const Conv2d*>(m)) const_cast<Conv2d*>(c)->init_kaiming(g);
}

ResNetFeatures ResNet::forward(const Tensor& x) {
  C3_CHECK(x.rank() == 4 && x.dim(3) == 3, "ResNet: expected an NHWC RGB batch [N,H,W,3], got ", x.desc());
  ResNetFeatures f;
  Tensor y = conv_bn(*conv1, *bn1, x, /*relu=*/true);
  y = max_pool2d(y, 3, 2, 1, cfg_.maxpool_ceil);
  Tensor* outs[4] = {&f.layer1, &f.layer2, &f.layer3, &f.layer4};
  ModuleList* layers[4] = {layer1.get(), layer2.get(), layer3.get(), layer4.get()};
  for (int l = 0; l < 4; ++l) {
    for (size_t b = 0; b < layers[l]->size(); ++b) y = layers[l]->at<ResNetBlock>(b).forward(y);
    *outs[l] = y;
  }
  return f;
}

LoadReport ResNet::load_pretrained(const std::string& path) {
  SafetensorsFile file = load_safetensors(path);
  // A c3semiseg checkpoint holds "student.backbone.<name>": its student's backbone is taken.
  std::vector<std::pair<std::string, Tensor>> entries = file.with_prefix("student.backbone.");
  if (entries.empty())  // torchvision's ResNet: every tensor but the classifier
    for (auto& [name, t] : file.tensors)
      if (name.rfind("fc.", 0) != 0) entries.emplace_back(name, t);
  try {
    return load_state_dict(entries, true);
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
}

}  // namespace c3::nn
