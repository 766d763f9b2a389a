"""Aligning several modalities together: each batch holds one modality (the AnyMAL recipe) unless turned off."""

import dataclasses
import json

import pytest

from anymal.checkpoint import read_trainable_state
from anymal.train import train
from anymal.train.dataset import Collator, EpochExamples, TrainingDataset
from anymal.train.loop import _loader, build_model, make_accelerator

AudioPlugin = pytest.importorskip("anymal_audio").AudioPlugin


@pytest.fixture(scope="module")
def sound_pairs(tmp_path_factory, assets):
    folder = tmp_path_factory.mktemp("sounds")
    labels = {"0": "a dog barks", "1": "a rooster crows", "10": "rain falls", "20": "a baby cries"}
    rows = [
        {"audio": str(path), "caption": labels[path.stem.rsplit("-", 1)[1]]}
        for path in sorted((assets / "audio").glob("esc50_*.wav"))
    ]
    path = folder / "sounds.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _two_modality_config(make_config, folder, sound_pairs, *overrides):
    config = make_config(folder, "batch_size=2", "max_steps=3", *overrides)
    config.data.append(dataclasses.replace(config.data[0], path=str(sound_pairs), modality="audio", media_key="audio"))
    config.model["modalities"]["audio"] = dataclasses.asdict(AudioPlugin.tiny_config())
    return config


def _batch_modalities(config) -> list[set[str]]:
    model = build_model(config)
    source = EpochExamples(config.data, model.plugins, config.on_error, config.seed)
    dataset = TrainingDataset(source(0), model, config.chat, config.on_error)
    loader = _loader(dataset, config, Collator(model), make_accelerator(config), epoch=0)
    return [set(batch["modality_inputs"]) for batch in loader if batch["n_items"]]


def test_align_batches_hold_one_modality_each(make_config, sound_pairs, tmp_path):
    config = _two_modality_config(make_config, tmp_path, sound_pairs)
    kinds = _batch_modalities(config)
    assert {"image"} in kinds and {"audio"} in kinds and all(len(k) == 1 for k in kinds)
    mixed = _batch_modalities(_two_modality_config(make_config, tmp_path, sound_pairs, "group_by_modality=false"))
    assert any(len(k) == 2 for k in mixed)  # off: a seeded shuffle mixes them


def test_joint_alignment_of_two_projectors_trains_both(make_config, sound_pairs, tmp_path):

    from anymal import AnyMAL

    config = _two_modality_config(make_config, tmp_path, sound_pairs, "train_modalities=[image,audio]", "max_steps=4")
    result = train(config)
    start = AnyMAL(config.model_config()).trainable_state_dict()
    final = read_trainable_state(tmp_path / "run" / "final")
    for name in ("image", "audio"):
        keys = [k for k in final if k.startswith(f"projectors.{name}.")]
        assert keys and any(not start[k].equal(final[k]) for k in keys), name
    assert result.steps == 4
