"""Throughput of the ``imu`` plugin: preprocess + encode + project, items per second, tiny and realistic sizes.

Usage::

    python bench/bench_imu.py                       # CPU, writes bench/results/imu.json
    python bench/bench_imu.py --device cuda --batch-size 64 --out /tmp/imu_gpu.json

Each row times the three stages the core runs per batch of raw inputs (``preprocess`` of every item on the CPU,
``collate`` and transfer, ``encode`` under ``torch.no_grad``, ``project``) over ``--iters`` batches after
``--warmup`` batches, and reports items/s of the whole pipeline and of each stage (medians over the batches).
Inputs are 10-second 6-axis recordings at 50 Hz (a phone/watch rate), so every row includes resampling. Realistic
rows use the default config (200 Hz, 5 s windows, width 256, 768-d embedding, 32 tokens) projecting to LLaMA-2-7B's
4096 width.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import report

from anymal_imu import IMUPlugin, IMUPluginConfig

LLM_DIMS = {"tiny": 64, "realistic": 4096}  # LLaMA-2-7B's hidden size for the realistic rows


def _configs() -> dict[str, IMUPluginConfig]:
    tiny = IMUPlugin.tiny_config()
    realistic = IMUPluginConfig()  # 200 Hz, 5 s windows, width 256, 768-d (ViT-L-14 text) embedding, 32 tokens
    return {
        "tiny/conv_gru": tiny,
        "realistic/conv_gru": realistic,
        "realistic/conv_attention": dataclasses.replace(realistic, encoder_type="conv_attention"),
        "realistic/patch_transformer": dataclasses.replace(realistic, encoder_type="patch_transformer"),
    }


def _recordings(count: int, seconds: float = 10.0, rate: float = 50.0) -> list[tuple[np.ndarray, float]]:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * rate)) / rate
    out = []
    for _ in range(count):
        freqs = rng.uniform(0.5, 4.0, size=6)
        signal = np.sin(2 * np.pi * freqs * t[:, None]) + 0.1 * rng.standard_normal((len(t), 6))
        out.append((signal.astype(np.float32), rate))
    return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_one(
    config: IMUPluginConfig, llm_dim: int, batch_size: int, iters: int, warmup: int, device: torch.device
) -> dict[str, float]:
    """Times ``iters`` batches of the full pipeline (median per stage); returns items/s overall and per stage."""
    plugin = IMUPlugin(config)
    encoder = plugin.build_encoder().to(device).eval().requires_grad_(False)
    projector = plugin.build_projector(llm_dim).to(device).eval()
    raws = _recordings(batch_size)
    stages: dict[str, list[float]] = {"preprocess": [], "encode": [], "project": []}
    for i in range(warmup + iters):
        t0 = time.perf_counter()
        batch = plugin.collate([plugin.preprocess(raw) for raw in raws]).to(device)
        _sync(device)
        t1 = time.perf_counter()
        with torch.no_grad():
            features = plugin.encode(encoder, batch)
            _sync(device)
            t2 = time.perf_counter()
            tokens = plugin.project(projector, features)
            _sync(device)
        t3 = time.perf_counter()
        if i >= warmup:
            for name, seconds in zip(stages, (t1 - t0, t2 - t1, t3 - t2)):
                stages[name].append(seconds)
    assert tokens.shape == (batch_size, config.num_tokens, llm_dim)
    median = {name: statistics.median(times) for name, times in stages.items()}
    total = sum(median.values())
    return {
        "items_per_s": round(batch_size / total, 1),
        **{f"{name}_items_per_s": round(batch_size / seconds, 1) for name, seconds in median.items()},
        "ms_per_batch": round(1000 * total, 2),
        "encoder_params": sum(p.numel() for p in encoder.parameters()),
        "projector_params": sum(p.numel() for p in projector.parameters()),
        "window": f"{config.window_samples} @ {config.sample_rate:g} Hz",
        "tokens": f"{config.num_tokens} x {llm_dim}",
    }


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--only", default=None, help="run only rows whose name contains this text")
    parser.add_argument("--out", default=None, help="JSON output (default bench/results/imu.json)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({platform.machine()})"
    rows = []
    for name, config in _configs().items():
        if args.only and args.only not in name:
            continue
        row = bench_one(config, LLM_DIMS[name.split("/")[0]], args.batch_size, args.iters, args.warmup, device)
        rows.append(
            {
                "config": name,
                **row,
                "batch": args.batch_size,
                "device": device_name,
                "threads": torch.get_num_threads(),
                "torch": torch.__version__,
                "input": "10 s x 6 ch @ 50 Hz",
            }
        )
    report("imu", rows, args.out)
    return rows


if __name__ == "__main__":
    main()
