"""Frozen-feature cache speedup: one alignment epoch with the encoder run every step vs. with cached features.

Rows: no cache; first run with a cache (features computed once, written); second run (features read back).
ViT-B-16 architecture (random init, no download) at 224 px over the COCO photos in ../shared/assets, stories260K as
the frozen LLM. Run: ``python bench/bench_feature_cache.py [--out path.json] [--images 24]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from common import report

from anymal.testing import STORIES260K_ASSET, asset, train_tiny_tokenizer
from anymal.train import load_train_config, train
from anymal_image import ImagePluginConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=None)
    parser.add_argument("--images", type=int, default=24)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="anymal-cache-bench-"))
    photos = sorted(asset("images").glob("*.jpg"))
    rows = [{"image": str(photos[i % len(photos)]), "caption": f"photo number {i}"} for i in range(args.images)]
    # distinct files so that the cache holds one entry per item, as with a real dataset
    for i, row in enumerate(rows):
        copy = folder / f"img{i}.jpg"
        copy.write_bytes(Path(row["image"]).read_bytes() + i.to_bytes(4, "little"))
        row["image"] = str(copy)
    (folder / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    train_tiny_tokenizer(" ".join(r["caption"] for r in rows) * 5, vocab_size=300).save_pretrained(folder / "tok")
    image = ImagePluginConfig(
        model_name="ViT-B-16",
        pretrained=None,
        num_tokens=32,
        resampler_dim=256,
        resampler_heads=4,
        resampler_dim_head=64,
    )
    batch = 4
    steps = args.images // batch

    def run(name: str, cache: str | None) -> float:
        overrides = [
            f"model.llm.name_or_path={asset(STORIES260K_ASSET)}",
            f"model.llm.tokenizer={folder / 'tok'}",
            f"data=[{{kind: pairs, path: '{folder / 'pairs.jsonl'}', modality: image, media_key: image}}]",
            f"output_dir={folder / name}",
            f"batch_size={batch}",
            f"max_steps={steps}",
        ]
        if cache:
            overrides.append(f"feature_cache={cache}")
        config = load_train_config(None, overrides)
        config.model["modalities"] = {"image": dataclasses.asdict(image)}
        start = time.perf_counter()
        train(config)
        return time.perf_counter() - start

    cache = str(folder / "cache")
    base = run("plain", None)
    first = run("cache1", cache)
    second = run("cache2", cache)
    table = [
        {"run": "encoder every step (no cache)", "epoch_s": base, "speedup_vs_no_cache": 1.0},
        {"run": "cache, first epoch (compute + write)", "epoch_s": first, "speedup_vs_no_cache": base / first},
        {"run": "cache, second epoch (read)", "epoch_s": second, "speedup_vs_no_cache": base / second},
    ]
    for row in table:
        row.update(items=args.images, encoder="ViT-B-16 224px (random init)", llm="stories260K")
    report("feature_cache", table, args.out)


if __name__ == "__main__":
    main()
