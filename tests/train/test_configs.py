"""Every shipped training config validates and starts with a comment giving its exact command."""

from pathlib import Path

import pytest

from anymal.train import load_train_config

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*/*.yaml"))
TRAIN_CONFIGS = [p for p in CONFIGS if p.parent.name in ("align", "instruct")]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_config_starts_with_its_command(path):
    head = path.read_text().splitlines()[:4]
    # the demo's files are read by `python -m anymal demo` itself; every other config is named in its command
    named = path.parent.name == "demo" or any(path.name in line for line in head)
    assert head[0].startswith("#") and any("python -m anymal" in line for line in head) and named


@pytest.mark.parametrize("path", TRAIN_CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_training_config_validates(path):
    config = load_train_config(path)
    assert config.stage == path.parent.name
