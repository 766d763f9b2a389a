"""Golden manifests: each plugin's ``tiny_config()`` builds the same projector and gives the same numbers as committed.

``tests/plugins/<plugin>/golden_manifest.json`` holds, per plugin, the projector's parameter names and shapes, the
encoder's parameter count and the mean and std of the projector's output for seeded features (see
``anymal.testing.plugin_manifest``; float32 on CPU, compared within 1e-4). A change to a plugin's architecture, its
defaults or its initialisation shows up here as a named difference instead of as a silently different model.

When such a change is intended, regenerate the files and commit them with the change:

    .venv/bin/python -m pytest tests/plugins/test_golden_manifests.py --update-golden
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from anymal.testing import ToyPlugin, ToyPluginConfig, manifest_differences, plugin_manifest

HERE = Path(__file__).resolve().parent
PLUGINS = ("toy", "image", "audio", "imu", "video")


def golden_path(name: str) -> Path:
    return HERE / name / "golden_manifest.json"


def dump(manifest: dict) -> str:
    """JSON with each shape on one line."""
    text = json.dumps(manifest, indent=2) + "\n"
    return re.sub(
        r"\[\s+([\d,\s]*?)\s+\]", lambda m: "[" + ", ".join(w.strip(",") for w in m.group(1).split()) + "]", text
    )


@pytest.mark.parametrize("name", PLUGINS)
def test_plugin_matches_its_golden_manifest(name, update_golden):
    actual = plugin_manifest(name)
    path = golden_path(name)
    if update_golden:
        path.write_text(dump(actual))
        pytest.skip(f"--update-golden: wrote {path}")
    assert path.is_file(), f"no golden file {path}; run pytest {__file__} --update-golden and commit it"
    problems = manifest_differences(actual, json.loads(path.read_text()))
    assert not problems, f"{name} differs from {path} (intended? rerun with --update-golden):\n" + "\n".join(problems)


def test_manifest_comparison_names_what_changed():
    golden = json.loads(golden_path("toy").read_text())
    assert manifest_differences(plugin_manifest("toy"), golden) == []

    class WiderToy(ToyPlugin):
        @classmethod
        def tiny_config(cls):
            return ToyPluginConfig(num_tokens=5)

    problems = manifest_differences(plugin_manifest(WiderToy), golden)
    assert "projector parameter linear.weight: shape [160, 16], golden [128, 16]" in problems
    assert any(p.startswith("output shape [2, 5, 32]") for p in problems)

    class ReseededToy(ToyPlugin):
        def build_projector(self, llm_dim):
            projector = super().build_projector(llm_dim)
            projector.linear.weight.data.mul_(1.01)  # a 1% change of scale
            return projector

    problems = manifest_differences(plugin_manifest(ReseededToy), golden)
    assert problems and all(p.startswith(("output mean", "output std")) for p in problems), problems
    assert any(p.startswith("output std") for p in problems)
