"""The preset training configs: every preset validates as a ``python -m anymal.train`` config, and the files in
``configs/presets/`` are what the catalog generates (``python -m anymal.presets --write configs/presets``)."""

from pathlib import Path

import pytest
import yaml

from anymal.presets import SIZES, build
from anymal.presets.__main__ import main as presets_main

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "presets"
ALL = [(name, size) for name, sizes in SIZES.items() for size in sizes]


def _without_outputs(train):
    return {**train, "model": {k: v for k, v in train["model"].items() if k != "outputs"}}


@pytest.mark.parametrize(("name", "size"), ALL)
def test_preset_file_is_the_catalogs_and_validates(name, size):
    preset = build(name, size)
    config = preset.train_config("max_steps=7")
    assert config.max_steps == 7 and config.model_config().llm.name_or_path == preset.model["llm"]["name_or_path"]
    path = CONFIGS / f"{name}_{size}.yaml"
    assert path.is_file(), f"{path} is missing: python -m anymal.presets --write configs/presets"
    text = path.read_text()
    assert text.startswith(f"# Preset '{name}' at {size}") and "# Command: python -m anymal.train" in text
    assert _without_outputs(yaml.safe_load(text)) == _without_outputs(preset.train), (
        f"{path} is stale: python -m anymal.presets --write configs/presets"
    )


def test_cli_prints_counts_beside_the_papers(capsys):
    assert presets_main(["pink:7b"]) == 0
    out = capsys.readouterr().out
    assert "image.projector.llm_adapters:weights" in out and "2,097,152" in out and "ours/paper" in out
    assert presets_main(["pink:9b"]) == 2
    assert "size '9b' unknown" in capsys.readouterr().err


@pytest.mark.parametrize("size", ["7b", "13b", "70b"])
def test_anymal_preset_is_the_shipped_align_configs_model(size):
    """The anymal preset holds the four plugins exactly as ``configs/align/<modality>_llama2_<size>.yaml`` set
    them, on the same LLM."""
    preset = build("anymal", size)
    for modality, plugin in preset.model["modalities"].items():
        shipped = yaml.safe_load((CONFIGS.parent / "align" / f"{modality}_llama2_{size}.yaml").read_text())["model"]
        assert shipped["modalities"][modality] == plugin, modality
        assert shipped["llm"]["name_or_path"] == preset.model["llm"]["name_or_path"]
