// Segmentation models: DeepLab-v2 (ASPP-v2 classifier) and DeepLabV3+ on a ResNet, plus the
// projection head of C³ (METHOD.md "L_con"). The pieces are exposed separately because the
// C³ step un-mixes the backbone features between the backbone and the heads.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "nn/resnet.h"

namespace c3::nn {

enum class HeadKind { deeplab_v2, deeplab_v3plus };

struct DeepLabConfig {
  HeadKind head = HeadKind::deeplab_v2;
  int64_t num_classes = 19;
  ResNetConfig backbone;
  bool aspp_two_branches = false;  // reference quirk: only the first two branches are summed
  // Dilations of the ASPP's 3x3 branches; empty: the head's own (v2: 6, 12, 18, 24; v3+: 6,
  // 12, 18). They are sized for feature maps of 40+ cells: on small crops the large ones
  // reach far outside the image, and every logit then depends on the whole crop.
  std::vector<int> aspp_dilations;
  int64_t aspp_channels = 256;     // v3+
  int64_t low_level_channels = 48; // v3+
  double dropout = 0.1;            // v3+, before the classifier
  bool projection_head = true;
  int64_t proj_dim = 256;
  // Logits are upsampled to the input size bilinearly; DeepLab-v2 uses align_corners=true.
  bool align_corners = true;
};

// ASPP-v2: a sum of 3x3 convolutions with dilations 6, 12, 18, 24 (or those given) straight to
// the classes.
class AsppV2 : public Module {
 public:
  AsppV2(int64_t in, int64_t classes, bool two_branches, const std::vector<int>& dilations = {6, 12, 18, 24});
  Tensor forward(const Tensor& x) const;
  std::shared_ptr<ModuleList> conv2d_list;

 private:
  bool two_branches_;
};

// ASPP (1x1, 3x3 d6/d12/d18, image pooling) + projection, then the decoder with the
// 48-channel low-level projection and two 3x3 convolutions.
class DeepLabV3PlusHead : public Module {
 public:
  DeepLabV3PlusHead(int64_t in, int64_t low_in, const DeepLabConfig& cfg, std::shared_ptr<Generator> gen);
  Tensor forward(const Tensor& layer4, const Tensor& layer1);

 private:
  struct ConvBnRelu;
  std::shared_ptr<ModuleList> aspp;  // 0: image pool, 1: 1x1, 2..4: dilated 3x3
  std::shared_ptr<ModuleList> project, low_proj, fuse;
  std::shared_ptr<Dropout> dropout;
  std::shared_ptr<Conv2d> classifier;
};

// 1x1 conv (bias) -> ReLU -> 1x1 conv (bias); no normalization layer.
class ProjectionHead : public Module {
 public:
  ProjectionHead(int64_t in, int64_t dim);
  Tensor forward(const Tensor& x) const;  // un-normalized embeddings [N,h,w,dim]
  std::shared_ptr<Conv2d> conv1, conv2;
};

class DeepLab : public Module {
 public:
  DeepLab(const DeepLabConfig& cfg, uint64_t seed);
  // The whole forward: logits at input resolution [N,H,W,classes].
  Tensor forward(const Tensor& x);
  ResNetFeatures features(const Tensor& x) { return backbone->forward(x); }
  Tensor classify(const ResNetFeatures& f);  // logits at feature resolution
  Tensor upsample(const Tensor& logits, int64_t h, int64_t w) const;
  Tensor project(const Tensor& layer4) const;  // requires projection_head

  // Parameter groups of the reference protocol: backbone (10x lower lr) and heads.
  std::vector<Tensor> backbone_parameters() const;
  std::vector<Tensor> head_parameters() const;
  const DeepLabConfig& config() const { return cfg_; }

  std::shared_ptr<ResNet> backbone;
  std::shared_ptr<AsppV2> classifier;          // v2
  std::shared_ptr<DeepLabV3PlusHead> decoder;  // v3+
  std::shared_ptr<ProjectionHead> proj_head;

 private:
  DeepLabConfig cfg_;
  std::shared_ptr<Generator> gen_;
};

}  // namespace c3::nn
