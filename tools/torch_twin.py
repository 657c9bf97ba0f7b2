#!/usr/bin/env python3
"""A PyTorch twin of c3semiseg's training: the same recipe, data and starting weights.

    /usr/bin/python3 tools/torch_twin.py train --config configs/synthetic.json [--set k=v ...] \\
        --init DIR/init.safetensors [--labeled-list DIR/labeled.txt] [--out RUN_DIR]
    /usr/bin/python3 tools/torch_twin.py lockstep DUMP_DIR
    /usr/bin/python3 tools/torch_twin.py replay DUMP_DIR --out RUN_DIR

Written from METHOD.md and the config keys (a second reading of the method, not a
translation of the C++): the model (DeepLab-v2 / ResNet with our conventions, projection
head), the data pipeline (PIL and torchvision: rotation, scale, crop, flip; the strong view's
ColorJitter and RandAugment), the C3 step (EMA teacher on the weak view, DCRS, cross-set
CutMix with both complementary mixes and the un-mix, L_sup, L_cons with the 1/C factor,
L_con with hard/easy anchors), Adam with the poly schedule, the EMA update, evaluation.

train: trains from `--init` (the student weights c3semiseg writes at step 0 with
`train --dump DIR`), on the labeled subset of `--labeled-list` when given (c3semiseg writes
it into its run folder), and writes a run folder like ours: config.json, metrics.jsonl (the
same keys), eval_NNNNNN.md / .csv, summary.md and latest.safetensors (the final student in
our checkpoint layout: `c3semiseg eval --checkpoint` evaluates it with our code).

lockstep: replays what `c3semiseg train --dump DIR --dump-steps N` wrote (each step's batch
bytes, mixing order and boxes, contrastive anchors), from the same initial weights, and
compares each step's losses and DCRS thresholds and, after N steps, every student and
teacher tensor with ours. Exits 1 when a figure is outside its tolerance (printed).

replay: the twin's own training over a whole run's dumped steps (`--dump-steps` = all steps,
`--dump-state-steps 0`), i.e. on our batches, mixing and anchors, then the final evaluation:
separates what the data pipeline's draws do from what the engine does.

Runs on the CPU with Debian's python3-torch (1.13), one thread unless --threads says otherwise.
Imports no code of ours except tools/st_io.py (safetensors) and tools/make_golden.py's
ResNets (the PyTorch models the golden test checks ours against).
"""
import argparse
import copy
import glob
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image, ImageEnhance, ImageOps
from torchvision import transforms

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_golden as mg  # noqa: E402
import st_io  # noqa: E402

# ---------------------------------------------------------------------------------------------
# Config: the default of every key, from the engine's own key table (`c3semiseg config` prints
# them as JSON: one table, nothing copied by hand), a JSON file with // comments, then --set
# section.key=value overrides. Unknown keys are errors, as in ours.
def defaults():
    exe = os.environ.get("C3SEMISEG", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build",
                                                   "c3semiseg"))
    if not os.access(exe, os.X_OK):
        sys.exit(f"torch_twin: {exe} not found: build it with make (the twin reads the config keys' defaults "
                 f"from it), or point C3SEMISEG at the binary")
    import subprocess
    out = subprocess.run([exe, "config"], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"torch_twin: {exe} config failed: {out.stderr.strip()}")
    return json.loads(out.stdout)


def merge(base, overlay, where, prefix=""):
    for k, v in overlay.items():
        key = f"{prefix}.{k}" if prefix else k
        if k not in base:
            sys.exit(f"{where}: unknown config key '{key}'")
        if isinstance(base[k], dict):
            merge(base[k], v, where, key)
        else:
            base[k] = v


def load_config(path, sets):
    cfg = defaults()
    if path:
        text = "\n".join(line for line in open(path) if not line.lstrip().startswith("//"))
        merge(cfg, json.loads(text), path)
    for s in sets:
        key, _, text = s.partition("=")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        for part in reversed(key.split(".")):
            value = {part: value}
        merge(cfg, value, "--set " + s)
    return cfg


# ---------------------------------------------------------------------------------------------
# Model: DeepLab-v2 (ASPP-v2 summing 3x3 convs straight to the classes, align_corners
# upsampling) on a ResNet (stride on the first 1x1 of a bottleneck, ceil-mode max pool), and
# the C3 projection head: 1x1 conv, ReLU, 1x1 conv. Parameter names are torchvision's, as in
# our checkpoints.
class Aspp(nn.Module):
    def __init__(self, cin, classes, dilations, two_branches):
        super().__init__()
        self.conv2d_list = nn.ModuleList([nn.Conv2d(cin, classes, 3, 1, d, d, bias=True) for d in dilations])
        self.n = 2 if two_branches else len(dilations)

    def forward(self, x):
        return sum(self.conv2d_list[i](x) for i in range(self.n))


class ProjHead(nn.Module):
    def __init__(self, cin, dim):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, dim, 1)
        self.conv2 = nn.Conv2d(dim, dim, 1)

    def forward(self, x):
        return self.conv2(F.relu(self.conv1(x)))


class DeepLab(nn.Module):
    def __init__(self, m):
        super().__init__()
        if m["head"] != "deeplab_v2" or not m["stride_on_1x1"]:
            sys.exit("torch_twin: only model.head=deeplab_v2 with stride_on_1x1 is written here")
        mg.WIDTH, mg.CLASSES = m["width"], m["num_classes"]
        # make_golden's ResNets (the PyTorch models the golden test and the benchmark use)
        self.backbone = mg.ResNet18(m["output_stride"]) if m["depth"] == 18 else \
            mg.BottleneckResNet(m["depth"], m["output_stride"])
        c4 = self.backbone.channels
        self.classifier = Aspp(c4, m["num_classes"], m["aspp_dilations"] or [6, 12, 18, 24], m["aspp_two_branches"])
        self.proj_head = ProjHead(c4, m["proj_dim"])
        self.frozen_bn = m["frozen_bn"]
        if self.frozen_bn:
            for mod in self.modules():
                if isinstance(mod, nn.BatchNorm2d):
                    mod.weight.requires_grad_(False)
                    mod.bias.requires_grad_(False)

    def train(self, mode=True):
        super().train(mode)
        if self.frozen_bn:
            for mod in self.modules():
                if isinstance(mod, nn.BatchNorm2d):
                    mod.eval()
        return self

    def features(self, x):
        return self.backbone(x)[1]  # layer4

    def logits(self, l4, size):
        return F.interpolate(self.classifier(l4), size, mode="bilinear", align_corners=True)

    def forward(self, x):
        return self.logits(self.features(x), x.shape[2:])


def load_weights(model, path):
    """Our safetensors (NCHW weights, torchvision names); every tensor of the model must be there."""
    src = st_io.load(path)
    state = model.state_dict()
    missing = [k for k in state if k not in src and not k.endswith("num_batches_tracked")]
    if missing:
        sys.exit(f"{path}: lacks {len(missing)} tensors of the twin's model, e.g. {missing[:3]}")
    for k in state:
        if k in src:
            if tuple(src[k].shape) != tuple(state[k].shape):
                sys.exit(f"{path}: {k} has shape {src[k].shape}, the twin's model {tuple(state[k].shape)}")
            state[k] = torch.from_numpy(np.array(src[k])).to(state[k].dtype)
    model.load_state_dict(state)


# ---------------------------------------------------------------------------------------------
# Data: the Cityscapes layout or list files; decoded once and kept in memory.
def cityscapes_samples(root, split):
    images = sorted(glob.glob(os.path.join(root, "leftImg8bit", split, "*", "*_leftImg8bit.png")))
    if not images:
        sys.exit(f"{root}: no images under leftImg8bit/{split}")
    return [(p, label_path(p)) for p in images]


def label_path(image):
    base = image.replace("/leftImg8bit/", "/gtFine/").replace("_leftImg8bit.png", "")
    return base + "_gtFine_labelTrainIds.png" if os.path.exists(base + "_gtFine_labelTrainIds.png") \
        else base + "_gtFine_labelIds.png"


LABEL_IDS = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12, 26: 13,
             27: 14, 28: 15, 31: 16, 32: 17, 33: 18}


def read_label(path):
    lab = np.array(Image.open(path))
    if path.endswith("_labelIds.png"):
        lut = np.full(256, 255, np.uint8)
        for k, v in LABEL_IDS.items():
            lut[k] = v
        lab = lut[lab]
    return lab


def read_list(path, root):
    out = []
    for line in open(path):
        f = line.split()
        if not f or f[0].startswith("#"):
            continue
        img = f[0] if os.path.isabs(f[0]) else os.path.join(root, f[0])
        lab = (f[1] if os.path.isabs(f[1]) else os.path.join(root, f[1])) if len(f) > 1 else label_path(img)
        out.append((img, lab))
    return out


def load_split(cfg, labeled_list):
    d = cfg["data"]
    train = read_list(d["train_list"], d["root"]) if d["train_list"] else cityscapes_samples(d["root"], "train")
    val = read_list(d["val_list"], d["root"]) if d["val_list"] else cityscapes_samples(d["root"], "val")
    if d["val_limit"] > 0:
        val = val[:d["val_limit"]]
    labeled_list = labeled_list or d["labeled_list"]
    if labeled_list:
        names = {os.path.realpath(i) for i, _ in read_list(labeled_list, d["root"])}
        labeled = [s for s in train if os.path.realpath(s[0]) in names]
        if len(labeled) != len(names):
            sys.exit(f"{labeled_list}: {len(names) - len(labeled)} listed images are not training images")
    else:  # the twin's own draw of the subset
        rng = np.random.RandomState(d["split_seed"])
        labeled = [train[i] for i in sorted(rng.permutation(len(train))[:d["labeled_count"]])]
    names = {s[0] for s in labeled}
    unlabeled = train if d["unlabeled_all"] else [s for s in train if s[0] not in names]
    return labeled, unlabeled, val


def decode(samples, size, with_labels):
    """RGB PIL images and label arrays, resized to `size` (H, W) when they differ."""
    out = []
    for img_path, lab_path in samples:
        img = Image.open(img_path).convert("RGB")
        lab = Image.fromarray(read_label(lab_path)) if with_labels else None
        if size and img.size != (size[1], size[0]):
            img = img.resize((size[1], size[0]), Image.BILINEAR)
            lab = lab.resize((size[1], size[0]), Image.NEAREST) if lab is not None else None
        out.append((img, lab))
    return out


class Augment:
    """Geometry (rotation, random scale, crop with padding, flip) shared by both views, and the
    strong view's photometric ops (ColorJitter, then RandAugment n2 m10 mstd0.5 with p = 0.5)."""

    def __init__(self, cfg, rng):
        self.d, self.rng = cfg["data"], rng
        self.jitter = transforms.ColorJitter(0.5, 0.5, 0.5, 0.25)

    def geometry(self, img, lab):
        d, rng = self.d, self.rng
        if d["rotate"] > 0:
            angle = int(rng.integers(-d["rotate"], d["rotate"] + 1))
            img = img.rotate(angle, Image.BILINEAR, fillcolor=(0, 0, 0))
            lab = lab.rotate(angle, Image.NEAREST, fillcolor=255) if lab is not None else None
        f = d["scales"][int(rng.integers(len(d["scales"])))]
        w, h = round(img.size[0] * f), round(img.size[1] * f)
        if (w, h) != img.size:
            img = img.resize((w, h), Image.BILINEAR)
            lab = lab.resize((w, h), Image.NEAREST) if lab is not None else None
        ch, cw = d["crop"]
        y0 = int(rng.integers(0, h - ch + 1)) if h >= ch else -int(rng.integers(0, ch - h + 1))
        x0 = int(rng.integers(0, w - cw + 1)) if w >= cw else -int(rng.integers(0, cw - w + 1))
        img_a = np.zeros((ch, cw, 3), np.uint8)
        lab_a = np.full((ch, cw), 255, np.uint8)
        src_i, src_l = np.asarray(img), np.asarray(lab) if lab is not None else None
        ys, xs = max(y0, 0), max(x0, 0)
        ye, xe = min(y0 + ch, h), min(x0 + cw, w)
        img_a[ys - y0:ye - y0, xs - x0:xe - x0] = src_i[ys:ye, xs:xe]
        if src_l is not None:
            lab_a[ys - y0:ye - y0, xs - x0:xe - x0] = src_l[ys:ye, xs:xe]
        if rng.random() < d["flip"]:
            img_a, lab_a = img_a[:, ::-1], lab_a[:, ::-1]
        return np.ascontiguousarray(img_a), np.ascontiguousarray(lab_a)

    def strong(self, img_a):
        img = Image.fromarray(img_a)
        if self.d["strong_jitter"]:
            img = self.jitter(img)  # torchvision draws from torch's generator (seeded per run)
        if self.d["strong_randaugment"]:
            for _ in range(2):
                op = RAND_OPS[int(self.rng.integers(len(RAND_OPS)))]
                if self.rng.random() < 0.5:
                    m = float(np.clip(self.rng.normal(10, 0.5), 0, 10))
                    img = op(img, m)
        return np.asarray(img)


def _enhance(cls):
    return lambda img, m: cls(img).enhance(m / 10 * 1.8 + 0.1)


RAND_OPS = [
    lambda img, m: ImageOps.autocontrast(img),
    lambda img, m: ImageOps.equalize(img),
    lambda img, m: ImageOps.invert(img),
    lambda img, m: ImageOps.posterize(img, int(m / 10 * 4)),
    lambda img, m: ImageOps.solarize(img, int(m / 10 * 256)),
    lambda img, m: Image.fromarray(np.where(np.asarray(img) < 128,
                                            np.minimum(np.asarray(img).astype(np.int32) + int(m / 10 * 110), 255),
                                            np.asarray(img)).astype(np.uint8)),
    _enhance(ImageEnhance.Color), _enhance(ImageEnhance.Contrast), _enhance(ImageEnhance.Brightness),
    _enhance(ImageEnhance.Sharpness),
]

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def normalize(u8_nhwc):
    """u8 [B,H,W,3] (numpy or tensor) -> f32 [B,3,H,W], ImageNet mean/std on RGB in [0, 1]."""
    x = torch.from_numpy(np.array(u8_nhwc)).permute(0, 3, 1, 2).float() / 255.0
    return (x - MEAN) / STD


# ---------------------------------------------------------------------------------------------
# The C3 step.
def ramp(t, T):
    return 1.0 if T <= 0 or t >= T else math.exp(-5.0 * (1.0 - t / T) ** 2)


def box_masks(boxes, H, W):
    """m = 0 inside each pair's box, 1 outside: [K,1,H,W]."""
    m = torch.ones(len(boxes), 1, H, W)
    for k, (y0, x0, h, w) in enumerate(boxes):
        m[k, :, y0:y0 + h, x0:x0 + w] = 0
    return m


def mix(x, order, m):
    """[x_l; u_s] shuffled; pair k with k+K: img1 = A(1-m) + Bm, img2 = Am + B(1-m)."""
    s = x[order]
    K = s.shape[0] // 2
    a, b = s[:K], s[K:]
    return torch.cat([a * (1 - m) + b * m, a * m + b * (1 - m)], 0)


def unmix(y, order, m):
    """Per-source outputs back from the mixed ones, in the original order (m resized nearest)."""
    if m.shape[2:] != y.shape[2:]:
        m = F.interpolate(m, y.shape[2:], mode="nearest")
    K = y.shape[0] // 2
    p1, p2 = y[:K], y[K:]
    s = torch.cat([p1 * (1 - m) + p2 * m, p1 * m + p2 * (1 - m)], 0)
    out = torch.empty_like(s)
    out[order] = s
    return out


def draw_boxes(K, H, W, gen):
    out = []
    for _ in range(K):
        hf = math.exp(torch.rand(1, generator=gen).item() * math.log(0.5))
        h = min(max(round(H * hf), 1), H)
        w = min(max(round(H * W / 2 / h), 1), W)
        y0 = int(torch.randint(0, H - h + 1, (1,), generator=gen))
        x0 = int(torch.randint(0, W - w + 1, (1,), generator=gen))
        out.append((y0, x0, h, w))
    return out


def draw_order(cfg, Bl, Bu, gen):
    if cfg["loss"]["cross_set"]:
        return torch.randperm(Bl + Bu, generator=gen)
    pl, pu = torch.randperm(Bl, generator=gen), torch.randperm(Bu, generator=gen) + Bl
    return torch.cat([pl[:Bl // 2], pu[:Bu // 2], pl[Bl // 2:], pu[Bu // 2:]])


def dcrs(p_t, thr, cfg):
    """Per-class thresholds thr_c <- mom thr_c + (1-mom) cur_c, cur_c = the confidence at index
    floor(N_c s) of the class's confidences sorted descending; mask = conf >= thr[argmax]."""
    r = cfg["dcrs"]
    conf, label = p_t.max(1)
    C = p_t.shape[1]
    thr = thr.clone()
    if r["mode"] == "dcrs":
        s_list = r["s_per_class"] or [r["s"]] * C
        fc, fl = conf.flatten(), label.flatten()
        for c in range(C):
            v = fc[fl == c]
            if v.numel() == 0:
                continue
            v = torch.sort(v, descending=True).values
            cur = v[min(int(math.floor(v.numel() * s_list[c])), v.numel() - 1)]
            thr[c] = r["momentum"] * thr[c] + (1 - r["momentum"]) * cur
    mask = conf >= thr[label]
    return thr, mask, label


def cross_entropy(logits, y):
    return F.cross_entropy(logits, y.long(), ignore_index=255)


def soft_ce(logits, p_t, mask):
    C = logits.shape[1]
    per_px = -(p_t * F.log_softmax(logits, 1)).sum(1)
    m = mask.float()
    n = m.sum()
    return (per_px * m).sum() / (C * n) if n > 0 else per_px.sum() * 0


def sample_anchors(labels, pred, cfg, gen):
    """Per image and class with more than min_pixels pixels: per_class positions, half hard
    (pred != label), half easy, filled from the other group when one is short."""
    l = cfg["loss"]
    per, hard_n = l["samples_per_class"], l["samples_per_class"] // 2
    idx, lab = [], []
    N = labels.shape[0]
    fl, fp = labels.reshape(N, -1), pred.reshape(N, -1)
    hw = fl.shape[1]
    for n in range(N):
        for c in torch.unique(fl[n]).tolist():
            if c == 255 or (l["skip_class0"] and c == 0):
                continue
            sel = fl[n] == c
            if int(sel.sum()) <= l["min_pixels"]:
                continue
            if l["hard_easy"]:
                hard = torch.nonzero(sel & (fp[n] != c)).flatten()
                easy = torch.nonzero(sel & (fp[n] == c)).flatten()
                nh = min(hard_n, hard.numel())
                ne = min(per - nh, easy.numel())
                nh = min(per - ne, hard.numel())
                pick = torch.cat([hard[torch.randperm(hard.numel(), generator=gen)[:nh]],
                                  easy[torch.randperm(easy.numel(), generator=gen)[:ne]]])
            else:
                allp = torch.nonzero(sel).flatten()
                pick = allp[torch.randperm(allp.numel(), generator=gen)[:per]]
            idx.append(pick + n * hw)
            lab.append(torch.full_like(pick, c))
    if not idx:
        return torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)
    return torch.cat(idx), torch.cat(lab)


def contrastive(z, zc, y, tau, tau_b):
    """-(tau/tau_b) mean_i (1/|P(i)|) sum_p log(e^{s_ip} / (e^{s_ip} + sum_n e^{s_in})), over the
    anchors that have a positive and a negative; s = <z_i, z'_j> / tau; z' is a constant."""
    s = z @ zc.detach().t() / tau
    same = y[:, None] == y[None, :]
    pos = same & ~torch.eye(len(y), dtype=torch.bool)
    neg = ~same
    neg_lse = torch.logsumexp(s.masked_fill(~neg, float("-inf")), 1, keepdim=True)
    log_prob = s - torch.logaddexp(s, neg_lse)
    npos = pos.sum(1)
    ok = (npos > 0) & (neg.sum(1) > 0)
    if not bool(ok.any()):
        return z.sum() * 0
    rows = (log_prob.masked_fill(~pos, 0)).sum(1)[ok] / npos[ok]
    return -(tau / tau_b) * rows.mean()


def contrast_term(cfg, z, zc, labels_f, logits, gen, replay):
    """L_con over [N,D,h,w] embeddings: anchors sampled (or replayed), per contrast group."""
    N, D, h, w = z.shape
    pred = F.interpolate(logits.detach(), (h, w), mode="bilinear", align_corners=False).argmax(1)
    if replay is not None:
        idx, lab = replay
        mism = int((labels_f.flatten()[idx] != lab).sum())
    else:
        idx, lab = sample_anchors(labels_f, pred, cfg, gen)
        mism = 0
    zr = z.permute(0, 2, 3, 1).reshape(-1, D)
    cr = zc.permute(0, 2, 3, 1).reshape(-1, D)
    groups = max(1, min(cfg["train"]["contrast_groups"], N))
    terms = []
    for g in range(groups):
        lo, hi = g * N // groups * h * w, (g + 1) * N // groups * h * w
        sel = (idx >= lo) & (idx < hi)
        if int(sel.sum()) < 2:
            continue
        terms.append(contrastive(zr[idx[sel]], cr[idx[sel]], lab[sel], cfg["loss"]["tau"], cfg["loss"]["tau_b"]))
    loss = sum(terms) / len(terms) if terms else z.sum() * 0
    return loss, mism


def l2n(x):
    return F.normalize(x, dim=1)


class Step:
    """The warm-up / supervised step and the C3 semi step (METHOD.md, "One training step")."""

    def __init__(self, cfg):
        self.cfg = cfg
        C = cfg["model"]["num_classes"]
        r = cfg["dcrs"]
        self.thr = torch.full((C,), r["global_threshold"] if r["mode"] == "global" else r["init"])
        self.anchor_label_mismatches = 0

    def supervised(self, student, x_l, y_l, step, gen, replay=None):
        cfg = self.cfg
        l4 = student.features(x_l)
        logits = student.logits(l4, x_l.shape[2:])
        sup = cross_entropy(logits, y_l)
        out = {"sup": sup.item()}  # the terms a step has, by name (as ours logs them)
        loss = sup
        if cfg["train"]["mode"] == "c3" and cfg["loss"]["contrast"] and cfg["loss"]["w_con"] > 0:
            z = l2n(student.proj_head(l4))
            lf = F.interpolate(y_l[:, None].float(), z.shape[2:], mode="nearest")[:, 0].long()
            con, mism = contrast_term(cfg, z, z.detach(), lf, logits, gen, replay)
            self.anchor_label_mismatches += mism
            out["con"] = con.item()
            loss = loss + cfg["loss"]["w_con"] * ramp(step, cfg["loss"]["ramp_con"]) * con
        out["loss"] = loss
        return out

    def semi(self, student, teacher, x_l, y_l, u_w, u_s, step, semi_step, gen, replay=None):
        cfg, l = self.cfg, self.cfg["loss"]
        Bl, Bu = x_l.shape[0], u_s.shape[0]
        H, W = x_l.shape[2:]
        C = cfg["model"]["num_classes"]
        with torch.no_grad():
            tl4 = teacher.features(u_w)
            p_t = F.softmax(teacher.logits(tl4, (H, W)), 1)
            e_t = l2n(teacher.proj_head(tl4))
        self.thr, mask, pseudo = dcrs(p_t, self.thr, cfg)
        if cfg["dcrs"]["mode"] == "off":
            mask = torch.ones_like(mask)
        mix_all = l["mix_labeled"]  # false: only the unlabeled images are mixed, among themselves
        if replay is not None:
            order, boxes = replay["mix_order"], replay["mix_boxes"]
        elif mix_all:
            order, boxes = draw_order(cfg, Bl, Bu, gen), draw_boxes((Bl + Bu) // 2, H, W, gen)
        else:
            order, boxes = torch.randperm(Bu, generator=gen), draw_boxes(Bu // 2, H, W, gen)
        m = box_masks(boxes, H, W)
        if mix_all:
            mixed = mix(torch.cat([x_l, u_s], 0), order, m)
            back = lambda y: unmix(y, order, m)  # noqa: E731
        else:
            mixed = torch.cat([x_l, mix(u_s, order, m)], 0)
            back = lambda y: torch.cat([y[:Bl], unmix(y[Bl:], order, m)], 0)  # noqa: E731
        l4 = student.features(mixed)
        logits = back(student.logits(l4, (H, W)))
        logits_l, logits_u = logits[:Bl], logits[Bl:]
        sup = cross_entropy(logits_l, y_l)
        cons = soft_ce(logits_u, p_t, mask)
        loss = sup + cfg["loss"]["w_cons"] * ramp(semi_step, l["ramp_cons"]) * cons
        out = {"sup": sup.item(), "cons": cons.item()}
        if l["contrast"] and l["w_con"] > 0:
            z = l2n(student.proj_head(back(l4)))
            zc = torch.cat([z[:Bl].detach(), e_t], 0)
            hw = z.shape[2:]
            near = lambda t: F.interpolate(t[:, None].float(), hw, mode="nearest")[:, 0].long()  # noqa: E731
            pl = near(pseudo)
            if cfg["dcrs"]["apply_to_contrast"] and cfg["dcrs"]["mode"] != "off":
                pl = torch.where(near(mask) > 0, pl, torch.full_like(pl, 255))
            lf = torch.cat([near(y_l), pl], 0)
            rp = (replay["anchor_index"], replay["anchor_label"]) if replay is not None else None
            con, mism = contrast_term(cfg, z, zc, lf, logits, gen, rp)
            self.anchor_label_mismatches += mism
            out["con"] = con.item()
            loss = loss + l["w_con"] * ramp(step, l["ramp_con"]) * con
        with torch.no_grad():
            pred = logits.argmax(1)
            out["agree_teacher"] = (pred[Bl:] == pseudo).float().mean().item()
            valid = y_l != 255
            out["acc_labeled"] = (pred[:Bl][valid] == y_l[valid].long()).float().mean().item() if valid.any() else 0.0
            out["kept"] = mask.float().mean().item()
            out["dcrs_thresholds"] = self.thr.tolist()
            out["dcrs_kept_per_class"] = [mask[pseudo == c].float().mean().item() if (pseudo == c).any()
                                          else float("nan") for c in range(C)]
        out["loss"] = loss
        return out


def make_optimizer(cfg, model):
    t = cfg["train"]
    body = [p for n, p in model.named_parameters() if n.startswith("backbone.") and p.requires_grad]
    head = [p for n, p in model.named_parameters() if not n.startswith("backbone.") and p.requires_grad]
    groups = [{"params": body, "lr": t["lr_backbone"], "base": t["lr_backbone"]},
              {"params": head, "lr": t["lr_head"], "base": t["lr_head"]}]
    if t["optimizer"] == "adam":
        return torch.optim.Adam(groups, betas=(0.9, 0.999), eps=1e-8, weight_decay=t["weight_decay"])
    return torch.optim.SGD(groups, momentum=t["momentum"], weight_decay=t["weight_decay"])


def set_lr(opt, factor):
    for g in opt.param_groups:
        g["lr"] = g["base"] * factor


def poly(cfg, step):
    t = cfg["train"]
    frac = 1.0 - step / (t["epochs"] * t["steps_per_epoch"])
    return frac ** t["poly_power"] if frac > 0 else 0.0


@torch.no_grad()
def ema_update(teacher, student, k, max_decay):
    d = min(1.0 - 1.0 / (k + 1), max_decay)
    for (_, tp), (_, sp) in zip(teacher.named_parameters(), student.named_parameters()):
        tp.mul_(d).add_(sp, alpha=1 - d)
    for (_, tb), (_, sb) in zip(teacher.named_buffers(), student.named_buffers()):
        if tb.dtype.is_floating_point:
            tb.mul_(d).add_(sb, alpha=1 - d)


def make_teacher(student):
    t = copy.deepcopy(student)
    for p in t.parameters():
        p.requires_grad_(False)
    return t.eval()


# ---------------------------------------------------------------------------------------------
# Evaluation: val images at data.val_size, the student in eval mode, per-class IoU over the
# classes present (ground truth or prediction), and the DCRS-masked "*" variant.
@torch.no_grad()
def evaluate(model, val, C, thr):
    model.eval()
    cm = torch.zeros(C, C, dtype=torch.long)
    cm_star = torch.zeros(C, C, dtype=torch.long)
    for img, lab in val:
        x = normalize(np.asarray(img)[None])
        p = F.softmax(model(x), 1)[0]
        conf, pred = p.max(0)
        y = torch.from_numpy(np.asarray(lab).astype(np.int64))
        ok = y != 255
        cm += torch.bincount(y[ok] * C + pred[ok], minlength=C * C).view(C, C)
        if thr is not None:
            ok = ok & (conf >= thr[pred])
            cm_star += torch.bincount(y[ok] * C + pred[ok], minlength=C * C).view(C, C)
    model.train()
    return iou(cm), (iou(cm_star) if thr is not None else None)


def iou(cm):
    tp = cm.diag().double()
    union = cm.sum(0).double() + cm.sum(1).double() - tp
    per = torch.where(union > 0, tp / union.clamp(min=1), torch.tensor(float("nan"), dtype=torch.double))
    present = union > 0
    return {"iou": per.tolist(), "miou": per[present].mean().item() if present.any() else float("nan"),
            "pixel_acc": (tp.sum() / cm.sum().clamp(min=1)).item()}


CITYSCAPES = ["road", "sidewalk", "building", "wall", "fence", "pole", "traffic_light", "traffic_sign", "vegetation",
              "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle"]


def class_names(C):
    return CITYSCAPES if C == 19 else [f"class_{c}" for c in range(C)]


def pct(v):
    return "-" if v != v else f"{100 * v:.1f}"


def tables(names, rows):
    md = "| model |" + "".join(f" {n} |" for n in names) + " mIoU |\n|---|" + "---|" * len(names) + "---|\n"
    csv = "model," + ",".join(names) + ",mIoU,pixel_acc\n"
    for name, r in rows:
        md += f"| {name} |" + "".join(f" {pct(v)} |" for v in r["iou"]) + f" {pct(r['miou'])} |\n"
        csv += name + "," + ",".join("" if v != v else pct(v) for v in r["iou"]) + \
            f",{pct(r['miou'])},{pct(r['pixel_acc'])}\n"
    return md, csv


# ---------------------------------------------------------------------------------------------
def cmd_train(a):
    cfg = load_config(a.config, a.set)
    t, d, m = cfg["train"], cfg["data"], cfg["model"]
    out_dir = a.out or cfg["output"]["dir"]
    os.makedirs(out_dir, exist_ok=True)
    json.dump(cfg, open(os.path.join(out_dir, "config.json"), "w"), indent=2)
    seed = t["seed"]
    torch.manual_seed(seed)  # ColorJitter's draws
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    labeled, unlabeled, val = load_split(cfg, a.labeled_list)
    base = tuple(d["base_size"])
    lab_data = decode(labeled, base, True)
    unl_data = decode(unlabeled, base, False) if t["mode"] == "c3" else []
    val_data = decode(val, tuple(d["val_size"]), True)
    C = m["num_classes"]
    student = DeepLab(m)
    if a.init:
        load_weights(student, a.init)
    student.train()
    opt = make_optimizer(cfg, student)
    step_fn = Step(cfg)
    aug = Augment(cfg, rng)
    spe, total = t["steps_per_epoch"], t["epochs"] * t["steps_per_epoch"]
    warm = min(total, t["warmup_epochs"] * spe) if t["mode"] == "c3" else total
    log_every = cfg["output"]["log_every"]
    teacher, ema_k, images, t0 = None, 0, 0, time.time()
    metrics = open(os.path.join(out_dir, "metrics.jsonl"), "w")
    print(f"torch_twin: run folder {out_dir} | {len(labeled)} labeled, {len(unlabeled)} unlabeled, {len(val)} val "
          f"images | {sum(p.numel() for p in student.parameters())} parameters | torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s)", flush=True)
    best, last, last_star = -1.0, None, None
    for step in range(total):
        semi = step >= warm
        if semi and teacher is None:
            teacher = make_teacher(student)
            print(f"step {step}: semi-supervised phase begins (teacher = copy of the student)", flush=True)
        views = [aug.geometry(*lab_data[i]) for i in rng.integers(len(lab_data), size=t["batch_labeled"])]
        x_l = normalize(np.stack([v[0] for v in views]))
        y_l = torch.from_numpy(np.stack([v[1] for v in views]))
        set_lr(opt, poly(cfg, step))
        if semi:
            weak = [aug.geometry(unl_data[i][0], None)[0] for i in rng.integers(len(unl_data), size=t["batch_unlabeled"])]
            strong = [aug.strong(w) for w in weak]
            out = step_fn.semi(student, teacher, x_l, y_l, normalize(np.stack(weak)), normalize(np.stack(strong)),
                               step, step - warm, gen)
        else:
            out = step_fn.supervised(student, x_l, y_l, step, gen)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        loss = out["loss"].item()
        if not math.isfinite(loss):
            sys.exit(f"torch_twin: loss is {loss} at step {step}")
        opt.step()
        if semi:
            ema_update(teacher, student, ema_k, t["ema_max_decay"])
            ema_k += 1
        images += t["batch_labeled"] + (t["batch_unlabeled"] if semi else 0)
        last_step = step + 1 == total
        if (step + 1) % log_every == 0 or last_step:
            secs = time.time() - t0
            j = {"step": step + 1, "epoch": step // spe, "loss": loss, "lr_head": opt.param_groups[1]["lr"],
                 "lr_backbone": opt.param_groups[0]["lr"], "images_per_s": images / secs,
                 "phase": "semi" if semi else "warmup"}
            for k in ("sup", "cons", "con", "kept", "agree_teacher", "acc_labeled", "dcrs_thresholds",
                      "dcrs_kept_per_class"):
                if k in out:
                    j[k] = out[k]
            metrics.write(json.dumps(j) + "\n")
            metrics.flush()
            eta = secs / (step + 1) * (total - step - 1)
            terms = "".join(f" {k} {out[k]:.4f}" for k in ("sup", "cons", "con") if k in out)
            kept = f" | kept {out['kept']:.2f}" if "kept" in out else ""
            print(f"step {step + 1}/{total} | loss {loss:.4f}{terms}{kept} | lr {opt.param_groups[1]['lr']:.2e} | "
                  f"{images / secs:.1f} img/s | ETA {int(eta // 60)}m{int(eta % 60):02d}s", flush=True)
        if last_step or (step + 1) % (t["eval_every_epochs"] * spe) == 0:
            plain, star = evaluate(student, val_data, C, step_fn.thr if t["mode"] == "c3" else None)
            rows = [("student", plain)] + ([("student*", star)] if star else [])
            md, csv = tables(class_names(C), rows)
            open(os.path.join(out_dir, f"eval_{step + 1:06d}.md"), "w").write(md)
            open(os.path.join(out_dir, f"eval_{step + 1:06d}.csv"), "w").write(csv)
            metrics.write(json.dumps({"step": step + 1, "val_miou": plain["miou"], "val_pixel_acc": plain["pixel_acc"],
                                      "val_miou_star": star["miou"] if star else 0.0}) + "\n")
            metrics.flush()
            print(f"step {step + 1}: val mIoU {100 * plain['miou']:.2f}% (pixel acc {100 * plain['pixel_acc']:.2f}%)"
                  + (" (best so far)" if plain["miou"] > best else ""), flush=True)
            best = max(best, plain["miou"])
            last, last_star = plain, star
    save_checkpoint(os.path.join(out_dir, "latest.safetensors"), student, cfg, total)
    md, _ = tables(class_names(C), [("last", last)])
    open(os.path.join(out_dir, "summary.md"), "w").write(
        f"# Run summary (torch_twin)\n\nSteps: {total}, best val mIoU {100 * best}%\n\n{md}")
    print(md)


def save_checkpoint(path, student, cfg, step):
    """The student in our checkpoint layout (student.<torchvision name>, the config in the
    metadata), so that `c3semiseg eval --checkpoint` evaluates the twin's model with our code."""
    tensors = {"student." + k: v.detach().numpy() for k, v in student.state_dict().items()}
    st_io.save(path + ".tmp", tensors, {"config": json.dumps(cfg), "step": str(step), "engine": "torch_twin"})
    os.replace(path + ".tmp", path)


def rel(a, b):
    return abs(a - b) / max(abs(a), abs(b), 1e-12)


def tensor_rel(ours, twin):
    o = torch.from_numpy(np.array(ours)).double()
    return (o - twin.detach().double()).norm().item() / max(o.norm().item(), 1e-12)


def as_torch(a, like):
    """A tensor of ours as the twin's: conv weights and their optimizer state may be OHWI."""
    t = torch.from_numpy(np.array(a))
    if t.dim() == 4 and tuple(t.shape) != tuple(like.shape):
        t = t.permute(0, 3, 1, 2)
    return t.to(like.dtype).contiguous()


def load_model_state(model, st, prefix):
    state = model.state_dict()
    for k in state:
        if prefix + k in st:
            state[k] = as_torch(st[prefix + k], state[k])
    model.load_state_dict(state)


def load_optimizer_state(opt, st, steps):
    """Our checkpoint's optim.<group>.<index>.exp_avg / exp_avg_sq into torch's Adam."""
    for gname, g in zip(("backbone", "head"), opt.param_groups):
        for i, p in enumerate(g["params"]):
            key = f"optim.{gname}.{i}."
            if key + "exp_avg" in st:
                opt.state[p] = {"step": torch.tensor(float(steps)), "exp_avg": as_torch(st[key + "exp_avg"], p),
                                "exp_avg_sq": as_torch(st[key + "exp_avg_sq"], p)}
            else:
                opt.state.pop(p, None)


def worst_tensor(st, model, prefix):
    worst, name = 0.0, ""
    for k, v in model.state_dict().items():
        if k.endswith("num_batches_tracked") or prefix + k not in st:
            continue
        r = tensor_rel(as_torch(st[prefix + k], v), v)
        if r > worst:
            worst, name = r, prefix + k
    return worst, name


def rel_to(ref, a):
    r = ref.detach().double()
    return (torch.from_numpy(np.array(a)).double() - r).norm().item() / max(r.norm().item(), 1e-300)


def replay(cfg, dump, forced, f64=False):
    """Replays every dumped step. forced: each step starts from our state before it (the
    checkpoint after the previous step), so each row measures one step alone; otherwise the
    twin runs its own chain from the initial weights. Returns one dict per step."""
    t = cfg["train"]
    steps = sorted(glob.glob(os.path.join(dump, "step_*.safetensors")))
    student = DeepLab(cfg["model"])
    load_weights(student, os.path.join(dump, "init.safetensors"))
    student.train()
    opt = make_optimizer(cfg, student)
    step_fn = Step(cfg)
    spe, total = t["steps_per_epoch"], t["epochs"] * t["steps_per_epoch"]
    warm = min(total, t["warmup_epochs"] * spe) if t["mode"] == "c3" else total
    teacher, ema_k, rows = None, 0, []
    for step, path in enumerate(steps):
        if forced and step > 0 and not os.path.exists(os.path.join(dump, f"state_{step:06d}.safetensors")):
            continue  # a sparse dump (--dump-state-every): only the steps whose state before them is there
        d = st_io.load(path)
        semi = step >= warm
        if forced and step > 0:
            prev_path = os.path.join(dump, f"state_{step:06d}.safetensors")
            prev, meta = st_io.load(prev_path), st_io.load_metadata(prev_path)
            load_model_state(student, prev, "student.")
            if any(k.startswith("teacher.") for k in prev):
                teacher = teacher or make_teacher(student)
                load_model_state(teacher, prev, "teacher.")
            load_optimizer_state(opt, prev, int(meta["optimizer_steps"]))
            ema_k = int(meta["ema_updates"])
            if "dcrs.thresholds" in prev:
                step_fn.thr = torch.from_numpy(np.array(prev["dcrs.thresholds"])).float()
        x_l = normalize(d["x_l"])
        y_l = torch.from_numpy(np.array(d["y_l"]))
        set_lr(opt, poly(cfg, step))
        anchors = (torch.from_numpy(np.array(d["anchor_index"])).long(),
                   torch.from_numpy(np.array(d["anchor_label"])).long()) if "anchor_index" in d else None
        mism_before = step_fn.anchor_label_mismatches
        rp = None
        if semi:
            if teacher is None:
                teacher = make_teacher(student)
            rp = {"mix_order": torch.from_numpy(np.array(d["mix_order"])).long(),
                  "mix_boxes": [tuple(int(v) for v in b) for b in d["mix_boxes"]]}
            if anchors is not None:
                rp["anchor_index"], rp["anchor_label"] = anchors

        def run_step(st, s_model, t_model, cast):
            if semi:
                return st.semi(s_model, t_model, cast(x_l), y_l, cast(normalize(d["u_w"])),
                               cast(normalize(d["u_s"])), step, step - warm, None, rp)
            return st.supervised(s_model, cast(x_l), y_l, step, None, anchors)

        ref = None
        if forced and f64:  # the same step in float64: how far each engine's fp32 gradient is from it
            ref_step = copy.deepcopy(step_fn)
            s64 = copy.deepcopy(student).double()
            t64 = copy.deepcopy(teacher).double() if teacher is not None else None
            run_step(ref_step, s64, t64, lambda v: v.double())["loss"].backward()
            ref = dict(s64.named_parameters())
        out = run_step(step_fn, student, teacher, lambda v: v)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        grad, grad_name, g64_ours, g64_twin = 0.0, "", 0.0, 0.0
        for k, p in student.named_parameters():
            if p.grad is not None and "grad." + k in d:
                r = tensor_rel(d["grad." + k], p.grad)
                if r > grad:
                    grad, grad_name = r, k
                if ref is not None:
                    g64_ours = max(g64_ours, rel_to(ref[k].grad, d["grad." + k]))
                    g64_twin = max(g64_twin, rel_to(ref[k].grad, p.grad.numpy()))
        opt.step()
        if semi:
            ema_update(teacher, student, ema_k, t["ema_max_decay"])
            ema_k += 1
        ours = [float(v) for v in d["losses"]]
        twin = [out["loss"].item(), out["sup"], out.get("cons", 0.0), out.get("con", 0.0)]
        state_path = os.path.join(dump, f"state_{step + 1:06d}.safetensors")
        ps, ps_name, pt, pt_name = 0.0, "", 0.0, ""
        if os.path.exists(state_path):  # (--dump-state-steps may have left it out)
            after = st_io.load(state_path)
            ps, ps_name = worst_tensor(after, student, "student.")
            if teacher is not None:
                pt, pt_name = worst_tensor(after, teacher, "teacher.")
        rows.append({"step": step, "phase": "semi" if semi else "warmup", "ours": ours, "twin": twin,
                     "rel": [rel(o, w) if max(abs(o), abs(w)) > 1e-6 else 0.0 for o, w in zip(ours, twin)],
                     "lr_factor": abs(poly(cfg, step) - float(d["lr_factor"][0])),
                     "thr": float(np.max(np.abs(np.array(d["dcrs_thresholds"]) - step_fn.thr.numpy())))
                     if "dcrs_thresholds" in d else 0.0,
                     "anchor_mismatch": step_fn.anchor_label_mismatches - mism_before,
                     "grad": grad, "grad_tensor": grad_name, "grad_f64_ours": g64_ours, "grad_f64_twin": g64_twin,
                     "param": max(ps, pt), "param_tensor": ps_name if ps >= pt else pt_name})
    return rows, warm, student, step_fn


def cmd_replay(a):
    """The twin's own chain over every step a whole run of ours dumped (its batches, mixing and
    anchors), then the final evaluation: what the twin's training reaches with our data draws."""
    init = os.path.join(a.dump, "init.safetensors")
    cfg = defaults()
    merge(cfg, json.loads(st_io.load_metadata(init)["config"]), init)
    rows, _, student, step_fn = replay(cfg, a.dump, False)
    t, d = cfg["train"], cfg["data"]
    total = t["epochs"] * t["steps_per_epoch"]
    if len(rows) != total:
        sys.exit(f"{a.dump}: {len(rows)} steps dumped, the run has {total}: dump the whole run (--dump-steps {total})")
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "metrics.jsonl"), "w") as m:
        for r in rows:
            m.write(json.dumps({"step": r["step"] + 1, "loss": r["twin"][0], "sup": r["twin"][1], "cons": r["twin"][2],
                                "con": r["twin"][3], "ours_loss": r["ours"][0], "phase": r["phase"]}) + "\n")
    _, _, val = load_split(cfg, os.path.join(a.dump, "labeled.txt"))
    C = cfg["model"]["num_classes"]
    plain, star = evaluate(student, decode(val, tuple(d["val_size"]), True), C,
                           step_fn.thr if t["mode"] == "c3" else None)
    md, csv = tables(class_names(C), [("student", plain)] + ([("student*", star)] if star else []))
    open(os.path.join(a.out, f"eval_{total:06d}.md"), "w").write(md)
    open(os.path.join(a.out, f"eval_{total:06d}.csv"), "w").write(csv)
    save_checkpoint(os.path.join(a.out, "latest.safetensors"), student, cfg, total)
    print(f"replayed {len(rows)} steps of {a.dump}: val mIoU {100 * plain['miou']:.2f}% "
          f"(pixel acc {100 * plain['pixel_acc']:.2f}%)\n{md}")
    return 0


def print_rows(rows):
    print(f"{'step':>4} {'phase':>6} {'ours loss':>11} {'twin loss':>11} {'loss':>8} {'sup':>8} {'cons':>8} "
          f"{'con':>8} {'thr':>8} {'anch':>4} {'grads':>8} {'g64 ours':>8} {'g64 twin':>8} {'params':>8}  worst parameter")
    for r in rows:
        print(f"{r['step']:>4} {r['phase']:>6} {r['ours'][0]:>11.6f} {r['twin'][0]:>11.6f} "
              + " ".join(f"{v:>8.1e}" for v in r["rel"])
              + f" {r['thr']:>8.1e} {r['anchor_mismatch']:>4} {r['grad']:>8.1e} {r['grad_f64_ours']:>8.1e} "
              f"{r['grad_f64_twin']:>8.1e} {r['param']:>8.1e}  {r['param_tensor']}")


def cmd_lockstep(a):
    """Replays a dump of ours, step by step from our state (gated) and as a free chain (reported)."""
    init = os.path.join(a.dump, "init.safetensors")
    if not os.path.exists(init) or not glob.glob(os.path.join(a.dump, "step_*.safetensors")):
        sys.exit(f"{a.dump}: no init.safetensors / step_*.safetensors (c3semiseg train --dump DIR --dump-steps N)")
    cfg = defaults()
    merge(cfg, json.loads(st_io.load_metadata(init)["config"]), init)
    print(f"lockstep: {a.dump}, torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    forced, warm, _, _ = replay(cfg, a.dump, True, f64=True)
    print(f"\n1. each step from our state before it ({len(forced)} steps, {warm} warm-up); relative differences "
          f"twin vs ours (losses: loss, sup, cons, con; DCRS thresholds: absolute; grads and params: the largest "
          f"per-tensor |ours - twin| / |ours|, params and buffers after the step, student and teacher):")
    print_rows(forced)
    free = []
    if not a.forced_only:
        free, _, _, _ = replay(cfg, a.dump, False)
        print(f"\n2. the twin's own chain from the same initial weights (reported, not checked: rounding grows "
              f"through the steps):")
        print_rows(free)
    worst = {k: max(r[k] if k not in ("rel",) else max(r[k]) for r in forced)
             for k in ("rel", "thr", "grad", "grad_f64_ours", "grad_f64_twin", "param", "lr_factor")}
    mism = sum(r["anchor_mismatch"] for r in forced)
    # Gradients: within grad_tol, or, where PyTorch's own fp32 gradient is further than that
    # from float64, ours no further from float64 than 1.5x PyTorch's and the two within 2x it.
    floor = worst["grad_f64_twin"]
    grad_tol_eff = max(a.grad_tol, 2 * floor)
    # Parameters after a step: within param_tol, or within that step's own gradient difference
    # (itself held to the gradient tolerance above): Adam's update of an element whose gradient
    # is near zero takes the gradient's rounding nearly whole (a bias of the first steps, where
    # float64 shows PyTorch's fp32 gradient, not ours, off by 1e-2).
    param_ok = all(r["param"] <= max(a.param_tol, r["grad"]) for r in forced)
    ok = (worst["rel"] <= a.loss_tol and param_ok and worst["grad"] <= grad_tol_eff
          and worst["grad_f64_ours"] <= max(a.grad_tol, 1.5 * floor) and worst["thr"] <= a.thr_tol and mism == 0
          and worst["lr_factor"] < 1e-12)
    free_last = free[-1] if free else {"param": 0.0, "param_tensor": "", "rel": [0.0]}
    summary = {"steps": len(forced), "warmup_steps": warm, "max_loss_rel": worst["rel"],
               "max_grad_rel": worst["grad"], "max_grad_f64_ours": worst["grad_f64_ours"],
               "max_grad_f64_twin": worst["grad_f64_twin"], "max_param_rel": worst["param"], "max_threshold_abs": worst["thr"],
               "anchor_label_mismatches": mism, "loss_tol": a.loss_tol, "grad_tol": a.grad_tol,
               "param_tol": a.param_tol, "thr_tol": a.thr_tol,
               "free_chain": {"max_loss_rel": max((max(r["rel"]) for r in free), default=0.0),
                              "last_param_rel": free_last["param"],
                              "last_param_tensor": free_last["param_tensor"]},
               "ok": ok}
    json.dump({"summary": summary, "forced": forced, "free": free}, open(os.path.join(a.dump, "lockstep.json"), "w"),
              indent=1)
    print(f"\nstep by step from our state: losses within {worst['rel']:.1e} relative (tolerance {a.loss_tol:.0e}), "
          f"gradients {worst['grad']:.1e} (tolerance {grad_tol_eff:.1e}; against float64: ours {worst['grad_f64_ours']:.1e}, "
          f"PyTorch's {worst['grad_f64_twin']:.1e}, ours held to {max(a.grad_tol, 1.5 * floor):.1e}), parameters and buffers after each step "
          f"{worst['param']:.1e} (tolerance {a.param_tol:.0e} or the step's gradient difference), DCRS thresholds {worst['thr']:.1e} absolute "
          f"(tolerance {a.thr_tol:.0e}), replayed anchors with another label in the twin: {mism}")
    if free:
        print(f"free chain: losses within {summary['free_chain']['max_loss_rel']:.1e} relative over {len(free)} steps, "
              f"parameters after them {free_last['param']:.1e} ({free_last['param_tensor']})")
    print("lockstep: OK" if ok else "lockstep: FAILED")
    return 0 if ok else 1


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    tr = sub.add_parser("train", help="train like c3semiseg train")
    tr.add_argument("--config", default="")
    tr.add_argument("--set", action="append", default=[])
    tr.add_argument("--init", default="", help="initial student weights (c3semiseg train --dump DIR)")
    tr.add_argument("--labeled-list", default="", help="the labeled subset (c3semiseg's run folder labeled.txt)")
    tr.add_argument("--out", default="", help="run folder (default output.dir)")
    tr.add_argument("--threads", type=int, default=1)
    ls = sub.add_parser("lockstep", help="replay a c3semiseg --dump and compare")
    ls.add_argument("dump")
    ls.add_argument("--threads", type=int, default=1)
    ls.add_argument("--loss-tol", type=float, default=1e-4)
    ls.add_argument("--param-tol", type=float, default=1e-3)
    # Gradients: BatchNorm's scale and shift gradients are sums over every position of terms of
    # both signs; in fp32 either engine is up to ~5e-3 away from the float64 gradient there
    # (measured per step by the replay), so 1e-2, and ours is also held to 1e-2 of float64; where
    # PyTorch's own fp32 gradient is further from float64 (1.3e-2 with configs/synthetic.json's
    # w_cons 10 and unlabeled-only mixing), the bounds scale with it (see `ok` in lockstep).
    ls.add_argument("--grad-tol", type=float, default=1e-2)
    ls.add_argument("--thr-tol", type=float, default=1e-4)
    ls.add_argument("--forced-only", action="store_true",
                    help="only the steps replayed from our state (a long sparse dump: --dump-state-every)")
    rp = sub.add_parser("replay", help="train on every step of a whole dumped run of ours, then evaluate")
    rp.add_argument("dump")
    rp.add_argument("--out", required=True)
    rp.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    if a.cmd == "train":
        cmd_train(a)
        return 0
    return cmd_replay(a) if a.cmd == "replay" else cmd_lockstep(a)


if __name__ == "__main__":
    sys.exit(main())
