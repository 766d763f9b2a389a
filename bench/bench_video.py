"""Video plugin throughput: decoding (decord vs PyAV, same file, same frames) and preprocess + encode + project.

Decoding rows: the real NASA clip (``../shared/assets/video/nasa_13013.mp4``, stream #3, h264 480x270, 390 frames)
decoded to RGB by each decoder for the same frame positions: every frame (sequential), and 8 / 32 uniformly
sampled frames (random access, what the plugin does). ``decode_fps`` times the decoder alone on a prepared stream
index; ``load_fps`` is the whole ``load_video`` call (PyAV demux-only index + decode). Each row checks that both
decoders returned the same frames (``max_abs_diff_vs_pyav``).

Model rows: items (clips) per second through ``preprocess`` (decode + sample + the image transform), ``encode``
(the frozen vision tower on all frames) and ``project``, for the tiny test tower and for the real open_clip
ViT-L-14 architecture (random init: no download) projecting to LLaMA-2-7B's width (4096), with both aggregations.

Run: ``python bench/bench_video.py [--frames 4] [--batch 2] [--threads N] [--device cpu|cuda] [--out PATH]``
(default output ``bench/results/video.json``). On a busy shared CPU, ``--threads 1`` gives steadier numbers: torch's
multi-threaded small ops stall when the cores are oversubscribed; the load average is recorded with the results.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from common import RESULTS, _fmt, best_of

from anymal_video import VideoPlugin, VideoPluginConfig, load_video, uniform_indices
from anymal_video.decord_decoder import decode_decord, decord_available
from anymal_video.plugin import example_video, moving_square
from anymal_video.probe import probe_video
from anymal_video.pyav_decoder import decode_pyav
from anymal_video.source import MediaSource


def decoding_rows(path: Path, repeats: int) -> list[dict]:
    """Frames per second of each decoder on the same frames of ``path`` (best video stream)."""
    source = MediaSource.from_raw(path)
    index = probe_video(source)
    probe_s = best_of(lambda: probe_video(source), repeats=repeats)
    decoders = {"pyav": decode_pyav}
    if decord_available():
        decoders["decord"] = decode_decord
    rows = []
    for case, indices in (
        ("all frames", np.arange(index.n_frames)),
        ("8 uniform", uniform_indices(index.n_frames, 8)),
        ("32 uniform", uniform_indices(index.n_frames, 32)),
    ):
        reference = decode_pyav(source, index, indices)
        for name, decode in decoders.items():
            frames = decode(source, index, indices)
            diff = int(np.abs(frames.astype(np.int16) - reference.astype(np.int16)).max())
            decode_s = best_of(lambda d=decode, i=indices: d(source, index, i), repeats=repeats)
            load_s = best_of(lambda n=name, i=indices: load_video(path, lambda s, f: i, decoder=n), repeats=repeats)
            rows.append(
                {
                    "case": f"decode {case}",
                    "decoder": name,
                    "frames": len(indices),
                    "resolution": f"{index.width}x{index.height}",
                    "probe_ms": 1000 * probe_s,
                    "decode_fps": len(indices) / decode_s,
                    "load_fps": len(indices) / load_s,
                    "max_abs_diff_vs_pyav": diff,
                }
            )
    return rows


def model_row(label: str, config: VideoPluginConfig, llm_dim: int, batch: int, device: str, repeats: int) -> dict:
    """Clips per second through preprocess, encode and project (each timed separately, then combined)."""
    plugin = VideoPlugin(config)
    encoder = plugin.build_encoder().to(device).eval()
    projector = plugin.build_projector(llm_dim).to(device)
    clip = example_video()
    raws = [str(clip) if clip.is_file() else (moving_square(64, 96, i), 25.0) for i in range(batch)]

    def preprocess():
        return plugin.collate([plugin.preprocess(raw) for raw in raws])

    batch_on_device = {k: v.to(device) for k, v in preprocess().items()}

    def run(fn):
        def timed():
            with torch.no_grad():
                out = fn()
            if device == "cuda":
                torch.cuda.synchronize()
            return out

        return timed

    encode = run(lambda: plugin.encode(encoder, batch_on_device))
    features = encode()
    project = run(lambda: plugin.project(projector, features))
    pre_s = best_of(preprocess, repeats=repeats)
    enc_s = best_of(encode, repeats=repeats)
    proj_s = best_of(project, repeats=repeats)
    return {
        "case": label,
        "decoder": config.decoder,
        "frames": config.num_frames,
        "batch": batch,
        "device": device,
        "encoder_params_M": sum(p.numel() for p in encoder.parameters()) / 1e6,
        "projector_params_M": sum(p.numel() for p in projector.parameters()) / 1e6,
        "tokens_x_dim": f"{plugin.num_tokens}x{llm_dim}",
        "preprocess_ms_per_item": 1000 * pre_s / batch,
        "encode_ms_per_item": 1000 * enc_s / batch,
        "project_ms_per_item": 1000 * proj_s / batch,
        "items_per_s": batch / (pre_s + enc_s + proj_s),
    }


def show(rows: list[dict]) -> None:
    """Prints rows as an aligned table (decoding and model rows have different columns, so two tables)."""
    if not rows:
        return
    keys = list(dict.fromkeys(k for row in rows for k in row if k != "machine"))
    widths = {k: max(len(k), *(len(_fmt(row.get(k))) for row in rows)) for k in keys}
    print("  ".join(k.ljust(widths[k]) for k in keys))
    for row in rows:
        print("  ".join(_fmt(row.get(k)).ljust(widths[k]) for k in keys))
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=4, help="frames per clip for the model rows")
    parser.add_argument("--batch", type=int, default=2, help="clips per batch for the model rows")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--skip-large", action="store_true", help="leave out the ViT-L-14 rows")
    parser.add_argument("--out", default=None, help="JSON path (default bench/results/video.json)")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    decode_rows = decoding_rows(example_video(), args.repeats) if example_video().is_file() else []
    rows = []
    tiny = dataclasses.replace(VideoPlugin.tiny_config(), num_frames=args.frames)
    rows.append(model_row("tiny ViT (tests), resampler", tiny, 32, args.batch, args.device, args.repeats))
    if not args.skip_large:
        large = VideoPluginConfig(model_name="ViT-L-14", pretrained=None, num_frames=args.frames, num_tokens=64)
        rows.append(model_row("ViT-L-14 arch, resampler", large, 4096, args.batch, args.device, args.repeats))
        pooled = dataclasses.replace(large, aggregation="mean_pool", num_tokens=args.frames + 256)
        rows.append(model_row("ViT-L-14 arch, mean_pool", pooled, 4096, args.batch, args.device, args.repeats))
    machine = (
        f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"load average {load_before:.1f} -> {os.getloadavg()[0]:.1f}"
    )
    if args.device == "cuda":
        machine += f", {torch.cuda.get_device_name()}"
    rows = decode_rows + rows
    for row in rows:
        row["machine"] = machine
    show(decode_rows)
    show(rows[len(decode_rows) :])
    print(machine)
    path = Path(args.out) if args.out else RESULTS / "video.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
