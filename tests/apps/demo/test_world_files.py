"""The written world is ordinary anymal training data: the same readers and train-config validation consume it."""

from __future__ import annotations

import hashlib
import json

import pytest

from anymal.data import read_conversations, read_pairs
from anymal_demo.world.vocabulary import SPECS, read_attributes
from anymal_demo.world.writer import WorldConfig, write_world


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("world")
    counts = write_world(
        WorldConfig(train_items=12, heldout_items=4, mixed_train=6, mixed_heldout=3), folder, progress=False
    )
    return folder, counts


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_counts_and_files(world):
    folder, counts = world
    assert counts["pairs"] == dict.fromkeys(SPECS, 12)
    assert counts["heldout"] == dict.fromkeys(SPECS, 4)
    questions_per_item = {name: len(spec.questions) for name, spec in SPECS.items()}
    assert counts["heldout_questions"] == sum(4 * n for n in questions_per_item.values()) + 3
    assert counts["instruct"] == 4 * 12 * 2 + 6  # a caption request and one question per item, plus mixed
    assert json.loads((folder / "world.json").read_text())["counts"] == counts


@pytest.mark.parametrize("modality", sorted(SPECS))
def test_pairs_read_with_anymal_data(world, modality):
    folder, _ = world
    examples = list(read_pairs(folder / f"pairs_{modality}.jsonl", modality=modality))
    assert len(examples) == 12
    rows = _rows(folder / f"pairs_{modality}.jsonl")
    for example, row in zip(examples, rows):
        assert example.media[modality][0].path.is_file()
        assert example.turns[0].text.startswith(f"<{modality}>\n")
        assert read_attributes(example.turns[1].text, SPECS[modality].attributes) == row["truth"]


def test_instructions_read_with_anymal_data_including_two_modality_prompts(world):
    folder, _ = world
    examples = list(read_conversations(folder / "instruct.jsonl", modalities=list(SPECS)))
    mixed = [e for e in examples if len(e.media) == 2]
    assert len(mixed) == 6
    assert all(set(e.media) == {"image", "imu"} for e in mixed)
    assert all(e.turns[0].text.count("<image>") == 1 and e.turns[0].text.count("<imu>") == 1 for e in mixed)


def test_heldout_items_are_not_copies_of_training_items(world):
    folder, _ = world
    digest = lambda p: hashlib.sha256((folder / p).read_bytes()).hexdigest()  # noqa: E731
    for modality in SPECS:
        train = {digest(r[modality]) for r in _rows(folder / f"pairs_{modality}.jsonl")}
        held = {digest(r[modality]) for r in _rows(folder / f"heldout_{modality}.jsonl")}
        assert not train & held


def test_heldout_questions_reference_heldout_media_only(world):
    folder, _ = world
    for row in _rows(folder / "heldout_questions.jsonl"):
        for paths in row["media"].values():
            assert all("/heldout-" in path for path in paths)
        for modality, names in row["asks"].items():
            found = read_attributes(row["answer"], SPECS[modality].attributes)
            assert all(found[n] == row["truth"][modality][n] for n in names)


def test_imu_activity_pairs_feed_the_imu_pretraining_task(world):
    from anymal_imu import IMUPlugin
    from anymal_imu.pretrain import IMUContrastiveConfig, load_pairs

    folder, _ = world
    plugin = IMUPlugin(IMUPlugin.tiny_config())
    cfg = IMUContrastiveConfig(
        data=str(folder / "imu_activities.jsonl"), output=str(folder / "x.safetensors"), sample_rate=50.0
    )
    windows, captions = load_pairs(plugin, cfg)
    assert windows.shape[0] == 12 and set(captions) <= set(SPECS["imu"].attribute("activity").values)
