"""Shared training-test fixtures: a real-photo caption set and a config factory around the frozen stories260K
(with its own 512-token SentencePiece tokenizer)."""

import dataclasses
import json

import pytest

from anymal.train import load_train_config
from anymal_image import ImagePlugin


@pytest.fixture(scope="module")
def pairs(tmp_path_factory, assets):
    folder = tmp_path_factory.mktemp("data")
    captions = json.loads((assets / "images" / "captions.json").read_text())
    rows = [
        {"image": str(assets / "images" / name), "caption": info["clipcap_generated_caption"]}
        for name, info in captions.items()
        if isinstance(info, dict) and info.get("clipcap_generated_caption")
    ]
    rows.append({"image": "missing.jpg", "caption": "a missing photo"})
    rows.append({"image": str(assets / "images" / "grace_hopper.jpg"), "caption": ""})
    path = folder / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, len(rows) - 2  # the file and its number of good rows


@pytest.fixture(scope="module")
def make_config(pairs, stories260k_path):
    """``make_config(folder, "key=value", ...)``: an align config on the photo captions, output in ``folder/run``."""

    def make(tmp_path, *overrides):
        return _config(pairs, stories260k_path, tmp_path, *overrides)

    return make


def _config(pairs, stories260k_path, tmp_path, *overrides):
    path, _ = pairs
    config = load_train_config(
        None,
        [
            f"model.llm.name_or_path={stories260k_path}",
            f"data=[{{kind: pairs, path: '{path}', modality: image, media_key: image}}]",
            f"output_dir={tmp_path / 'run'}",
            "batch_size=3",
            "lr=3e-3",
            "warmup_steps=2",
            *overrides,
        ],
    )
    config.model["modalities"] = {"image": dataclasses.asdict(ImagePlugin.tiny_config())}
    return config
