"""The AnyMAL recipe end to end on tiny models: four separate stage-1 runs (image, audio, IMU, video) on one frozen
LLM, composed with ``init_from: {plugin: folder}``, instruction-tuned with LoRA on mixed data, reloaded, and asked
about every modality at once.

Real files throughout: COCO photos, ESC-50 clips, BasicMotions recordings and the NASA clip from the shared assets;
the LLM is the real pretrained stories260K. What is asserted is what a user of the chain relies on: the composed
model holds each stage-1 projector bit for bit, stage 2 lowers the loss on *each* modality's rows (none is silently
skipped), and the reloaded model reads every modality.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from anymal import AnyMAL
from anymal.checkpoint import read_trainable_state
from anymal.registry import get_plugin
from anymal.testing import captioned_photos, require_asset
from anymal.train import load_train_config, train
from anymal.train.config import DataSpec
from anymal.train.dataset import Collator, TrainingDataset, read_examples
from anymal.train.loop import summed_token_loss

MODALITIES = ("image", "audio", "imu", "video")
ACTIVITY = {"Standing": "standing still", "Walking": "walking", "Running": "running", "Badminton": "playing badminton"}


def _write(folder: Path, name: str, rows: list[dict]) -> Path:
    path = folder / f"{name}.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> dict[str, Path]:
    """One caption file per modality, from the real assets."""
    folder = tmp_path_factory.mktemp("chain_data")
    require_asset("images/captions.json")
    images = [{"media": str(photo), "caption": caption} for photo, caption in captioned_photos(ordered=True)][:4]
    with require_asset("audio/esc50_meta_subset.csv").open() as handle:
        sounds = [
            {"media": str(require_asset(f"audio/esc50_{row['filename']}")), "caption": f"a {row['category']} sound"}
            for row in csv.DictReader(handle)
        ][:4]
    with np.load(require_asset("imu/BasicMotions_TRAIN.npz"), allow_pickle=False) as data:
        signals, labels = data["X"], [str(label) for label in data["y"]]
    motions, seen = [], {}
    for i, (signal, label) in enumerate(zip(signals, labels)):
        if seen.get(label, 0) < 2:  # two recordings of each activity
            seen[label] = seen.get(label, 0) + 1
            np.save(folder / f"imu_{i:02d}.npy", np.ascontiguousarray(signal.T))
            motions.append({"media": str(folder / f"imu_{i:02d}.npy"), "caption": f"someone is {ACTIVITY[label]}"})
    clip = str(require_asset("video/nasa_13013.mp4"))
    videos = [{"media": clip, "caption": "a telescope in a clean room"}] * 2
    rows = {"image": images, "audio": sounds, "imu": motions, "video": videos}
    return {name: _write(folder, name, rows[name]) for name in MODALITIES}


def _plugin_config(name: str) -> dict:
    config = dataclasses.asdict(get_plugin(name).tiny_config())
    if name == "imu":
        config.update(default_sample_rate=10.0)  # BasicMotions: 10 Hz, 100 samples per recording
    return config


def _spec(name: str, path: Path) -> str:
    return f"{{kind: pairs, path: '{path}', modality: {name}, media_key: media}}"


def _mean_token_loss(model, name: str, path: Path) -> float:
    """Next-token loss over every caption token of one modality's rows (one batch, no sampling)."""
    spec = DataSpec(kind="pairs", path=str(path), modality=name, media_key="media")
    examples, _ = read_examples([spec], model.plugins, "raise", seed=0)
    dataset = TrainingDataset(examples, model, chat=False, on_error="raise", seed=0)
    batch = Collator(model)([dataset[i] for i in range(len(dataset))])
    model.eval()
    with torch.no_grad():
        loss_sum, count = summed_token_loss(model, batch)
    return float(loss_sum / count)


@pytest.fixture(scope="module")
def aligned(datasets, stories260k_path, tmp_path_factory) -> dict[str, Path]:
    """Stage 1: one align run per modality, each with only its own plugin, as the paper's recipe does."""
    root = tmp_path_factory.mktemp("stage1")
    finals = {}
    for name in MODALITIES:
        config = load_train_config(
            None,
            [
                f"model.llm.name_or_path={stories260k_path}",
                f"data=[{_spec(name, datasets[name])}]",
                f"output_dir={root / name}",
                "stage=align",
                "max_steps=6",
                "batch_size=4",
                "lr=3e-3",
            ],
        )
        config.model["modalities"] = {name: _plugin_config(name)}
        result = train(config)
        assert result.steps == 6 and not result.skipped, (name, result.skipped)
        finals[name] = result.final_checkpoint
    return finals


def test_separately_aligned_plugins_compose_instruct_and_generate(aligned, datasets, tmp_path, one_thread):
    init_from = ", ".join(f"{name}: '{aligned[name]}'" for name in MODALITIES)
    config = load_train_config(
        None,
        [
            f"init_from={{{init_from}}}",
            f"data=[{', '.join(_spec(name, datasets[name]) for name in MODALITIES)}]",
            f"output_dir={tmp_path / 'stage2'}",
            "stage=instruct",
            "lora.rank=4",
            "lora.target_modules=[q_proj,v_proj]",
            "max_steps=16",
            "batch_size=4",
            "lr=3e-3",
        ],
    )

    # the composed starting point holds every stage-1 projector bit for bit
    from anymal.train.loop import build_model

    start = build_model(config)
    assert start.modality_names == list(MODALITIES)
    composed = start.trainable_state_dict()
    for name in MODALITIES:
        for key, value in read_trainable_state(aligned[name]).items():
            assert torch.equal(composed[key], value), key
    before = {name: _mean_token_loss(start, name, datasets[name]) for name in MODALITIES}
    del start

    result = train(config)
    assert not result.skipped  # no audio/IMU/video row dropped for a missing plugin

    model = AnyMAL.from_pretrained(result.final_checkpoint)
    assert model.modality_names == list(MODALITIES) and hasattr(model.llm, "peft_config")
    after = {name: _mean_token_loss(model, name, datasets[name]) for name in MODALITIES}
    print("stage-2 loss per modality, before -> after:", {n: (round(before[n], 3), round(after[n], 3)) for n in before})
    for name in MODALITIES:
        assert after[name] < before[name], (name, before[name], after[name])

    inputs = {
        "image": json.loads(datasets["image"].read_text().splitlines()[0])["media"],
        "audio": json.loads(datasets["audio"].read_text().splitlines()[0])["media"],
        "imu": (np.load(json.loads(datasets["imu"].read_text().splitlines()[0])["media"]), 10.0),
        "video": json.loads(datasets["video"].read_text().splitlines()[0])["media"],
    }
    out = model.generate("<image> <audio> <imu> <video>", **inputs, max_new_tokens=6, do_sample=False)
    assert out.sequences.shape[-1] > 0
    text_only = model.generate("", max_new_tokens=6, do_sample=False)
    assert not torch.equal(out.sequences, text_only.sequences)  # the modality tokens reach the LLM
