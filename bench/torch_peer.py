#!/usr/bin/env python3
"""The whole-step benchmark of bench/bench_step.cpp, in PyTorch, side by side with ours.

    /usr/bin/python3 bench/torch_peer.py --cpu --run-ours build/bench_step
    python3 bench/torch_peer.py --gpu --run-ours build/bench_step   (or --ours bench/results/step-gpu.json)

Builds the same model (DeepLab-v2 on a ResNet with our conventions: stride on the first 1x1
of a bottleneck, OS8 dilations, ceil-mode max pool, ASPP-v2, align_corners upsampling, the
projection head) and the same C3 step (METHOD.md: EMA teacher on the weak view, DCRS
thresholds and mask, cross-set CutMix of [x_l; u_s] with both complementary mixes, un-mix of
logits and layer4 features, L_sup CE, L_cons soft CE with the DCRS mask and 1/C, L_con
pixel contrastive loss with hard/easy sampling; Adam and the EMA update), and times the same
phases the same way: wall clock around each phase with a device synchronize, one warm-up,
the median of the repeats. Rows: eager FP32 (cudnn.benchmark on the GPU) beside our tf32 (GPU)
or fp32 (CPU) rows, and bf16 autocast + channels_last beside our train.precision=bf16 rows. The model and the config defaults are the PyTorch twin's
(tools/torch_twin.py; its ResNets are tools/make_golden.py's).
Prints our time over PyTorch's for each phase and writes <out>/torch-{cpu,gpu}.{json,md}.
"""
import argparse
import copy
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import torch_twin as tt  # noqa: E402  (the model and the config defaults of the PyTorch twin)

def load_config(path):
    return tt.load_config(path, [])


class Model(tt.DeepLab):
    """The twin's DeepLab-v2 with the C3 projection head; forward gives the logits and layer4."""

    def forward(self, x):
        l4 = self.features(x)
        return self.logits(l4, x.shape[2:]), l4

    @property
    def proj(self):
        return self.proj_head


def cutmix_masks(K, H, W, dev):
    """One box covering half the image per pair; m = 0 inside the box, 1 outside."""
    m = torch.ones(K, 1, H, W, device=dev)
    for k in range(K):
        h = min(max(round(H * math.exp(torch.rand(1).item() * math.log(0.5))), 1), H)
        w = min(max(round(H * W / 2 / h), 1), W)
        y0, x0 = torch.randint(0, H - h + 1, (1,)).item(), torch.randint(0, W - w + 1, (1,)).item()
        m[k, :, y0:y0 + h, x0:x0 + w] = 0
    return m


def swap(x, m):
    """Both complementary mixes of pairs (k, k+K); applied again it un-mixes."""
    K = x.shape[0] // 2
    if m.shape[2:] != x.shape[2:]:
        m = F.interpolate(m, x.shape[2:], mode="nearest")
    a, b = x[:K], x[K:]
    return torch.cat([a * (1 - m) + b * m, a * m + b * (1 - m)], 0)


def dcrs(p_t, thr, s, momentum):
    """Per-class quantile of the teacher's confidence (descending, index floor(N_c s)), EMA of thr, mask."""
    conf, label = p_t.max(1)
    conf, label = conf.flatten(), label.flatten()
    C = p_t.shape[1]
    order = torch.argsort(label.double() * 2 + (1 - conf.double()))  # by class, confidence descending
    counts = torch.bincount(label, minlength=C)
    start = torch.cumsum(counts, 0) - counts
    rank = torch.minimum((counts.double() * s).long(), (counts - 1).clamp(min=0))
    cur = conf[order][(start + rank).clamp(max=conf.numel() - 1)]
    thr = torch.where(counts > 0, momentum * thr + (1 - momentum) * cur, thr)
    return thr, (conf >= thr[label]).view(p_t.shape[0], *p_t.shape[2:]), label.view(p_t.shape[0], *p_t.shape[2:])


def sample_anchors(labels, pred, per_class, min_pixels):
    """Per image and class (never class 0) with more than min_pixels pixels: half hard, half easy."""
    idx, lab = [], []
    flat_l, flat_p = labels.flatten(1), pred.flatten(1)
    hw = flat_l.shape[1]
    for n in range(flat_l.shape[0]):
        counts = torch.bincount(flat_l[n][flat_l[n] != 255], minlength=256)
        for c in torch.nonzero(counts[1:255] > min_pixels).flatten().tolist():
            c += 1
            hard = torch.nonzero((flat_l[n] == c) & (flat_p[n] != c)).flatten()
            easy = torch.nonzero((flat_l[n] == c) & (flat_p[n] == c)).flatten()
            nh = min(per_class // 2, hard.numel())
            ne = min(per_class - nh, easy.numel())
            nh = min(per_class - ne, hard.numel())
            pick = torch.cat([hard[torch.randperm(hard.numel(), device=hard.device)[:nh]],
                              easy[torch.randperm(easy.numel(), device=easy.device)[:ne]]])
            idx.append(pick + n * hw)
            lab.append(torch.full_like(pick, c))
    return (torch.cat(idx), torch.cat(lab)) if idx else (None, None)


def contrastive(z, zc, y, tau, tau_b):
    s = z @ zc.t() / tau
    same = y[:, None] == y[None, :]
    pos = same & ~torch.eye(len(y), dtype=torch.bool, device=y.device)
    neg = ~same
    neg_sum = (s.exp() * neg).sum(1, keepdim=True)
    log_prob = s - torch.log(s.exp() + neg_sum)
    npos = pos.sum(1)
    ok = (npos > 0) & (neg.sum(1) > 0)
    if not ok.any():
        return s.sum() * 0
    row = (log_prob * pos).sum(1)[ok] / npos[ok]
    return -(tau / tau_b) * row.mean()


class Step:
    def __init__(self, cfg, bl, bu, dev, bf16, channels_last):
        self.cfg, self.dev, self.bl, self.bu = cfg, dev, bl, bu
        self.fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.amp = bf16
        torch.manual_seed(0)
        self.student = Model(cfg["model"]).to(dev, memory_format=self.fmt).train()
        self.teacher = copy.deepcopy(self.student).eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        t = cfg["train"]
        body = [p for n, p in self.student.named_parameters() if n.startswith("backbone.") and p.requires_grad]
        head = [p for n, p in self.student.named_parameters() if not n.startswith("backbone.") and p.requires_grad]
        self.opt = torch.optim.Adam([{"params": body, "lr": t["lr_backbone"]}, {"params": head, "lr": t["lr_head"]}])
        H, W = cfg["data"]["crop"]
        g = torch.Generator().manual_seed(7)
        img = lambda n: torch.randn(n, 3, H, W, generator=g).to(dev, memory_format=self.fmt)
        self.x_l, self.u_w, self.u_s = img(bl), img(bu), img(bu)
        C = cfg["model"]["num_classes"]
        cols = torch.arange(W)[None, None, :] * 4 // W
        self.y_l = ((torch.arange(bl)[:, None, None] * 4 + cols) % C).expand(bl, H, W).to(dev)  # bands, as ours
        self.thr = torch.full((C,), cfg["dcrs"]["init"], device=dev)
        self.ema_updates = 0

    def autocast(self):
        return torch.autocast(self.dev.type, dtype=torch.bfloat16, enabled=self.amp)

    def student_loss(self):
        with self.autocast():
            logits, _ = self.student(torch.cat([self.x_l, self.u_s]))
            return F.cross_entropy(logits[:self.bl].float(), self.y_l, ignore_index=255)

    def teacher_forward(self):
        with torch.no_grad(), self.autocast():
            logits, l4 = self.teacher(self.u_w)
            return F.softmax(logits.float(), 1), F.normalize(self.teacher.proj(l4).float(), dim=1)

    def optimizer_and_ema(self):
        self.opt.step()
        decay = min(1 - 1 / (self.ema_updates + 1), self.cfg["train"]["ema_max_decay"])
        self.ema_updates += 1
        with torch.no_grad():
            for t, s in zip(self.teacher.parameters(), self.student.parameters()):
                t.mul_(decay).add_(s, alpha=1 - decay)
            for t, s in zip(self.teacher.buffers(), self.student.buffers()):
                if t.dtype.is_floating_point:
                    t.mul_(decay).add_(s, alpha=1 - decay)

    def c3_loss(self):
        cfg, lo, d = self.cfg, self.cfg["loss"], self.cfg["dcrs"]
        p_t, e_t = self.teacher_forward()
        self.thr, mask, pseudo = dcrs(p_t, self.thr, d["s"], d["momentum"])
        N, K = self.bl + self.bu, (self.bl + self.bu) // 2
        order = torch.randperm(N, device=self.dev)
        inverse = torch.argsort(order)
        H, W = self.x_l.shape[2:]
        m = cutmix_masks(K, H, W, self.dev)
        with self.autocast():
            mixed = swap(torch.cat([self.x_l, self.u_s])[order], m)
            logits_mix, l4_mix = self.student(mixed)
            logits = swap(logits_mix.float(), m)[inverse]
            l4 = swap(l4_mix, m)[inverse]
            z = F.normalize(self.student.proj(l4).float(), dim=1)
        C = logits.shape[1]
        sup = F.cross_entropy(logits[:self.bl], self.y_l, ignore_index=255)
        logq = F.log_softmax(logits[self.bl:], 1)
        mk = mask.float()
        cons = (-(p_t * logq).sum(1) * mk).sum() / mk.sum().clamp(min=1) / C
        h, w = z.shape[2:]
        near = lambda t: F.interpolate(t[:, None].float(), (h, w), mode="nearest")[:, 0].long()
        lab_u = torch.where(near(mask.long()) > 0, near(pseudo), torch.full_like(near(pseudo), 255))
        feat_labels = torch.cat([near(self.y_l), lab_u])
        pred = F.interpolate(logits.detach(), (h, w), mode="bilinear", align_corners=False).argmax(1)
        zf = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
        cf = torch.cat([z[:self.bl].detach(), e_t]).permute(0, 2, 3, 1).reshape(-1, z.shape[1])
        groups, con, used = max(1, min(cfg["train"]["contrast_groups"], N)), 0, 0
        idx, lab = sample_anchors(feat_labels, pred, lo["samples_per_class"], lo["min_pixels"])
        for gi in range(groups if idx is not None else 0):
            lo_, hi_ = gi * N // groups * h * w, (gi + 1) * N // groups * h * w
            sel = (idx >= lo_) & (idx < hi_)
            if sel.sum() >= 2:
                con, used = con + contrastive(zf[idx[sel]], cf[idx[sel]], lab[sel], lo["tau"], lo["tau_b"]), used + 1
        con = con / used if used else 0
        return sup + lo["w_cons"] * cons + lo["w_con"] * con


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, reps, dev, setup=None):
    """One warm-up, then reps calls with a synchronize; (median, best) in seconds and the peak memory."""
    times = []
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for r in range(reps + 1):
        if setup:
            setup()
        sync(dev)
        t0 = time.perf_counter()
        fn()
        sync(dev)
        if r:
            times.append(time.perf_counter() - t0)
    times.sort()
    peak = torch.cuda.max_memory_allocated() if dev.type == "cuda" else \
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return times[len(times) // 2], times[0], peak


PHASES = ["student forward (all images, L_sup)", "student backward", "optimizer step + EMA",
          "teacher forward (unlabeled, no grad)", "full C3 step"]


def run_batch(cfg, bl, bu, dev, variant, reps):
    s = Step(cfg, bl, bu, dev, bf16=variant == "bf16+cl", channels_last=variant == "bf16+cl")
    box = {}

    def forward():
        box["loss"] = s.student_loss()

    def full():
        loss = s.c3_loss()
        s.opt.zero_grad(set_to_none=True)
        loss.backward()
        s.optimizer_and_ema()

    fns = [(forward, None), (lambda: box["loss"].backward(), lambda: (s.opt.zero_grad(set_to_none=True), forward())),
           (s.optimizer_and_ema, None), (s.teacher_forward, None), (full, None)]
    out = {}
    for name, (fn, setup) in zip(PHASES, fns):
        out[name] = timed(fn, reps, dev, setup)
        box.clear()
    return out


def our_precision(variant, gpu):
    """Our train.precision for a PyTorch variant: its FP32 default (TF32 convolutions on a GPU) or bf16."""
    return "bf16" if variant.startswith("bf16") else ("tf32" if gpu else "fp32")


def our_rows(rows, gpu):
    """{(batch, precision, threads, phase): median ms} of bench_step's JSON rows (files from before
    the precision rows hold the default precision only)."""
    return {(r["batch"], r.get("precision", "tf32" if gpu else "fp32"), r.get("threads", "-"), r["phase"]):
            r["median_ms"] for r in rows if "median_ms" in r}


def run_ours(binary, gpu, config, batch, threads, reps, precision):
    """Our bench_step for one batch, thread count and precision."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [binary, "--gpu" if gpu else "--cpu", "--config", config, "--batches", batch,
               "--threads", "0" if threads == "-" else threads, "--reps", str(reps), "--precision", precision,
               "--out", tmp]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        return our_rows(json.load(open(os.path.join(tmp, "step-gpu.json" if gpu else "step-cpu.json")))["results"], gpu)


def meta(device):
    git = lambda *a: subprocess.run(["git", *a], capture_output=True, text=True).stdout.strip()
    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    if git("status", "--porcelain", "--untracked-files=no"):
        commit += "+dirty"
    return {"program": "PyTorch peer (bench/torch_peer.py)", "device": device, "commit": commit,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset"),
            "load_before": " ".join(open("/proc/loadavg").read().split()[:3])}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gpu", action="store_true")
    ap.add_argument("--cpu", action="store_true")
    ap.add_argument("--config")
    ap.add_argument("--batches", help="e.g. 4+4,2+2 (default: those of --ours, else 4+4,2+2 / 16+16,...)")
    ap.add_argument("--ours", help="our bench_step JSON (bench/results/step-cpu.json)")
    ap.add_argument("--run-ours", metavar="BIN", help="run our bench_step for each row just before PyTorch's "
                    "(both measured under the same machine load); its times replace those of --ours")
    ap.add_argument("--reps", type=int)
    ap.add_argument("--threads", help="CPU thread counts, e.g. 1,2 (default: 1 and all cores)")
    ap.add_argument("--out", default="bench/results")
    a = ap.parse_args()
    gpu = a.gpu or (not a.cpu and torch.cuda.is_available())
    dev = torch.device("cuda" if gpu else "cpu")
    if gpu:
        torch.backends.cudnn.benchmark = True
        device = torch.cuda.get_device_name(0)
    else:
        device = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "CPU")
        device += f", {os.cpu_count()} cores"
    ours = json.load(open(a.ours)) if a.ours and os.path.exists(a.ours) else None
    if a.ours and not ours:
        print(f"torch_peer: {a.ours} not found: no ratios (run bench_step first)")
    config = a.config or (ours["results"][0]["config"] if ours and ours["results"] and "config" in ours["results"][0]
                          else ("configs/cityscapes_372.json" if gpu else "configs/synthetic.json"))
    cfg = load_config(config)
    default_batches = "16+16,8+8,4+4,2+2" if gpu else "4+4,2+2"
    if ours:
        default_batches = ",".join(dict.fromkeys(r["batch"] for r in ours["results"] if "median_ms" in r))
    batches = [tuple(int(v) for v in b.split("+")) for b in (a.batches or default_batches).split(",")]
    reps = a.reps or 5
    # (variant, threads): FP32 and bf16 autocast + channels_last; on the CPU one thread and all
    # cores, as bench_step; "-" on the GPU. Ours: train.precision tf32 (GPU) / fp32 (CPU), bf16.
    threads = ["-"] if gpu else (a.threads.split(",") if a.threads else ["1", str(os.cpu_count())])
    variants = [(v, t) for t in threads for v in ("fp32", "bf16+cl")]
    ours_ms = our_rows(ours["results"] if ours else [], gpu)
    m = cfg["model"]
    model = (f"DeepLab-v2 ResNet-{m['depth']} width {m['width']:g}, OS{m['output_stride']}, "
             f"{'frozen' if m['frozen_bn'] else 'trainable'} BN, {cfg['data']['crop'][0]}x{cfg['data']['crop'][1]} crops")
    info = meta(device)
    print(f"PyTorch {torch.__version__} on {device}: {model} ({config})")
    rows, results = [], []
    for bl, bu in batches:
        b = f"{bl}+{bu}"
        for v, th in variants:
            prec = our_precision(v, gpu)
            if a.run_ours:
                ours_ms.update(run_ours(a.run_ours, gpu, config, b, th, reps, prec))
            if th != "-":
                torch.set_num_threads(int(th))
            try:
                out = run_batch(cfg, bl, bu, dev, v, reps)
            except torch.cuda.OutOfMemoryError if gpu else MemoryError:
                print(f"  batch {b} {v}: out of memory")
                rows.append([b, v, th, "out of memory", "-", "-", "-", "-", "-", "-"])
                torch.cuda.empty_cache()
                continue
            for phase, (med, best, peak) in out.items():
                o = ours_ms.get((b, prec, th, phase))
                ratio = f"{o / (med * 1e3):.2f}" if o else "-"
                ips = "-" if phase.startswith("optimizer") else \
                    f"{(bu if phase.startswith('teacher') else bl + bu) / med:.1f}"
                print(f"  {b:>6} {v:8} {th:>2} thr {phase:38} {med * 1e3:9.2f} ms  ours {o if o else float('nan'):9.2f} ms"
                      f"  ours/torch {ratio}")
                rows.append([b, v, th, phase, f"{med * 1e3:.2f}", f"{best * 1e3:.2f}", ips, f"{peak / 2**30:.2f}",
                             f"{o:.2f}" if o else "-", ratio])
                results.append({"batch": b, "variant": v, "threads": th, "phase": phase, "median_ms": med * 1e3,
                                "best_ms": best * 1e3, "peak_bytes": peak, "ours_median_ms": o,
                                "ours_over_torch": o / (med * 1e3) if o else None})
    info["load_after"] = " ".join(open("/proc/loadavg").read().split()[:3])
    ours_src = f"{a.run_ours} run just before each PyTorch row" if a.run_ours else a.ours
    info.update({"model": model, "config": config, "results": results, "ours": ours_src})
    os.makedirs(a.out, exist_ok=True)
    stem = os.path.join(a.out, "torch-gpu" if gpu else "torch-cpu")
    json.dump(info, open(stem + ".json", "w"), indent=1)
    head = ["batch (l+u)", "variant", "threads", "phase", "median ms", "best ms", "images/s", "peak GiB", "ours ms", "ours/torch"]
    with open(stem + ".md", "w") as f:
        f.write(f"# {info['program']}\n\nDevice: {device}, PyTorch {torch.__version__}, {info['threads']} threads, "
                f"OMP_WAIT_POLICY {info['omp_wait_policy']}  \nDate: {info['date']}, commit {info['commit']}  \nLoad average (1/5/15 min) before: "
                f"{info['load_before']}, after: {info['load_after']} (other work shares this machine)\n\n"
                f"Model: {model} ({config}); the same phases as bench/bench_step, timed the same way; "
                f"ours: {ours_src or 'not given'} (ours/torch > 1: we are slower).\n\n")
        f.write("| " + " | ".join(head) + " |\n|" + "---|" * len(head) + "\n")
        f.writelines("| " + " | ".join(r) + " |\n" for r in rows)
    print(f"wrote {stem}.json and {stem}.md")


if __name__ == "__main__":
    main()
