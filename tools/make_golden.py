#!/usr/bin/env python3
"""Writes the PyTorch golden fixtures of tests/test_golden.cpp (run with Debian's python3-torch):

    /usr/bin/python3 tools/make_golden.py tests/golden

For a small DeepLab-v2 (frozen BN, OS8, ASPP-v2) and a small DeepLabV3+ (trainable BN, OS16)
on ResNet-18 at 1/8 width, input 2x3x64x128: the weights, the batch, the logits, the loss,
every parameter gradient, and three steps of Adam and of SGD (loss per step, final weights).
Activations are stored NHWC (our layout); weights keep PyTorch's names and shapes.
Used only to make fixtures, never at run time. Its ResNets (ResNet18 here at WIDTH, and the
bottleneck ResNet-50/101) are also the models of tools/torch_twin.py and bench/torch_peer.py.
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from st_io import save

WIDTH = 0.125
CLASSES = 5


def ch(c):
    return max(1, int(round(c * WIDTH)))


class BasicBlock(nn.Module):
    def __init__(self, cin, planes, stride, dilation, downsample):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, dilation, dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, dilation, dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if downsample:
            self.downsample = nn.Sequential(nn.Conv2d(cin, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        s = self.downsample(x) if self.downsample is not None else x
        return F.relu(y + s)


def stage_strides(output_stride):
    """Strides and dilations of layer1..4 for an output stride of 32, 16 or 8 (ours and torchvision's)."""
    stride, dil = [1, 2, 2, 2], [1, 1, 1, 1]
    if output_stride <= 16:
        stride[3], dil[3] = 1, 2
    if output_stride == 8:
        stride[2], dil[2], dil[3] = 1, 2, 4
    return stride, dil


def stem(module):
    """The 7x7 stride-2 stem convolution and its BatchNorm, set on `module`; returns its width."""
    width = ch(64)
    module.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
    module.bn1 = nn.BatchNorm2d(width)
    return width


class ResNet18(nn.Module):
    """Our ResNet-18 with stride_on_1x1 = true semantics (all blocks of a layer share its dilation)."""

    def __init__(self, output_stride):
        super().__init__()
        cin = stem(self)
        stride, dil = stage_strides(output_stride)
        for l in range(4):
            planes = ch(64 << l)
            blocks = []
            for b in range(2):
                s = stride[l] if b == 0 else 1
                blocks.append(BasicBlock(cin, planes, s, dil[l], b == 0 and (s != 1 or cin != planes)))
                cin = planes
            setattr(self, f"layer{l + 1}", nn.Sequential(*blocks))
        self.channels = cin

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.max_pool2d(y, 3, 2, 1, ceil_mode=True)
        l1 = self.layer1(y)
        return l1, self.layer4(self.layer3(self.layer2(l1)))


class Bottleneck(nn.Module):
    def __init__(self, cin, planes, stride, dilation):
        super().__init__()
        out = planes * 4
        self.conv1 = nn.Conv2d(cin, planes, 1, stride, bias=False)  # stride on the 1x1 (DeepLab-v2)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, dilation, dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.downsample = nn.Sequential(nn.Conv2d(cin, out, 1, stride, bias=False), nn.BatchNorm2d(out)) \
            if (stride != 1 or cin != out) else None

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + (self.downsample(x) if self.downsample is not None else x))


class BottleneckResNet(nn.Module):
    def __init__(self, depth, output_stride):
        super().__init__()
        blocks = {50: [3, 4, 6, 3], 101: [3, 4, 23, 3]}[depth]
        cin = stem(self)
        stride, dil = stage_strides(output_stride)
        for l in range(4):
            layer = []
            for b in range(blocks[l]):
                layer.append(Bottleneck(cin, ch(64 << l), stride[l] if b == 0 else 1, dil[l]))
                cin = ch(64 << l) * 4
            setattr(self, f"layer{l + 1}", nn.Sequential(*layer))
        self.channels = cin

    def forward(self, x):
        y = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1, ceil_mode=True)
        l1 = self.layer1(y)
        return l1, self.layer4(self.layer3(self.layer2(l1)))


class AsppV2(nn.Module):
    def __init__(self, cin, classes):
        super().__init__()
        self.conv2d_list = nn.ModuleList([nn.Conv2d(cin, classes, 3, 1, d, d, bias=True) for d in (6, 12, 18, 24)])

    def forward(self, x):
        out = self.conv2d_list[0](x)
        for c in self.conv2d_list[1:]:
            out = out + c(x)
        return out


class ConvBnRelu(nn.Module):
    def __init__(self, cin, cout, k, d):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, 1, 0 if k == 1 else d, d, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class V3PlusHead(nn.Module):
    def __init__(self, cin, low_in, c, low_c, classes):
        super().__init__()
        self.aspp = nn.ModuleList([ConvBnRelu(cin, c, 1, 1), ConvBnRelu(cin, c, 1, 1)] +
                                  [ConvBnRelu(cin, c, 3, d) for d in (6, 12, 18)])
        self.project = nn.ModuleList([ConvBnRelu(5 * c, c, 1, 1)])
        self.low_proj = nn.ModuleList([ConvBnRelu(low_in, low_c, 1, 1)])
        self.fuse = nn.ModuleList([ConvBnRelu(c + low_c, c, 3, 1), ConvBnRelu(c, c, 3, 1)])
        self.classifier = nn.Conv2d(c, classes, 1, bias=True)

    def forward(self, x, low):
        h, w = x.shape[2:]
        pooled = self.aspp[0](F.adaptive_avg_pool2d(x, 1))
        branches = [F.interpolate(pooled, (h, w), mode="bilinear", align_corners=False)]
        branches += [m(x) for m in self.aspp[1:]]
        y = self.project[0](torch.cat(branches, 1))
        y = F.interpolate(y, low.shape[2:], mode="bilinear", align_corners=False)
        y = torch.cat([y, self.low_proj[0](low)], 1)
        y = self.fuse[1](self.fuse[0](y))
        return self.classifier(y)


class DeepLab(nn.Module):
    def __init__(self, v3plus):
        super().__init__()
        self.v3plus = v3plus
        self.backbone = ResNet18(16 if v3plus else 8)
        c4, c1 = self.backbone.channels, ch(64)
        if v3plus:
            self.decoder = V3PlusHead(c4, c1, 16, 8, CLASSES)
        else:
            self.classifier = AsppV2(c4, CLASSES)

    def forward(self, x):
        l1, l4 = self.backbone(x)
        logits = self.decoder(l4, l1) if self.v3plus else self.classifier(l4)
        return F.interpolate(logits, x.shape[2:], mode="bilinear", align_corners=not self.v3plus)


def nhwc(t):
    return t.detach().permute(0, 2, 3, 1).contiguous().numpy()


def randomize_bn(model, gen):
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5, generator=gen)
                m.bias.uniform_(-0.2, 0.2, generator=gen)
                m.running_mean.uniform_(-0.1, 0.1, generator=gen)
                m.running_var.uniform_(0.5, 2.0, generator=gen)


def build(v3plus, seed):
    torch.manual_seed(seed)
    model = DeepLab(v3plus)
    randomize_bn(model, torch.Generator().manual_seed(seed + 1))
    if not v3plus:  # frozen BN: eval statistics, affine not trained
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
                m.weight.requires_grad_(False)
                m.bias.requires_grad_(False)
    return model


def set_bn_mode(model, v3plus):
    model.train()
    if not v3plus:
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()


def run(v3plus, out_dir):
    tag = "v3plus" if v3plus else "v2"
    model = build(v3plus, 3 if v3plus else 2)
    init = {k: v.detach().clone() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(11)
    x = torch.randn(2, 3, 64, 128, generator=g)
    labels = torch.randint(0, CLASSES, (2, 64, 128), generator=g)
    labels[:, :5, :] = 255  # ignored rows
    labels[1, 30:40, 50:70] = 255

    set_bn_mode(model, v3plus)
    logits = model(x)
    loss = F.cross_entropy(logits, labels, ignore_index=255)
    loss.backward()
    fixture = {f"init.{k}": v.numpy() for k, v in init.items()}
    fixture["input"] = nhwc(x)
    fixture["labels"] = labels.to(torch.uint8).numpy()
    fixture["logits"] = nhwc(logits)
    fixture["loss"] = loss.detach().reshape(1).numpy()
    for name, p in model.named_parameters():
        if p.grad is not None:
            fixture[f"grad.{name}"] = p.grad.detach().clone().numpy()  # a copy: the optimizer runs below reuse .grad in place

    for opt_name in ("adam", "sgd"):
        model.load_state_dict(init)
        set_bn_mode(model, v3plus)
        head = [p for n, p in model.named_parameters() if not n.startswith("backbone.") and p.requires_grad]
        body = [p for n, p in model.named_parameters() if n.startswith("backbone.") and p.requires_grad]
        if opt_name == "adam":
            opt = torch.optim.Adam([{"params": body, "lr": 1e-4}, {"params": head, "lr": 1e-3}],
                                   betas=(0.9, 0.999), eps=1e-8)
        else:
            opt = torch.optim.SGD([{"params": body, "lr": 1e-3}, {"params": head, "lr": 1e-2}],
                                  momentum=0.9, weight_decay=1e-4)
        losses = []
        for _ in range(3):
            opt.zero_grad()
            l = F.cross_entropy(model(x), labels, ignore_index=255)
            l.backward()
            opt.step()
            losses.append(l.item())
        fixture[f"{opt_name}.losses"] = np.array(losses, dtype=np.float32)
        for k, v in model.state_dict().items():
            fixture[f"{opt_name}.final.{k}"] = v.detach().clone().numpy()
    path = os.path.join(out_dir, f"deeplab_{tag}.safetensors")
    save(path, fixture, {"torch": torch.__version__, "width": WIDTH, "classes": CLASSES})
    print(f"{path}: loss {loss.item():.6f}, {len(fixture)} tensors, {os.path.getsize(path) / 1e6:.2f} MB")
    run_bf16(model, init, x, labels, v3plus, out_dir, tag)


def run_bf16(model, init, x, labels, v3plus, out_dir, tag):
    """The same weights and batch under CPU bf16 autocast (PyTorch's one-line mixed precision):
    logits, loss and every gradient (the model's weights stay f32 masters)."""
    model.load_state_dict(init)
    set_bn_mode(model, v3plus)
    model.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(x)
        loss = F.cross_entropy(logits, labels, ignore_index=255)  # autocast: f32
    loss.backward()
    fixture = {"logits": nhwc(logits.float()), "loss": loss.detach().float().reshape(1).numpy()}
    for name, p in model.named_parameters():
        if p.grad is not None:
            fixture[f"grad.{name}"] = p.grad.detach().clone().numpy()
    path = os.path.join(out_dir, f"deeplab_{tag}_bf16.safetensors")
    save(path, fixture, {"torch": torch.__version__, "autocast": "cpu bfloat16", "logits_dtype": str(logits.dtype)})
    print(f"{path}: bf16 autocast loss {loss.item():.6f} (logits {logits.dtype}), {len(fixture)} tensors")


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "tests/golden"
    os.makedirs(out_dir, exist_ok=True)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    run(False, out_dir)
    run(True, out_dir)


if __name__ == "__main__":
    main()
