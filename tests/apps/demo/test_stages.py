"""The demo's configs: every stage file is a valid anymal.train config, moved to the run's folder intact."""

from __future__ import annotations

import itertools

import pytest

from anymal.errors import ConfigError
from anymal_demo.settings import ENCODER_PRETRAINING, STAGES, load_settings
from anymal_demo.stages import CONFIG_DIR, localise, read_yaml, resolve_stage_config


def test_localise_moves_only_demo_paths(tmp_path):
    tree = {"a": "runs/demo/world/x.jsonl", "b": ["runs/demo", "runs/demolition", 3], "c": {"d": "q_proj"}}
    out = localise(tree, tmp_path)
    assert out == {
        "a": str(tmp_path / "world/x.jsonl"),
        "b": [str(tmp_path), "runs/demolition", 3],
        "c": {"d": "q_proj"},
    }


@pytest.mark.parametrize("name", STAGES)
def test_stage_configs_validate_as_train_configs(tmp_path, name):
    from anymal.train import load_train_config

    first = resolve_stage_config(STAGES[0], tmp_path)
    path = resolve_stage_config(name, tmp_path)
    assert path.read_text().startswith(f"# {name}.yaml")
    if name == STAGES[0]:
        config = load_train_config(path)  # validates the whole model section through the plugin registry
        assert set(config.model_config().modalities) == {"image", "audio", "imu", "video"}
        assert config.model_config().llm.quantization.mode == "4bit"
    else:
        config = load_train_config(path)
        assert config.init_from.startswith(str(tmp_path))
    assert config.output_dir == str(tmp_path / name)
    assert all(spec.path.startswith(str(tmp_path)) for spec in config.data)
    assert first.parent == path.parent


def test_image_and_video_share_the_vision_tower_and_imu_matches_its_pretraining():
    model = read_yaml(CONFIG_DIR / "align_image.yaml")["model"]["modalities"]
    tower = ("backend", "model_name", "pretrained", "model_config", "init_seed", "feature_layer")
    assert {k: model["image"][k] for k in tower} == {k: model["video"][k] for k in tower}
    pretraining = read_yaml(CONFIG_DIR / f"{ENCODER_PRETRAINING}.yaml")
    imu = {k: v for k, v in model["imu"].items() if k not in ("checkpoint", "plugin_type")}
    assert imu == pretraining["plugin_config"]
    assert model["imu"]["checkpoint"] == pretraining["options"]["output"]


def test_chain_of_stages_starts_each_from_the_previous_one():
    for previous, name in itertools.pairwise(STAGES):
        assert read_yaml(CONFIG_DIR / f"{name}.yaml")["init_from"] == f"runs/demo/{previous}/final"


def test_every_config_file_starts_with_its_command():
    for path in sorted(CONFIG_DIR.glob("*.yaml")):
        head = path.read_text().splitlines()[:3]
        assert head[0].startswith("#") and any("python -m anymal" in line for line in head), path


def test_settings_full_quick_and_overrides():
    full, quick = load_settings(False), load_settings(True)
    assert quick.world.train_items < full.world.train_items
    assert quick.language_model.steps < full.language_model.steps
    assert set(quick.overrides) == {ENCODER_PRETRAINING, *STAGES}
    assert load_settings(True, overrides=["language_model.steps=7"]).language_model.steps == 7
    with pytest.raises(ConfigError):
        load_settings(False, overrides=["language_model.nope=1"])
    with pytest.raises(ConfigError, match="unknown stage"):
        load_settings(False, overrides=["overrides={align_sound: [max_steps=1]}"])
