"""Running the demo's training stages through ``anymal.train``, from the YAML files in ``anymal_demo/configs``.

Each stage file is an ordinary ``python -m anymal.train`` config whose paths start with ``runs/demo``. For a run
in another folder the paths are rewritten and the resolved file is written into the run's ``configs/`` folder, so
every stage can be re-run by hand with the command printed next to it. The stage itself then goes through the same
``load_train_config`` and ``train`` (or ``load_pretrain_config`` and ``run_pretraining``) as the command line.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from anymal.config import read_yaml_mapping

DEFAULT_DIR = "runs/demo"
# package data, installed with the package: the demo needs no repository checkout
CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def localise(value: Any, out_dir: str | os.PathLike) -> Any:
    """``value`` (a YAML tree) with every string path under ``runs/demo`` moved under ``out_dir``."""
    if isinstance(value, dict):
        return {key: localise(item, out_dir) for key, item in value.items()}
    if isinstance(value, list):
        return [localise(item, out_dir) for item in value]
    if isinstance(value, str) and (value == DEFAULT_DIR or value.startswith(DEFAULT_DIR + "/")):
        return str(Path(out_dir) / value[len(DEFAULT_DIR) :].lstrip("/"))
    return value


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML mapping from ``path``, with a readable error if it is missing or malformed."""
    return read_yaml_mapping(path, "the demo config")


def resolve_stage_config(name: str, out_dir: Path, config_dir: Path = CONFIG_DIR) -> Path:
    """Writes ``<config_dir>/<name>.yaml`` with its paths moved to ``out_dir`` into ``out_dir/configs``."""
    source = config_dir / f"{name}.yaml"
    data = localise(read_yaml(source), out_dir)
    target = out_dir / "configs" / f"{name}.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    header = f"# {source.name} with paths under {out_dir}.\n# Command: python -m anymal.train --config {target}\n"
    target.write_text(header + yaml.safe_dump(data, sort_keys=False))
    return target


def run_training_stage(config_path: Path, overrides: list[str]):
    """One align/instruct stage, exactly as ``python -m anymal.train --config PATH key=value ...`` runs it."""
    from anymal.train import load_train_config, train

    return train(load_train_config(config_path, overrides))


def run_pretraining_stage(config_path: Path, overrides: list[str]):
    """A plugin's encoder pretraining task, as ``python -m anymal.train --config PATH`` runs it."""
    from anymal.train.pretrain import load_pretrain_config, run_pretraining

    return run_pretraining(load_pretrain_config(config_path, overrides))


def command_line(config_path: Path, overrides: list[str]) -> str:
    """The shell command that reruns a stage."""
    return " ".join(["python -m anymal.train --config", str(config_path), *overrides])
