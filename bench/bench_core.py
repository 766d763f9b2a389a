"""Core overheads: text-only generation through AnyMAL vs bare HF ``generate`` on the same LLM (target: within 5%),
and image preprocess + encode + project throughput at a tiny and a realistic (ViT-L-14-336, random init) size.

Run: ``python bench/bench_core.py [--out path.json]``. Ratios are measured in one run on one machine.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from common import best_of, report

from anymal.testing import LLAMA2_TOKENIZER_ASSET, STORIES260K_ASSET, asset, tiny_anymal, tiny_llm_folder
from anymal_image import ImagePlugin, ImagePluginConfig


def generation_overhead(llm_path: str, label: str, new_tokens: int = 64) -> dict:
    model = tiny_anymal((), llm=llm_path)
    ids = torch.tensor([[1] + [300 + i for i in range(15)]]) if label != "stories260K" else torch.tensor([[1, 403]])
    kwargs = {"max_new_tokens": new_tokens, "min_new_tokens": new_tokens, "do_sample": False, "pad_token_id": 0}
    bare = best_of(lambda: model.llm.generate(ids, **kwargs))
    wrapped = best_of(lambda: model.generate(input_ids=ids, **kwargs))
    return {
        "case": f"text-only generate, {label}",
        "bare_s": bare,
        "anymal_s": wrapped,
        "overhead_pct": 100 * (wrapped / bare - 1),
        "target": "<= 5%",
    }


def image_throughput(config: ImagePluginConfig, label: str, batch: int, llm_dim: int) -> dict:
    plugin = ImagePlugin(config)
    encoder = plugin.build_encoder().eval()
    projector = plugin.build_projector(llm_dim)
    photos = sorted(asset("images").glob("*.jpg"))
    raws = [str(photos[i % len(photos)]) for i in range(batch)]

    def run():
        with torch.no_grad():
            return plugin.project(
                projector, plugin.encode(encoder, plugin.collate([plugin.preprocess(r) for r in raws]))
            )

    seconds = best_of(run, repeats=3)
    return {
        "case": f"image preprocess+encode+project, {label}",
        "batch": batch,
        "items_per_s": batch / seconds,
        "tokens_per_item": config.num_tokens,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=None)
    parser.add_argument("--skip-large", action="store_true", help="skip the ViT-L-14-336 row")
    args = parser.parse_args()
    torch.manual_seed(0)
    rows = [generation_overhead(str(asset(STORIES260K_ASSET)), "stories260K")]
    rows.append(
        generation_overhead(
            str(
                tiny_llm_folder(
                    asset(LLAMA2_TOKENIZER_ASSET), hidden_size=256, intermediate_size=688, num_hidden_layers=4
                )
            ),
            "LLaMA 4x256, 32k vocab",
        )
    )
    rows.append(image_throughput(ImagePlugin.tiny_config(), "tiny ViT", 16, 32))
    if not args.skip_large:
        large = ImagePluginConfig(model_name="ViT-L-14-336", pretrained=None, num_tokens=64)
        rows.append(image_throughput(large, "ViT-L-14-336 (random init) + resampler 64x2", 4, 4096))
    report("core", rows, args.out)


if __name__ == "__main__":
    main()
