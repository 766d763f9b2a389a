"""Measures the transient memory of the ``[SEG]`` plugin's frozen SAM image encoder on a batch of images (CPU,
the process's high-water mark; run in a fresh interpreter with glibc's mmap threshold pinned, as
:mod:`anymal.plan.measure` does) and prints it beside the plugin's ``planned_workspace_bytes`` as JSON.

Usage: ``python seg_workspace_probe.py '<SamVisionConfig fields as JSON>' <images>``.
"""

from __future__ import annotations

import gc
import json
import sys

import torch

from anymal.plan.measure import proc_status_bytes, reset_peak
from anymal_seg import SegConfig, SegPlugin


def main() -> None:
    vision, images = json.loads(sys.argv[1]), int(sys.argv[2])
    plugin = SegPlugin(SegConfig(sam_config={"vision_config": vision}))
    frozen = plugin.build_frozen().eval()
    pixels = torch.randn(images, 3, vision["image_size"], vision["image_size"])
    with torch.no_grad():
        frozen(pixels[:1])  # pages in the code and the kernels' own buffers
    gc.collect()
    base = proc_status_bytes()["VmRSS"]
    reset_peak()
    with torch.no_grad():
        frozen(pixels)
    measured = proc_status_bytes()["VmHWM"] - base
    print(json.dumps({"measured": measured, "planned": plugin.planned_workspace_bytes(images, 4)}))


if __name__ == "__main__":
    main()
