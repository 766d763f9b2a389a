"""Writes grounding scenes as training and evaluation files that ``anymal.train`` and ``anymal.eval`` read.

Layout under the folder::

    media/<split>-<n>.png         the scene
    media/<split>-<n>-mask.png    the referred object's mask (white on black), for mask decoders
    rec_train.jsonl               conversations: the REC prompt -> the box as text (Pink or Qwen-VL grammar)
    rec_heldout.jsonl             anymal.eval rows of task ``rec``: media, expression, box (pixels), image_size
    grounding.json                the settings, counts and the constant-box baseline on the held-out split

Training and held-out scenes come from separate seeds. Prompts and answers are ``anymal_box.rec``'s, so training
text is exactly what ``python -m anymal.eval --task rec`` prompts with and parses. The baseline box is the mean
training box, scored with the same metric: what a model that ignores the picture could reach.

    python -m anymal_demo.world.grounding_data OUT [--train 400 --heldout 50 --size 64 --shapes 2 --grammar pink]
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from anymal_box import Boxes, PixelFrame, rec_accuracy, rec_example
from anymal_demo.world.grounding import scenes


def _rows(
    folder: Path, split: str, count: int, seed: int, size: int, shapes: int, radius: tuple[float, float]
) -> list[dict[str, Any]]:
    media = folder / "media"
    media.mkdir(parents=True, exist_ok=True)
    rows = []
    for n, (scene, target) in enumerate(scenes(count, seed, size, shapes, radius)):
        image, mask = f"media/{split}-{n:04d}.png", f"media/{split}-{n:04d}-mask.png"
        scene.image.save(folder / image)
        Image.fromarray(target.mask.astype(np.uint8) * 255).save(folder / mask)
        rows.append({"id": f"{split}-{n:04d}", "image": image, "mask": mask, "expression": target.expression,
                     "box": list(target.box), "image_size": [size, size]})  # fmt: skip
    return rows


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def write_grounding_data(
    folder: str | Path,
    train: int = 400,
    heldout: int = 50,
    size: int = 64,
    shapes: int = 2,
    grammar: str = "pink",
    seed: int = 0,
    vary_templates: bool = False,
    radius: tuple[float, float] = (0.12, 0.2),
) -> dict[str, Any]:
    """Writes the files above and returns what ``grounding.json`` holds.

    ``vary_templates`` draws each training prompt from Pink's grounding template pool (the held-out prompt is the
    pool's first template, as ``anymal.eval``'s ``rec`` task asks); off, every prompt is that first template.
    ``radius`` bounds the shapes' half-sizes as fractions of ``size``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    frame = PixelFrame(size, size)
    rng = random.Random(seed)
    train_rows = _rows(folder, "train", train, seed * 2 + 1, size, shapes, radius)
    heldout_rows = _rows(folder, "heldout", heldout, seed * 2 + 2, size, shapes, radius)
    conversations = []
    for row in train_rows:
        box = Boxes([row["box"]], frame)
        example = rec_example(row["expression"], box, grammar, rng=rng if vary_templates else None)
        conversations.append({
            "id": row["id"], "media": {"image": row["image"]},
            "conversations": [{"role": "user", "content": example.prompt},
                              {"role": "assistant", "content": example.answer}],
        })  # fmt: skip
    _write_jsonl(folder / "rec_train.jsonl", conversations)
    _write_jsonl(
        folder / "rec_heldout.jsonl",
        [{"id": r["id"], "media": {"image": r["image"]}, "expression": r["expression"], "box": r["box"],
          "image_size": r["image_size"]} for r in heldout_rows],
    )  # fmt: skip
    _write_jsonl(folder / "train_objects.jsonl", train_rows)
    _write_jsonl(folder / "heldout_objects.jsonl", heldout_rows)
    mean_box = np.mean([r["box"] for r in train_rows], axis=0).tolist()
    baseline = rec_accuracy(
        [Boxes([mean_box], frame)] * len(heldout_rows),
        [Boxes([r["box"]], frame) for r in heldout_rows],
        convention=grammar,
    )
    info = {"train": train, "heldout": heldout, "size": size, "shapes": shapes, "grammar": grammar, "seed": seed,
            "vary_templates": vary_templates, "radius": list(radius), "mean_train_box": mean_box,
            "constant_box_rec_accuracy": baseline.accuracy,
            "constant_box_mean_iou": float(np.mean(baseline.ious)) if baseline.ious else 0.0}  # fmt: skip
    (folder / "grounding.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder")
    parser.add_argument("--train", type=int, default=400)
    parser.add_argument("--heldout", type=int, default=50)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--shapes", type=int, default=2)
    parser.add_argument("--grammar", choices=("pink", "qwen"), default="pink")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vary-templates", action="store_true")
    parser.add_argument("--radius", type=float, nargs=2, default=(0.12, 0.2), metavar=("MIN", "MAX"))
    args = parser.parse_args(argv)
    info = write_grounding_data(args.folder, args.train, args.heldout, args.size, args.shapes, args.grammar,
                                args.seed, args.vary_templates, tuple(args.radius))  # fmt: skip
    print(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
