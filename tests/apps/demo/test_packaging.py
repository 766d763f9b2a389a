"""The demo is an application on top of anymal: the library never imports it, and the wheel carries it whole.

The wheel tests build the project's wheel from a copy of its sources, install it into a fresh virtual environment
whose only view of the repository's packages is that wheel (the dependencies come from the test interpreter's
site-packages, added by a ``.pth`` line, which runs no editable-install hook), and run the demo from a folder
outside the checkout: the demo's code and its YAML configs must both come from the installed wheel.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
# what setuptools reads to build the wheel (pyproject.toml's packages.find roots and the files it names); building
# from a copy keeps build/ and *.egg-info out of a checkout that other runs may be using
SOURCES = ("pyproject.toml", "setup.cfg", "README.md", "anymal", "plugins", "apps")
DEMO_CONFIGS = sorted(p.name for p in (REPO / "apps" / "anymal_demo" / "configs").glob("*.yaml"))


def test_missing_demo_package_is_a_clear_error(monkeypatch, capsys):
    from anymal.__main__ import main

    monkeypatch.setitem(sys.modules, "anymal_demo", None)  # import anymal_demo now fails as if not installed
    monkeypatch.setitem(sys.modules, "anymal_demo.cli", None)
    assert main(["demo", "--quick"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the demo is not installed") and "anymal_demo" in err


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSAFEPATH")}
    env["HF_HUB_OFFLINE"] = "1"
    return env


def _run(args: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    done = subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(map(str, args))}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The project's wheel, built (without build isolation: no index needed) from a copy of its sources."""
    source = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(REPO / name, source / name)
    out = tmp_path_factory.mktemp("wheels")
    pip = [sys.executable, "-m", "pip"]
    _run([*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index", str(source), "-w", str(out)], out)
    (built,) = out.glob("anymal-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh virtual environment with the wheel installed; returns its python."""
    env_dir = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=False, symlinks=True).create(env_dir)
    python = env_dir / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(python)]
    _run([*pip, "install", "-q", "--no-deps", "--no-index", str(wheel)], env_dir)
    site = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], env_dir)
    site = Path(site.stdout.strip())
    dependencies = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "_test_dependencies.pth").write_text("".join(f"{path}\n" for path in sorted(dependencies)))
    return python


def test_wheel_contains_the_demo_and_its_configs(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "anymal_demo/cli.py" in names and "anymal_demo/world/writer.py" in names
    assert sorted(n.rpartition("/")[2] for n in names if n.startswith("anymal_demo/configs/")) == DEMO_CONFIGS
    entry_points = zipfile.ZipFile(wheel).read(f"{wheel.name.split('-py3')[0]}.dist-info/entry_points.txt").decode()
    assert "anymal-demo = anymal_demo.cli:main" in entry_points


INSTALLED_CHECK = """
import json, sys
from pathlib import Path

import anymal, anymal_demo, anymal_image
from anymal.train import load_train_config
from anymal_demo.settings import load_settings
from anymal_demo.stages import CONFIG_DIR, resolve_stage_config
from anymal_demo.world.writer import write_world

out = Path(sys.argv[1])
tiny = ["world.train_items=3", "world.heldout_items=2", "world.mixed_train=2", "world.mixed_heldout=2"]
settings = load_settings(True, overrides=tiny)
counts = write_world(settings.world, out / "world", progress=False)
config = load_train_config(resolve_stage_config("align_image", out))  # the plugins come from the wheel's entry points
print(json.dumps({
    "modules": [anymal.__file__, anymal_demo.__file__, anymal_image.__file__],
    "config_dir": str(CONFIG_DIR),
    "configs": sorted(p.name for p in CONFIG_DIR.glob("*.yaml")),
    "counts": counts,
    "modalities": sorted(config.model_config().modalities),
    "quick_steps": settings.language_model.steps,
}))
"""


def test_installed_wheel_loads_settings_and_writes_a_world(installed, tmp_path):
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    prefix = str(installed.parent.parent)
    done = _run([str(installed), "-c", INSTALLED_CHECK, str(tmp_path / "run")], cwd)
    found = json.loads(done.stdout.splitlines()[-1])
    assert all(module.startswith(prefix) for module in found["modules"]), found["modules"]
    assert found["config_dir"].startswith(prefix) and found["configs"] == DEMO_CONFIGS
    assert (
        found["counts"]["pairs"] == {"image": 3, "audio": 3, "imu": 3, "video": 3}
        and (tmp_path / "run" / "world" / "pairs_image.jsonl").is_file()
    )
    assert found["modalities"] == ["audio", "image", "imu", "video"]
    assert found["quick_steps"] < 1500  # the quick section of the packaged demo.yaml was applied
    for command in ([str(installed), "-m", "anymal", "demo", "--help"], [str(installed.parent / "anymal-demo"), "-h"]):
        assert "--quick" in _run(command, cwd).stdout


@pytest.mark.integration  # the quick demo from the installed wheel: make test-integration
def test_installed_wheel_runs_the_quick_demo(installed, tmp_path):
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    out = tmp_path / "run"
    done = _run([str(installed), "-m", "anymal", "demo", "--quick", "--out", str(out), "--no-progress"], cwd, 1800)
    assert "frozen LM check" in done.stdout
    results = json.loads((out / "results.json").read_text())
    assert results["quick"] is True and results["frozen_llm_unchanged"] is True
    stages = [name for name in DEMO_CONFIGS if name != "demo.yaml"]  # each stage's resolved copy, from the wheel
    assert sorted(p.name for p in (out / "configs").glob("*.yaml")) == stages
    assert not (cwd / "runs").exists()  # everything went to --out
