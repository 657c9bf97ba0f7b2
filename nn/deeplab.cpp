#include "nn/deeplab.h"

#include "core/ops_index.h"
#include "core/ops_pool.h"
#include "core/ops_resize.h"

namespace c3::nn {

AsppV2::AsppV2(int64_t in, int64_t classes, bool two_branches, const std::vector<int>& dilations)
    : two_branches_(two_branches) {
  C3_CHECK(!dilations.empty() && (!two_branches || dilations.size() >= 2), "AsppV2: needs ",
           two_branches ? "two or more" : "one or more", " dilations, got ", dilations.size());
  conv2d_list = register_module("conv2d_list", std::make_shared<ModuleList>());
  for (int d : dilations) conv2d_list->push_back(std::make_shared<Conv2d>(in, classes, 3, 1, d, d, true));
}

Tensor AsppV2::forward(const Tensor& x) const {
  Tensor out = conv2d_list->at<Conv2d>(0).forward(x);
  const size_t n = two_branches_ ? 2 : conv2d_list->size();
  for (size_t i = 1; i < n; ++i) out = add(out, conv2d_list->at<Conv2d>(i).forward(x));
  return out;
}

// A conv + BN + ReLU unit, named like mmseg's ConvModule ("conv", "bn").
struct DeepLabV3PlusHead::ConvBnRelu : Module {
  std::shared_ptr<Conv2d> conv;
  std::shared_ptr<BatchNorm2d> bn;
  ConvBnRelu(int64_t in, int64_t out, int k, int dil) {
    conv = register_module("conv", std::make_shared<Conv2d>(in, out, k, 1, k == 1 ? 0 : dil, dil, false));
    bn = register_module("bn", std::make_shared<BatchNorm2d>(out));
  }
  Tensor forward(const Tensor& x) { return conv_bn(*conv, *bn, x, /*relu=*/true); }
};

DeepLabV3PlusHead::DeepLabV3PlusHead(int64_t in, int64_t low_in, const DeepLabConfig& cfg, std::shared_ptr<Generator> gen) {
  const int64_t c = cfg.aspp_channels;
  aspp = register_module("aspp", std::make_shared<ModuleList>());
  aspp->push_back(std::make_shared<ConvBnRelu>(in, c, 1, 1));  // image pooling branch
  aspp->push_back(std::make_shared<ConvBnRelu>(in, c, 1, 1));
  const std::vector<int> dil = cfg.aspp_dilations.empty() ? std::vector<int>{6, 12, 18} : cfg.aspp_dilations;
  for (int d : dil) aspp->push_back(std::make_shared<ConvBnRelu>(in, c, 3, d));
  project = register_module("project", std::make_shared<ModuleList>());
  project->push_back(std::make_shared<ConvBnRelu>(int64_t(2 + dil.size()) * c, c, 1, 1));
  low_proj = register_module("low_proj", std::make_shared<ModuleList>());
  low_proj->push_back(std::make_shared<ConvBnRelu>(low_in, cfg.low_level_channels, 1, 1));
  fuse = register_module("fuse", std::make_shared<ModuleList>());
  fuse->push_back(std::make_shared<ConvBnRelu>(c + cfg.low_level_channels, c, 3, 1));
  fuse->push_back(std::make_shared<ConvBnRelu>(c, c, 3, 1));
  dropout = register_module("dropout", std::make_shared<Dropout>(cfg.dropout, std::move(gen)));
  classifier = register_module("classifier", std::make_shared<Conv2d>(c, cfg.num_classes, 1, 1, 0, 1, true));
}

Tensor DeepLabV3PlusHead::forward(const Tensor& x, const Tensor& low) {
  const int64_t h = x.dim(1), w = x.dim(2);
  std::vector<Tensor> branches;
  Tensor pooled = aspp->at<ConvBnRelu>(0).forward(global_avg_pool(x));
  branches.push_back(resize_bilinear(pooled, h, w, false));
  for (size_t i = 1; i < aspp->size(); ++i) branches.push_back(aspp->at<ConvBnRelu>(i).forward(x));
  Tensor y = project->at<ConvBnRelu>(0).forward(concat(branches, 3));
  y = resize_bilinear(y, low.dim(1), low.dim(2), false);
  y = concat({y, low_proj->at<ConvBnRelu>(0).forward(low)}, 3);
  y = fuse->at<ConvBnRelu>(1).forward(fuse->at<ConvBnRelu>(0).forward(y));
  return classifier->forward(dropout->forward(y));
}

ProjectionHead::ProjectionHead(int64_t in, int64_t dim) {
  conv1 = register_module("conv1", std::make_shared<Conv2d>(in, dim, 1, 1, 0, 1, true));
  conv2 = register_module("conv2", std::make_shared<Conv2d>(dim, dim, 1, 1, 0, 1, true));
}
Tensor ProjectionHead::forward(const Tensor& x) const { return conv2->forward(relu(conv1->forward(x))); }

DeepLab::DeepLab(const DeepLabConfig& cfg, uint64_t seed) : cfg_(cfg), gen_(std::make_shared<Generator>(seed)) {
  C3_CHECK(cfg.num_classes >= 2, "DeepLab: num_classes must be at least 2, got ", cfg.num_classes);
  backbone = register_module("backbone", std::make_shared<ResNet>(cfg.backbone));
  backbone->init(*gen_);
  const int64_t c4 = backbone->channels(4);
  if (cfg.head == HeadKind::deeplab_v2) {
    classifier = register_module("classifier", std::make_shared<AsppV2>(
        c4, cfg.num_classes, cfg.aspp_two_branches,
        cfg.aspp_dilations.empty() ? std::vector<int>{6, 12, 18, 24} : cfg.aspp_dilations));
    for (size_t i = 0; i < classifier->conv2d_list->size(); ++i)
      classifier->conv2d_list->at<Conv2d>(i).init_normal(*gen_, 0.01);
  } else {
    decoder = register_module("decoder", std::make_shared<DeepLabV3PlusHead>(c4, backbone->channels(1), cfg, gen_));
    for (auto& [name, m] : decoder->named_modules())
      if (auto* c = dynamic_cast<const Conv2d*>(m)) const_cast<Conv2d*>(c)->init_kaiming(*gen_);
  }
  if (cfg.projection_head) {
    proj_head = register_module("proj_head", std::make_shared<ProjectionHead>(c4, cfg.proj_dim));
    proj_head->conv1->init_normal(*gen_, 0.01);
    proj_head->conv2->init_normal(*gen_, 0.01);
  }
}

Tensor DeepLab::classify(const ResNetFeatures& f) {
  if (classifier) return classifier->forward(f.layer4);
  return decoder->forward(f.layer4, f.layer1);
}

Tensor DeepLab::upsample(const Tensor& logits, int64_t h, int64_t w) const {
  return resize_bilinear(logits, h, w, cfg_.align_corners);
}

Tensor DeepLab::forward(const Tensor& x) { return upsample(classify(features(x)), x.dim(1), x.dim(2)); }

Tensor DeepLab::project(const Tensor& layer4) const {
  C3_CHECK(proj_head, "DeepLab: this model was built without a projection head");
  return proj_head->forward(layer4);
}

std::vector<Tensor> DeepLab::backbone_parameters() const {
  std::vector<Tensor> out;
  for (const Tensor& p : backbone->parameters())
    if (p.requires_grad()) out.push_back(p);
  return out;
}

std::vector<Tensor> DeepLab::head_parameters() const {
  std::vector<Tensor> out;
  for (const Module* m : {static_cast<const Module*>(classifier.get()), static_cast<const Module*>(decoder.get()),
                          static_cast<const Module*>(proj_head.get())})
    if (m)
      for (const Tensor& p : m->parameters())
        if (p.requires_grad()) out.push_back(p);
  return out;
}

}  // namespace c3::nn
