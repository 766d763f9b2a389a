"""Plugins' encoder pretraining tasks through ``python -m anymal.train``: the IMU contrastive task end to end,
a third-party task found through the registry, and config errors that name the problem."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from anymal import ConfigError
from anymal.plugin import PretrainingTask
from anymal.registry import register_plugin, unregister_plugin
from anymal.testing import require_asset
from anymal.train.__main__ import main as cli_main
from anymal.train.pretrain import load_pretrain_config
from anymal_imu import IMUPlugin, IMUPluginConfig

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "pretrain" / "imu_contrastive_tiny.yaml"
PRETRAIN_CONFIGS = sorted((REPO / "configs" / "pretrain").glob("*.yaml"))


@pytest.fixture
def basic_motions() -> Path:
    return require_asset("imu/BasicMotions_TRAIN.npz")


def test_imu_contrastive_task_runs_end_to_end_from_the_cli(basic_motions, tmp_path, capsys, one_thread):
    out = tmp_path / "run"
    code = cli_main(["--config", str(TINY), f"output_dir={out}", f"options.data={basic_motions}", "options.steps=60"])
    assert code == 0, capsys.readouterr().err
    checkpoint = out / "imu_encoder.safetensors"
    assert f"encoder checkpoint: {checkpoint}" in capsys.readouterr().out

    # the resolved config: every plugin default filled in, ${output_dir} interpolated, overrides applied
    resolved = yaml.safe_load((out / "config.yaml").read_text())
    assert resolved["task"] == {"plugin": "imu", "name": "imu_text_contrastive"}
    assert resolved["plugin_config"]["encoder_type"] == "conv_gru" and resolved["plugin_config"]["sample_rate"] == 10
    assert resolved["options"]["output"] == str(checkpoint) and resolved["options"]["steps"] == 60
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "imu:imu_text_contrastive" and metrics["steps"] == 60 and metrics["pairs"] == 40
    assert metrics["loss_last"] < metrics["loss_first"]
    assert metrics["retrieval_acc_after"] > metrics["retrieval_acc_before"]  # 4 activities: chance is 25%
    assert len((out / "imu_encoder.metrics.jsonl").read_text().splitlines()) == 60
    assert cli_main(["--config", str(out / "config.yaml"), "--dry-run"]) == 0  # the run can be redone from it

    # the checkpoint is what the imu plugin loads when its config points at it
    plugin_config = {k: v for k, v in resolved["plugin_config"].items() if k != "checkpoint"}
    trained = IMUPlugin(IMUPluginConfig(**plugin_config, checkpoint=str(checkpoint))).build_encoder()
    seeded = IMUPlugin(IMUPluginConfig(**plugin_config)).build_encoder()
    stored = load_file(checkpoint)
    assert all(torch.equal(stored[k], v) for k, v in trained.state_dict().items())
    assert not torch.equal(trained.head.weight, seeded.head.weight)


class ToyPlugin(IMUPlugin):
    """A third-party plugin with its own pretraining task, registered at runtime (no entry point)."""

    name = "toy_motion"

    def pretraining_tasks(self) -> dict[str, PretrainingTask]:
        def run(plugin, options):
            Path(options["output"]).write_text(json.dumps({"width": plugin.config.width, "options": options}))
            return {"checkpoint": options["output"], "width": plugin.config.width}

        return {"echo": PretrainingTask("echo", "writes its plugin config and options", run)}


@pytest.fixture
def toy_plugin():
    register_plugin(ToyPlugin)
    yield ToyPlugin
    unregister_plugin(ToyPlugin.name)


def test_pretrain_flag_runs_any_registered_plugins_task(toy_plugin, tmp_path, capsys):
    out = tmp_path / "toy"
    args = ["--pretrain", "toy_motion:echo", f"output_dir={out}", "plugin_config.width=48"]
    assert cli_main([*args, "options.output=${output_dir}/enc.json", "options.anything=7"]) == 0
    assert f"encoder checkpoint: {out / 'enc.json'}" in capsys.readouterr().out
    written = json.loads((out / "enc.json").read_text())
    assert written == {"width": 48, "options": {"output": str(out / "enc.json"), "anything": 7}}
    assert json.loads((out / "metrics.json").read_text())["task"] == "toy_motion:echo"

    assert cli_main(["--list-tasks"]) == 0
    listed = capsys.readouterr().out
    assert "imu:imu_text_contrastive\t" in listed and "toy_motion:echo\twrites its plugin config" in listed


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--pretrain", "smell:sniff"], "task.plugin='smell': unknown plugin 'smell'"),
        (["--pretrain", "imu:imu_text_contrastiv"], "task.name='imu_text_contrastiv': plugin 'imu' has no such"),
        (["--pretrain", "image:contrastive"], "its tasks: none"),
        (["--pretrain", "imu"], "--pretrain 'imu': expected PLUGIN:TASK"),
        (["task.name=imu_text_contrastive"], "task.plugin: required"),
    ],
)
def test_unknown_plugin_or_task_lists_the_available_tasks(args, expected, capsys):
    assert cli_main(args) == 2
    err = capsys.readouterr().err
    assert expected in err and "Available" in err and "imu:imu_text_contrastive" in err


def test_config_errors_name_the_key(tmp_path, capsys):
    with pytest.raises(ConfigError, match=r"unknown key\(s\) max_steps in a pretraining config"):
        load_pretrain_config(TINY, ["max_steps=3"])
    with pytest.raises(ConfigError, match=r"plugin_config\.widht"):
        load_pretrain_config(TINY, ["plugin_config.widht=8"])
    with pytest.raises(ConfigError, match=r"plugin_config\.width"):
        load_pretrain_config(TINY, ["plugin_config.width=wide"])
    # the task validates its own options, before it loads anything
    run = ["--config", str(TINY), f"output_dir={tmp_path}", "options.stepz=3"]
    assert cli_main(run) == 2
    assert "stepz" in capsys.readouterr().err
    assert cli_main(["--config", str(TINY), "--resume"]) == 2
    assert "--resume does not apply" in capsys.readouterr().err


@pytest.mark.parametrize("path", PRETRAIN_CONFIGS, ids=lambda p: p.name)
def test_shipped_pretraining_configs_validate(path, capsys):
    assert cli_main(["--config", str(path), "--dry-run"]) == 0
    config = load_pretrain_config(path)
    assert f"{config.task.plugin}:{config.task.name}" in capsys.readouterr().out
    assert config.options["output"].startswith(config.output_dir)
