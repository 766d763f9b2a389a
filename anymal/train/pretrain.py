"""Encoder pretraining tasks that plugins declare, run through ``python -m anymal.train``.

AnyMAL keeps every encoder frozen, so an encoder that has no public text-aligned weights (the IMU encoder: IMU2CLIP's
were never released) must be pretrained first. A plugin declares such tasks in ``pretraining_tasks()``; this module
finds them through the plugin registry and runs one from a config:

.. code-block:: yaml

    task: {plugin: imu, name: imu_text_contrastive}   # which plugin, which of its tasks
    plugin_config: {embed_dim: 768}                   # the plugin's config (partial; defaults fill the rest)
    options:                                          # the task's own options, validated by the task
      data: data/imu_pairs.jsonl
      output: ${output_dir}/imu_encoder.safetensors
    output_dir: runs/imu_encoder

A config is a pretraining config when it has a top-level ``task`` key (``--pretrain PLUGIN:TASK`` on the command
line sets it). The run writes the resolved config (``config.yaml``, the plugin config with every default filled in)
before the task starts and the task's result (``metrics.json``) after it; a task reports the file it wrote under
the ``checkpoint`` key of its result.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from anymal.config import config_from_dict, config_to_dict
from anymal.errors import ConfigError, PluginError
from anymal.plugin import ModalityPlugin, PluginConfig, PretrainingTask
from anymal.registry import get_plugin, list_plugins
from anymal.train.config import read_config_dict

TASK_KEY = "task"


@dataclass
class TaskRef:
    """Which pretraining task to run: ``plugin`` (registry name) and ``name`` (a key of its ``pretraining_tasks()``)."""

    plugin: str = ""
    name: str = ""


@dataclass
class PretrainConfig:
    """A pretraining run.

    Attributes:
        task: The plugin and the name of its task.
        plugin_config: The plugin's config as a partial dict over its config class's defaults (validated by it).
        options: The task's own options, passed to ``PretrainingTask.run`` as a dict; the task validates them.
        output_dir: Where the resolved config and the task's result go (``${output_dir}`` in options refers to it).
    """

    task: TaskRef = field(default_factory=TaskRef)
    plugin_config: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    output_dir: str = "runs/pretrain"

    def __post_init__(self) -> None:
        for name in ("plugin", "name"):
            if not getattr(self.task, name):
                raise ConfigError(
                    f"task.{name}: required; give task: {{plugin: <plugin>, name: <task>}} or --pretrain PLUGIN:TASK. "
                    f"Available tasks: {_available_text()}"
                )

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)


@dataclass
class PretrainResult:
    """What a pretraining run produced: the task's result dict and, when it reports one, the checkpoint it wrote."""

    output_dir: Path
    metrics: dict[str, Any]
    seconds: float
    checkpoint: str | None = None


def available_tasks() -> dict[str, PretrainingTask]:
    """Every pretraining task of every installed plugin, keyed ``"plugin:task"``.

    Each plugin is instantiated with its default config to ask for its tasks (no encoder is built); a plugin that
    fails to import or to construct is left out, as ``list_plugins`` leaves out broken plugins.
    """
    found: dict[str, PretrainingTask] = {}
    for name in list_plugins():
        try:
            tasks = get_plugin(name)().pretraining_tasks()
        except Exception:  # a broken third-party plugin must not hide the others' tasks
            continue
        found.update({f"{name}:{task}": spec for task, spec in tasks.items()})
    return found


def _available_text() -> str:
    names = sorted(available_tasks())
    return ", ".join(names) if names else "none (no installed plugin declares a pretraining task)"


def is_pretrain_config(data: dict[str, Any]) -> bool:
    """Whether a merged config dict describes a pretraining run (it has a top-level ``task`` key)."""
    return isinstance(data, dict) and TASK_KEY in data


def task_overrides(spec: str) -> list[str]:
    """``"imu:imu_text_contrastive"`` (the ``--pretrain`` flag) as ``task.plugin=...``/``task.name=...`` overrides."""
    plugin, sep, name = spec.partition(":")
    if not (sep and plugin and name):
        raise ConfigError(f"--pretrain {spec!r}: expected PLUGIN:TASK. Available tasks: {_available_text()}")
    return [f"task.plugin={plugin}", f"task.name={name}"]


def load_pretrain_config(path: str | Path | None = None, overrides: list[str] | None = None) -> PretrainConfig:
    """Reads, merges and validates a pretraining config; unknown keys and unknown plugins/tasks fail here."""
    data = read_config_dict(path, overrides)
    unknown = sorted(set(data) - {f.name for f in fields(PretrainConfig)})
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(unknown)} in a pretraining config (one with a top-level task:); expected "
            f"{', '.join(f.name for f in fields(PretrainConfig))}, with the task's own settings under options:"
        )
    config = config_from_dict(PretrainConfig, data)
    resolve_task(config)
    return config


def resolve_task(config: PretrainConfig) -> tuple[ModalityPlugin, PretrainingTask]:
    """The configured plugin (built from ``plugin_config``) and its task; errors list the available tasks."""
    ref = config.task
    try:
        plugin_cls = get_plugin(ref.plugin)
    except PluginError as exc:
        raise ConfigError(
            f"task.plugin={ref.plugin!r}: {exc} Available pretraining tasks: {_available_text()}"
        ) from None
    plugin_config: PluginConfig = config_from_dict(
        plugin_cls.config_class, dict(config.plugin_config, plugin_type=plugin_cls.name), "plugin_config"
    )
    plugin = plugin_cls(plugin_config)
    tasks = plugin.pretraining_tasks()
    if ref.name not in tasks:
        own = ", ".join(sorted(tasks)) or "none"
        raise ConfigError(
            f"task.name={ref.name!r}: plugin {ref.plugin!r} has no such pretraining task (its tasks: {own}). "
            f"Available pretraining tasks: {_available_text()}"
        )
    return plugin, tasks[ref.name]


def run_pretraining(config: PretrainConfig) -> PretrainResult:
    """Runs the configured task; writes ``config.yaml`` before and ``metrics.json`` after, in ``output_dir``."""
    plugin, task = resolve_task(config)
    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    resolved = dict(config.to_dict(), plugin_config=config_to_dict(plugin.config))
    (output_dir / "config.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False))
    start = time.perf_counter()
    metrics = task.run(plugin, dict(config.options))
    seconds = time.perf_counter() - start
    if not isinstance(metrics, dict):
        raise PluginError(
            f"pretraining task {config.task.plugin}:{config.task.name} returned {type(metrics).__name__}; "
            "a task's run() must return a dict of metrics"
        )
    summary = {"task": f"{config.task.plugin}:{config.task.name}", "seconds": seconds, **metrics}
    (output_dir / "metrics.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    checkpoint = metrics.get("checkpoint")
    return PretrainResult(output_dir, metrics, seconds, str(checkpoint) if checkpoint is not None else None)
