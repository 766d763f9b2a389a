"""Every shipped training config validates and starts with a comment giving its exact command."""

from pathlib import Path

import pytest

from anymal.train import load_train_config

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*/*.yaml"))
TRAIN_CONFIGS = [p for p in CONFIGS if p.parent.name in ("align", "instruct")]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_config_starts_with_its_command(path):
    head = path.read_text().splitlines()[:4]
    named = any(path.name in line for line in head)
    assert head[0].startswith("#") and any("python -m anymal" in line for line in head) and named


@pytest.mark.parametrize("path", TRAIN_CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_training_config_validates(path):
    config = load_train_config(path)
    assert config.stage == path.parent.name


@pytest.mark.parametrize("size", ["7b", "13b", "70b"])
def test_instruct_configs_compose_the_four_stage1_runs_of_their_size(size):
    """Stage 2 starts from every modality's stage-1 output: each init_from entry is the `final` folder of the align
    config of that modality and size (so running the align configs and then this one just works)."""
    root = Path(__file__).resolve().parents[2] / "configs"
    instruct = load_train_config(root / "instruct" / f"multimodal_llama2_{size}.yaml")
    assert sorted(instruct.init_from) == ["audio", "image", "imu", "video"]
    for name, folder in instruct.init_from.items():
        align = load_train_config(root / "align" / f"{name}_llama2_{size}.yaml")
        assert folder == f"{align.output_dir}/final", (name, folder)
        assert list(align.model["modalities"]) == [name]
