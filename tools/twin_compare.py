#!/usr/bin/env python3
"""make twin: c3semiseg and its PyTorch twin (tools/torch_twin.py) side by side.

    /usr/bin/python3 tools/twin_compare.py [--bin build/c3semiseg] [--config configs/synthetic.json]
        [--runs runs/twin] [--out bench/results] [--seeds 0,1] [--set k=v ...]

For each setting (the embedded default, and with data.labeled_count=125), each mode
(supervised-only, C3) and each seed (train.seed), trains ours and the twin from the same
initial weights on the same labeled images, the two processes side by side with one thread
each. A run that already finished (its summary.md exists) is not trained again, so an
interrupted `make twin` continues where it stopped. Then prints and writes one table
(<out>/twin.md, twin.json): the final val mIoU of every run, ours vs twin, the mean of the
seeds and the difference; per-class IoU (mean of the seeds); the lock-step figures
(runs/twin-lockstep/dump/lockstep.json, from make twin-lockstep); and a picture of the
loss and val mIoU curves of both engines (<out>/twin.png).
"""
import argparse
import csv
import datetime
import glob
import json
import os
import shutil
import subprocess
import sys
import time

SETTINGS = [("default (33 labels)", []), ("125 labels", ["data.labeled_count=125"])]
MODES = ["supervised", "c3"]


def run_pair(a, name, sets, root):
    """Ours and the twin for one setting, mode and seed; returns (ours_dir, twin_dir)."""
    ours, twin, init = (os.path.join(root, d) for d in ("ours", "twin", "init"))
    # what was asked of this folder: the config file's text, the --set list and the binary; a folder
    # trained for another request (an older default, another binary) is trained again, never reused
    request = {"config": open(a.config).read(), "sets": sets, "bin_mtime": os.path.getmtime(a.bin)}
    stamp = os.path.join(root, "request.json")
    if os.path.exists(root) and (not os.path.exists(stamp) or json.load(open(stamp)) != request):
        print(f"{name}: {root} was trained for another config, set list or binary; training again", flush=True)
        shutil.rmtree(root)
    done = lambda d: os.path.exists(os.path.join(d, "summary.md"))  # noqa: E731
    if done(ours) and done(twin):
        print(f"{name}: finished before, not trained again ({root})", flush=True)
        return ours, twin
    os.makedirs(root, exist_ok=True)
    json.dump(request, open(stamp, "w"))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    set_args = sum((["--set", s] for s in sets), [])
    t0 = time.time()
    procs = []
    if not done(ours) or not os.path.exists(os.path.join(init, "init.safetensors")):
        cmd = [a.bin, "train", "--config", a.config] + set_args + ["--set", "train.threads=1", "--set",
                                                                  f"output.dir={ours}", "--dump", init]
        procs.append(("ours", subprocess.Popen(cmd, stdout=open(os.path.join(root, "ours.log"), "w"),
                                               stderr=subprocess.STDOUT, env=env)))
        # the twin starts from the weights ours writes before its first step
        while not os.path.exists(os.path.join(init, "init.safetensors")):
            if procs[0][1].poll() is not None:
                sys.exit(f"{name}: c3semiseg ended before writing its initial weights; see {root}/ours.log")
            time.sleep(0.5)
        time.sleep(1.0)
    if not done(twin):
        cmd = [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_twin.py"), "train",
               "--config", a.config] + set_args + ["--init", os.path.join(init, "init.safetensors"),
                                                   "--labeled-list", os.path.join(init, "labeled.txt"), "--out", twin]
        procs.append(("twin", subprocess.Popen(cmd, stdout=open(os.path.join(root, "twin.log"), "w"),
                                               stderr=subprocess.STDOUT, env=env)))
    for who, p in procs:
        if p.wait() != 0:
            sys.exit(f"{name}: {who} failed (exit {p.returncode}); see {root}/{who}.log")
    print(f"{name}: ours {final(ours)['miou']:.1f}, twin {final(twin)['miou']:.1f} mIoU "
          f"({(time.time() - t0) / 60:.1f} min)", flush=True)
    return ours, twin


def labeled_count(config, sets):
    """data.labeled_count of a run, read as the twin reads the config (comments, --set overrides)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from torch_twin import load_config
    return int(load_config(config, sets)["data"]["labeled_count"])


def metrics(run):
    return [json.loads(l) for l in open(os.path.join(run, "metrics.jsonl")) if l.strip()]


def final(run):
    """The last evaluation: mIoU and per-class IoU (%), from the run's last eval_*.csv."""
    path = sorted(glob.glob(os.path.join(run, "eval_*.csv")))[-1]
    rows = list(csv.reader(open(path)))
    head, plain = rows[0], rows[1]
    per = {c: (float(v) if v else None) for c, v in zip(head[1:-2], plain[1:-2])}
    return {"miou": float(plain[-2]), "iou": per, "step": int(os.path.basename(path)[5:11])}


def mean(v):
    v = [x for x in v if x is not None]
    return sum(v) / len(v) if v else None


def fmt(v):
    return "-" if v is None else f"{v:.1f}"


def plot(results, out_png):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(len(SETTINGS), 2, figsize=(13, 4.2 * len(SETTINGS)), squeeze=False)
    colors = {("ours", "supervised"): "#1f77b4", ("twin", "supervised"): "#17becf",
              ("ours", "c3"): "#d62728", ("twin", "c3"): "#ff9896"}
    for row, (setting, _) in enumerate(SETTINGS):
        ax_loss, ax_miou = axes[row]
        for r in results:
            if r["setting"] != setting:
                continue
            for engine in ("ours", "twin"):
                m = metrics(r[engine + "_dir"])
                train = [x for x in m if "loss" in x]
                ev = [x for x in m if "val_miou" in x]
                style = "-" if r["seed"] == r["seeds"][0] else "--"
                label = f"{engine} {r['mode']} seed {r['seed']}"
                c = colors[(engine, r["mode"])]
                ax_loss.plot([x["step"] for x in train], [x["sup"] for x in train], style, color=c, lw=0.8,
                             label=label)
                ax_miou.plot([x["step"] for x in ev], [100 * x["val_miou"] for x in ev], style + "o", color=c,
                             lw=1.2, ms=3, label=label)
        ax_loss.set_title(f"{setting}: supervised loss L_sup (labeled pixels)")
        ax_loss.set_xlabel("step")
        ax_loss.set_yscale("log")
        ax_miou.set_title(f"{setting}: val mIoU (%)")
        ax_miou.set_xlabel("step")
        ax_miou.legend(fontsize=7, ncol=2)
        for ax in (ax_loss, ax_miou):
            ax.grid(alpha=0.3)
    fig.suptitle("c3semiseg (ours) and its PyTorch twin: same data, same initial weights", fontsize=12)
    fig.tight_layout()
    fig.savefig(out_png, dpi=90)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bin", default="build/c3semiseg")
    p.add_argument("--config", default="configs/synthetic.json")
    p.add_argument("--runs", default="runs/twin")
    p.add_argument("--out", default="bench/results")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--set", action="append", default=[], help="applied to every run of both engines")
    a = p.parse_args()
    seeds = [int(s) for s in a.seeds.split(",")]
    # The commit the runs were trained at (the tree --bin was built from), taken before they start.
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    results = []
    t0 = time.time()
    for setting, sets in SETTINGS:
        for mode in MODES:
            for seed in seeds:
                tag = f"{labeled_count(a.config, sets)}-{mode}-s{seed}"
                all_sets = sets + [f"train.mode={mode}", f"train.seed={seed}"] + a.set
                ours, twin = run_pair(a, f"{setting}, {mode}, seed {seed}", all_sets, os.path.join(a.runs, tag))
                results.append({"setting": setting, "mode": mode, "seed": seed, "seeds": seeds, "ours_dir": ours,
                                "twin_dir": twin, "ours": final(ours), "twin": final(twin)})
    minutes = (time.time() - t0) / 60

    lines = ["| setting | mode | " + " | ".join(f"ours s{s}" for s in seeds) + " | ours mean | "
             + " | ".join(f"twin s{s}" for s in seeds) + " | twin mean | ours - twin |",
             "|---|---|" + "---|" * (2 * len(seeds) + 3)]
    summary = []
    for setting, _ in SETTINGS:
        for mode in MODES:
            rs = [r for r in results if r["setting"] == setting and r["mode"] == mode]
            o, t = [r["ours"]["miou"] for r in rs], [r["twin"]["miou"] for r in rs]
            mo, mt = mean(o), mean(t)
            summary.append({"setting": setting, "mode": mode, "ours": o, "twin": t, "ours_mean": mo,
                            "twin_mean": mt, "diff": mo - mt})
            lines.append(f"| {setting} | {mode} | " + " | ".join(fmt(v) for v in o) + f" | {fmt(mo)} | "
                         + " | ".join(fmt(v) for v in t) + f" | {fmt(mt)} | {mo - mt:+.1f} |")
    gaps = []
    for setting, _ in SETTINGS:
        s = {x["mode"]: x for x in summary if x["setting"] == setting}
        gaps.append(f"- {setting}: C3 - supervised, ours {s['c3']['ours_mean'] - s['supervised']['ours_mean']:+.1f}, "
                    f"twin {s['c3']['twin_mean'] - s['supervised']['twin_mean']:+.1f} mIoU (means of the seeds)")
    classes = [c for c in results[0]["ours"]["iou"]
               if any(r[e]["iou"][c] is not None for r in results for e in ("ours", "twin"))]
    per_class = ["| setting | mode | engine | " + " | ".join(classes) + " | mIoU |",
                 "|---|---|---|" + "---|" * (len(classes) + 1)]
    for setting, _ in SETTINGS:
        for mode in MODES:
            rs = [r for r in results if r["setting"] == setting and r["mode"] == mode]
            for e in ("ours", "twin"):
                per_class.append(f"| {setting} | {mode} | {e} | "
                                 + " | ".join(fmt(mean([r[e]["iou"][c] for r in rs])) for c in classes)
                                 + f" | {fmt(mean([r[e]['miou'] for r in rs]))} |")
    lock_path = "runs/twin-lockstep/dump/lockstep.json"
    lock = json.load(open(lock_path))["summary"] if os.path.exists(lock_path) else None
    if lock:
        lock_text = (f"Lock-step ({lock['steps']} steps, {lock['warmup_steps']} warm-up, each step from our state; "
                     f"`make twin-lockstep`): losses within {lock['max_loss_rel']:.1e} relative, gradients "
                     f"{lock['max_grad_rel']:.1e} (against float64: ours {lock['max_grad_f64_ours']:.1e}, PyTorch "
                     f"{lock['max_grad_f64_twin']:.1e}), parameters and buffers after each step "
                     f"{lock['max_param_rel']:.1e}, DCRS thresholds {lock['max_threshold_abs']:.1e}; "
                     f"{'OK' if lock['ok'] else 'FAILED'}. The twin's own chain over the same steps: losses within "
                     f"{lock['free_chain']['max_loss_rel']:.1e}, parameters {lock['free_chain']['last_param_rel']:.1e} "
                     f"apart after them.")
    else:
        lock_text = "Lock-step: not run (make twin-lockstep)."
    import torch
    head = (f"# c3semiseg vs its PyTorch twin (tools/torch_twin.py)\n\n"
            f"Date {datetime.date.today()}, commit {rev}, CPU ({os.cpu_count()} cores, one thread per run, two runs "
            f"side by side), PyTorch {torch.__version__}; config {a.config}"
            + (f" with {' '.join(a.set)}" if a.set else "") + f"; seeds {a.seeds} (train.seed: initial weights and "
            f"draws; the labeled subset is data.split_seed's); {minutes:.0f} min of training in this invocation.\n"
            f"Final val mIoU (%) of the student, last evaluation.\n\n")
    text = head + "\n".join(lines) + "\n\n" + "\n".join(gaps) + "\n\n" + lock_text + \
        "\n\nPer-class IoU (%), mean of the seeds:\n\n" + "\n".join(per_class) + "\n\nCurves: twin.png\n"
    os.makedirs(a.out, exist_ok=True)
    open(os.path.join(a.out, "twin.md"), "w").write(text)
    json.dump({"summary": summary, "runs": [{k: v for k, v in r.items() if k != "seeds"} for r in results],
               "lockstep": lock, "commit": rev}, open(os.path.join(a.out, "twin.json"), "w"), indent=1)
    plot(results, os.path.join(a.out, "twin.png"))
    print("\n" + text)
    print(f"written: {a.out}/twin.md, twin.json, twin.png")


if __name__ == "__main__":
    main()
