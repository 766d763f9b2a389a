"""The example third-party plugin, pip-installed into a separate folder, works through the entry point alone."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "examples" / "third_party_plugin"

SCRIPT = textwrap.dedent(
    """
    import numpy as np, torch, anymal
    from anymal.testing import check_plugin_contract, tiny_anymal
    assert "depth" in anymal.list_plugins(), anymal.list_plugins()
    cls = anymal.get_plugin("depth")
    assert cls.__module__.startswith("anymal_depth"), cls.__module__
    check_plugin_contract("depth")
    model = tiny_anymal(("image", "depth"))
    depth = cls(cls.tiny_config()).example_inputs()
    out = model.generate(["<depth> how far is the wall?", "and here?"], depth=[depth[0], None], max_new_tokens=4)
    one = model.generate("<depth> how far is the wall?", depth=depth[0], max_new_tokens=4)
    assert out.sequences[0, -one.sequences.shape[1]:].tolist() == one.sequences[0].tolist()
    np.save("wall.npy", depth[0])
    try:
        model.generate("<depth>", depth=np.ones((3, 3, 3)), max_new_tokens=2)
    except anymal.InputError as exc:
        assert "[H, W]" in str(exc)
    else:
        raise SystemExit("bad depth map accepted")
    print("DEPTH-OK", model.trainable_summary()["projector"]["trainable"] > 0)
    """
)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(PACKAGE),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return target


@pytest.mark.integration  # pip-installs the example package into a folder: make test-integration
def test_pip_installed_plugin_is_used_through_generate_via_its_entry_point(installed, tmp_path):
    env = {"PYTHONPATH": str(installed), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    import os

    env["HOME"] = os.environ.get("HOME", str(tmp_path))
    result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "DEPTH-OK True" in result.stdout


def test_without_installing_it_the_depth_modality_is_unknown():
    import anymal

    with pytest.raises(anymal.PluginError, match="unknown plugin 'depth'"):
        anymal.get_plugin("depth")
