"""Shared training-test fixtures: a real-photo caption set, the same captions over ``toy`` plugin inputs, and config
factories around the frozen stories260K (with its own 512-token SentencePiece tokenizer).

``make_config`` trains the real image plugin on the photos; ``make_toy_config`` trains the dependency-free ``toy``
plugin of ``anymal.testing`` on the same captions, for tests of the engine that need some modality, not images.
"""

import dataclasses
import json

import pytest
import torch

from anymal.testing import ToyPlugin, captioned_photos, write_toy_input
from anymal.train import load_train_config
from anymal_image import ImagePlugin


@pytest.fixture(scope="module")
def pairs(tmp_path_factory, assets):
    folder = tmp_path_factory.mktemp("data")
    rows = [{"image": str(photo), "caption": caption} for photo, caption in captioned_photos()]
    rows.append({"image": "missing.jpg", "caption": "a missing photo"})
    rows.append({"image": str(assets / "images" / "grace_hopper.jpg"), "caption": ""})
    path = folder / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, len(rows) - 2  # the file and its number of good rows


@pytest.fixture(scope="module")
def toy_pairs(tmp_path_factory, pairs):
    """``pairs`` with each photo replaced by a seeded ``toy`` input file (one per photo, same captions, same bad rows:
    a missing file and an empty caption)."""
    folder = tmp_path_factory.mktemp("toy_data")
    generator = torch.Generator().manual_seed(0)
    rows = []
    for i, line in enumerate(pairs[0].read_text().splitlines()):
        row = json.loads(line)
        if row["image"] != "missing.jpg":
            row["image"] = str(write_toy_input(folder / f"signal_{i}.txt", torch.randn(8, generator=generator)))
        rows.append({"toy": row.pop("image"), **row})
    path = folder / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, pairs[1]


@pytest.fixture(scope="module")
def make_config(pairs, stories260k_path):
    """``make_config(folder, "key=value", ...)``: an align config on the photo captions, output in ``folder/run``."""

    def make(tmp_path, *overrides):
        return _config(pairs, stories260k_path, tmp_path, *overrides)

    return make


@pytest.fixture(scope="module")
def make_toy_config(toy_pairs, stories260k_path):
    """Like ``make_config``, with the ``toy`` modality (``anymal.testing.ToyPlugin``) in place of images."""

    def make(tmp_path, *overrides):
        return _config(toy_pairs, stories260k_path, tmp_path, *overrides, modality="toy")

    return make


def _config(pairs, stories260k_path, tmp_path, *overrides, modality="image"):
    path, _ = pairs
    config = load_train_config(
        None,
        [
            f"model.llm.name_or_path={stories260k_path}",
            f"data=[{{kind: pairs, path: '{path}', modality: {modality}, media_key: {modality}}}]",
            f"output_dir={tmp_path / 'run'}",
            "batch_size=3",
            "lr=3e-3",
            "warmup_steps=2",
            *overrides,
        ],
    )
    plugin = {"image": ImagePlugin, "toy": ToyPlugin}[modality]
    config.model["modalities"] = {modality: dataclasses.asdict(plugin.tiny_config())}
    return config
