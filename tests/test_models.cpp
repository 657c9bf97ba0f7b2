// Layers and models: torchvision names and parameter counts, output shapes, frozen BN.
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "nn/deeplab.h"
#include "nn/safetensors.h"
#include "tests/helpers.h"

using namespace c3;
using namespace c3::nn;
using namespace c3test;

TEST_CASE("models: ResNet parameter counts equal torchvision's (without the fc layer)") {
  // torchvision: resnet18 11,689,512, resnet50 25,557,032, resnet101 44,549,160 parameters,
  // of which the 1000-way fc layer holds 513,000 (ResNet-18) or 2,049,000 (ResNet-50/101).
  // BatchNorm affine parameters count even when frozen, so count registered parameters.
  auto count = [](int depth) {
    ResNetConfig c;
    c.depth = depth;
    c.frozen_bn = false;
    return ResNet(c).num_parameters();
  };
  CHECK(count(18) == 11689512 - 513000);
  CHECK(count(50) == 25557032 - 2049000);
  CHECK(count(101) == 44549160 - 2049000);
}

TEST_CASE("models: torchvision state_dict names") {
  ResNetConfig c;
  c.depth = 101;
  c.width = 0.125;
  ResNet net(c);
  std::vector<std::string> names;
  for (auto& [n, t] : net.state_dict()) names.push_back(n);
  auto has = [&](const std::string& n) { return std::find(names.begin(), names.end(), n) != names.end(); };
  CHECK(has("conv1.weight"));
  CHECK(has("bn1.running_mean"));
  CHECK(has("bn1.num_batches_tracked"));
  CHECK(has("layer3.22.conv2.weight"));
  CHECK(has("layer1.0.downsample.0.weight"));
  CHECK(has("layer4.0.downsample.1.running_var"));
  CHECK_FALSE(has("layer3.23.conv1.weight"));
  CHECK_FALSE(has("layer1.1.downsample.0.weight"));
  // 1 + 1 (stem) + 33 blocks x 6 (conv+bn x3) + 4 downsample x 2 modules = 208 modules with
  // tensors; each conv contributes 1 entry, each BN 5.
  const size_t convs = 1 + 33 * 3 + 4, bns = convs;
  CHECK(names.size() == convs + 5 * bns);
}

TEST_CASE("models: DeepLab-v2 and v3+ shapes, output stride, frozen BatchNorm") {
  for (HeadKind head : {HeadKind::deeplab_v2, HeadKind::deeplab_v3plus}) {
    DeepLabConfig cfg;
    cfg.head = head;
    cfg.num_classes = 5;
    cfg.backbone.depth = 18;
    cfg.backbone.width = 0.125;
    cfg.backbone.output_stride = head == HeadKind::deeplab_v2 ? 8 : 16;
    cfg.backbone.frozen_bn = head == HeadKind::deeplab_v2;
    cfg.aspp_channels = 16;
    cfg.low_level_channels = 8;
    cfg.proj_dim = 8;
    DeepLab model(cfg, 7);
    Tensor x = random_tensor({2, 33, 65, 3}, 1);
    ResNetFeatures f = model.features(x);
    // 33x65 input: conv1 s2 -> 17x33, maxpool (ceil) -> 9x17, layer2 -> 5x9.
    CHECK(f.layer1.shape() == Shape{2, 9, 17, 8});
    CHECK(f.layer4.shape() == (head == HeadKind::deeplab_v2 ? Shape{2, 5, 9, 64} : Shape{2, 3, 5, 64}));
    Tensor logits = model.classify(f);
    if (head == HeadKind::deeplab_v2) CHECK(logits.shape() == Shape{2, 5, 9, 5});
    else CHECK(logits.shape() == Shape{2, 9, 17, 5});
    Tensor up = model.upsample(logits, 33, 65);
    CHECK(up.shape() == Shape{2, 33, 65, 5});
    CHECK(model.project(f.layer4).dim(3) == 8);
    // Frozen BN: its affine parameters never reach an optimizer.
    const size_t backbone_trainable = model.backbone_parameters().size();
    if (head == HeadKind::deeplab_v2) CHECK(backbone_trainable == 1 + 16 + 3 /*conv weights*/);
    else CHECK(backbone_trainable == 3 * (1 + 16 + 3));
    Tensor loss = sum(up);
    loss.backward();
    CHECK(model.backbone->conv1->weight.grad().defined());
    CHECK(model.backbone->bn1->weight.grad().defined() == (head == HeadKind::deeplab_v3plus));
  }
}

TEST_CASE("models: model.aspp_dilations sets how far a logit of the ASPP-v2 classifier reaches") {
  // A 3x3 conv of dilation d sees feature cells up to d away. With dilations {1, 2} a change of
  // the feature map 3 cells away from a logit leaves it unchanged; with the default {6, 12, 18,
  // 24} the cell 6 away changes it.
  DeepLabConfig cfg;
  cfg.num_classes = 3;
  cfg.backbone.depth = 18;
  cfg.backbone.width = 0.125;
  cfg.aspp_dilations = {1, 2};
  DeepLab small(cfg, 3);
  CHECK(small.classifier->conv2d_list->size() == 2);
  cfg.aspp_dilations = {};
  DeepLab wide(cfg, 3);
  CHECK(wide.classifier->conv2d_list->size() == 4);
  Tensor feat = random_tensor({1, 9, 15, 64}, 5);
  auto logit_change = [&](const DeepLab& m, int dx) {
    Tensor moved = feat.clone();
    float* p = moved.data<float>() + (4 * 15 + 7 + dx) * 64;
    for (int c = 0; c < 64; ++c) p[c] += 1.0f;
    const Tensor ya = m.classifier->forward(feat), yb = m.classifier->forward(moved);  // kept alive
    const float* a = ya.data<float>() + (4 * 15 + 7) * 3;
    const float* b = yb.data<float>() + (4 * 15 + 7) * 3;
    double d = 0;
    for (int k = 0; k < 3; ++k) d = std::max(d, double(std::fabs(a[k] - b[k])));
    return d;
  };
  CHECK(logit_change(small, 2) > 1e-4);
  CHECK(logit_change(small, 3) == 0.0);
  CHECK(logit_change(wide, 3) == 0.0);
  CHECK(logit_change(wide, 6) > 1e-4);
  // The v3+ head takes any number of dilated branches (its projection widens to match).
  cfg.head = HeadKind::deeplab_v3plus;
  cfg.aspp_channels = 8;
  cfg.low_level_channels = 4;
  cfg.aspp_dilations = {1, 2};
  DeepLab v3(cfg, 3);
  CHECK(v3.classify(v3.features(random_tensor({2, 33, 33, 3}, 2))).shape() == Shape{2, 9, 9, 3});
}

TEST_CASE("models: a torchvision ResNet state_dict loads with no renaming (names and shapes from torchvision)") {
  // tests/golden/torchvision_resnet_names.json: every state_dict entry of torchvision's
  // resnet18/34/50/101 with dtype and shape (tools/torchvision_names.py).
  std::ifstream f("tests/golden/torchvision_resnet_names.json");
  REQUIRE(f);
  auto j = nlohmann::json::parse(f);
  for (int depth : {18, 34, 50, 101}) {
    CAPTURE(depth);
    std::vector<std::pair<std::string, Tensor>> entries;
    for (const auto& e : j["models"][std::to_string(depth)]) {
      Shape s = e[2].get<Shape>();
      DType t = e[1] == "int64" ? DType::i32 : DType::f32;
      entries.emplace_back(e[0].get<std::string>(), Tensor::zeros(s, t));
    }
    ResNetConfig c;
    c.depth = depth;
    c.stride_on_1x1 = false;  // torchvision's convention; shapes are the same either way
    ResNet net(c);
    const std::string path = "/tmp/c3test_tv_" + std::to_string(::getpid()) + ".safetensors";
    if (depth == 18) {
      nn::save_safetensors(path, entries);  // the file route, as a user would load it
      LoadReport r = net.load_pretrained(path);
      CHECK(r.clean());
      CHECK(r.loaded == int(entries.size()) - 2);  // all but fc.weight and fc.bias
      std::remove(path.c_str());
    } else {
      std::vector<std::pair<std::string, Tensor>> no_fc;
      for (auto& e : entries)
        if (e.first.rfind("fc.", 0) != 0) no_fc.push_back(e);
      LoadReport r = net.load_state_dict(no_fc, true);
      CHECK(r.loaded == int(no_fc.size()));
    }
  }
}

TEST_CASE("models: load_pretrained takes the student's backbone from a c3semiseg checkpoint") {
  DeepLabConfig cfg;
  cfg.num_classes = 3;
  cfg.backbone.depth = 18;
  cfg.backbone.width = 0.125;
  cfg.backbone.frozen_bn = false;
  DeepLab trained(cfg, 11), fresh(cfg, 12);
  // A checkpoint's layout: student.* and teacher.* entries, plus state that is not a module.
  std::vector<std::pair<std::string, Tensor>> entries;
  for (auto& [name, t] : trained.state_dict()) {
    entries.emplace_back("student." + name, t);
    entries.emplace_back("teacher." + name, t.dtype() == DType::f32 ? mul(t, 0.5) : t);
  }
  entries.emplace_back("dcrs.thresholds", Tensor::full({3}, 0.9));
  const std::string path = "/tmp/c3test_ckpt_" + std::to_string(::getpid()) + ".safetensors";
  nn::save_safetensors(path, entries);
  LoadReport r = fresh.backbone->load_pretrained(path);
  std::remove(path.c_str());
  CHECK(r.clean());
  CHECK(r.loaded == int(trained.backbone->named_parameters().size() + trained.backbone->named_buffers().size()));
  auto a = trained.backbone->layer4->named_parameters(), b = fresh.backbone->layer4->named_parameters();
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) CHECK(as_doubles(*a[i].tensor) == as_doubles(*b[i].tensor));
  // The heads are not the backbone's: they keep their own initialization.
  CHECK(as_doubles(trained.classifier->conv2d_list->at<Conv2d>(0).weight) !=
        as_doubles(fresh.classifier->conv2d_list->at<Conv2d>(0).weight));
}

TEST_CASE("models: dropout zeroes about p of the elements in training, scales the rest, and is off in eval") {
  auto gen = std::make_shared<Generator>(5);
  Dropout d(0.25, gen);
  Tensor x = Tensor::full({100, 100}, 2.0);
  Tensor y = d.forward(x);
  auto v = y.to_vector<float>();
  int zeros = 0;
  for (float e : v) {
    CHECK((e == 0.0f || e == doctest::Approx(2.0 / 0.75)));
    zeros += e == 0.0f;
  }
  // Binomial(10000, 0.25): mean 2500, sd 43.3; 6 sd bound.
  CHECK(std::abs(zeros - 2500) < 260);
  d.eval();
  CHECK(d.forward(x).same_storage(x));
}
