#!/usr/bin/env python3
"""Writes the names, dtypes and shapes of torchvision's ResNet state_dicts (no weights) to
tests/golden/torchvision_resnet_names.json, so a test can check that a torchvision checkpoint
loads into our ResNets with no renaming, without shipping 170 MB of weights.

    /usr/bin/python3 tools/torchvision_names.py tests/golden/torchvision_resnet_names.json
"""
import json
import sys

import torchvision

out = {}
for depth in (18, 34, 50, 101):
    model = getattr(torchvision.models, f"resnet{depth}")()
    out[str(depth)] = [[k, str(v.dtype).replace("torch.", ""), list(v.shape)] for k, v in model.state_dict().items()]
with open(sys.argv[1], "w") as f:
    json.dump({"torchvision": torchvision.__version__, "models": out}, f, separators=(",", ":"))
print(sys.argv[1], {k: len(v) for k, v in out.items()})
