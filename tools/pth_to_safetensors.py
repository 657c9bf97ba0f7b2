#!/usr/bin/env python3
"""Convert a PyTorch checkpoint (.pth / .pt state_dict) to safetensors, names and shapes kept.

    python3 tools/pth_to_safetensors.py resnet101-63fe2227.pth resnet101.safetensors

Accepts a plain state_dict or a dict holding one under "state_dict" / "model"; strips a
"module." prefix (DataParallel). Needs PyTorch (Debian: python3-torch) only for this step.
"""
import sys

import torch

from st_io import save


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src, dst = sys.argv[1], sys.argv[2]
    obj = torch.load(src, map_location="cpu")
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        sys.exit(f"{src}: not a state_dict (got {type(obj).__name__})")
    out = {}
    for name, t in obj.items():
        if not torch.is_tensor(t):
            continue
        if name.startswith("module."):
            name = name[len("module."):]
        t = t.detach().cpu()
        if t.dtype in (torch.float16, torch.bfloat16):
            t = t.float()
        out[name] = t.contiguous().numpy()
    save(dst, out, {"format": "pt", "source": src})
    print(f"{dst}: {len(out)} tensors")


if __name__ == "__main__":
    main()
