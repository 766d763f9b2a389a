"""Audio plugin throughput: preprocess (decode + soxr resample + CLAP log-mel) + CLAP encode + project, in items/s.

Sizes: the tiny test tower, and the real ``laion/clap-htsat-unfused`` architecture (HTSAT-tiny, 28M parameters,
random init: no download) projecting to LLaMA-2-7B's width; ``--large`` adds ``laion/larger_clap_general``'s
HTSAT-base. Inputs are the real ESC-50 clips and jfk.flac from ``../shared/assets/audio`` (files decoded each time,
as in training without a feature cache), or synthetic clips without them.

Run: ``python bench/bench_audio.py [--batch 8] [--device cpu|cuda] [--large] [--out bench/results/audio.json]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from common import best_of, report

from anymal.testing import asset
from anymal_audio import AudioPlugin, AudioPluginConfig

# laion/clap-htsat-unfused's audio tower (HTSAT-tiny) and laion/larger_clap_general's (HTSAT-base).
HTSAT_TINY = {
    "num_mel_bins": 64,
    "spec_size": 256,
    "patch_embeds_hidden_size": 96,
    "depths": [2, 2, 6, 2],
    "num_attention_heads": [4, 8, 16, 32],
    "window_size": 8,
    "hidden_size": 768,
    "projection_dim": 512,
    "enable_fusion": False,
}
HTSAT_BASE = {**HTSAT_TINY, "patch_embeds_hidden_size": 128, "depths": [2, 2, 12, 2], "hidden_size": 1024}


def clips(count: int) -> list:
    """``count`` raw inputs: the real ESC-50 clips and jfk.flac in turn, or synthetic 5 s tones without them."""
    folder = asset("audio")
    files = sorted(folder.glob("esc50_*.wav")) + sorted(folder.glob("jfk.flac"))
    if files:
        return [str(files[i % len(files)]) for i in range(count)]
    t = np.arange(44100 * 5) / 44100
    return [((0.3 * np.sin(2 * np.pi * (220 + 40 * i) * t)).astype(np.float32), 44100) for i in range(count)]


def throughput(label: str, config: AudioPluginConfig, llm_dim: int, batch: int, device: str, repeats: int) -> dict:
    plugin = AudioPlugin(config)
    encoder = plugin.build_encoder().to(device)
    projector = plugin.build_projector(llm_dim).to(device)
    raws = clips(batch)

    def preprocess():
        return plugin.collate([plugin.preprocess(raw) for raw in raws])

    collated = {k: v.to(device) for k, v in preprocess().items()}

    def encode():
        with torch.no_grad():
            out = plugin.encode(encoder, collated)
        if device == "cuda":
            torch.cuda.synchronize()
        return out

    features = encode()

    def project():
        with torch.no_grad():
            out = plugin.project(projector, features)
        if device == "cuda":
            torch.cuda.synchronize()
        return out

    pre_s = best_of(preprocess, repeats=repeats)
    enc_s = best_of(encode, repeats=repeats)
    proj_s = best_of(project, repeats=repeats)
    total = pre_s + enc_s + proj_s
    return {
        "case": label,
        "device": device,
        "batch": batch,
        "encoder_params_M": sum(p.numel() for p in encoder.parameters()) / 1e6,
        "projector_params_M": sum(p.numel() for p in projector.parameters()) / 1e6,
        "tokens_x_dim": f"{config.num_tokens}x{llm_dim}",
        "preprocess_ms_per_item": 1000 * pre_s / batch,
        "encode_ms_per_item": 1000 * enc_s / batch,
        "project_ms_per_item": 1000 * proj_s / batch,
        "items_per_s": batch / total,
        "encode_project_items_per_s": batch / (enc_s + proj_s),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--large", action="store_true", help="add the HTSAT-base (larger_clap_general) row")
    parser.add_argument("--out", default=None, help="JSON path (default bench/results/audio.json)")
    args = parser.parse_args()

    tiny = AudioPlugin.tiny_config()
    real = AudioPluginConfig(encoder="", audio_config=HTSAT_TINY, num_tokens=32)
    rows = [
        throughput("tiny HTSAT (tests), 5 s window", tiny, 32, args.batch, args.device, args.repeats),
        throughput("clap-htsat-unfused arch, 10 s", real, 4096, args.batch, args.device, args.repeats),
    ]
    if args.large:
        large = AudioPluginConfig(encoder="", audio_config=HTSAT_BASE, num_tokens=32)
        rows.append(throughput("larger_clap_general arch, 10 s", large, 4096, args.batch, args.device, args.repeats))
    machine = (
        f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    if args.device == "cuda":
        machine += f", {torch.cuda.get_device_name()}"
    for row in rows:
        row["machine"] = machine
    report("audio", rows, args.out)


if __name__ == "__main__":
    main()
