"""Stage-1 alignment through the real engine: learning, bad rows, resume, CLI and config errors."""

import json

import pytest
import torch

from anymal import ConfigError
from anymal.checkpoint import read_trainable_state
from anymal.train import load_train_config, train
from anymal.train.__main__ import main as cli_main


def test_alignment_drives_the_caption_loss_down_with_stories260k_frozen(make_config, tmp_path):
    config = make_config(tmp_path, "max_steps=60", "model.llm.quantization.mode=4bit", "lr=1e-2")
    result = train(config)
    first, last = sum(result.losses[:4]) / 4, sum(result.losses[-4:]) / 4
    assert last < 0.8 * first, (first, last)  # mean nats per caption token, LLM frozen
    assert result.skipped == {"rows": 2}
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["data_report"]["skipped"] == {"media_missing": 1, "empty_field": 1}
    assert (tmp_path / "run" / "config.yaml").is_file()
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == list(range(1, 61))
    stored = read_trainable_state(tmp_path / "run" / "final")
    assert all(k.startswith("projectors.image") for k in stored)


@pytest.mark.integration  # a training subprocess killed and resumed: make test-integration
def test_sigkill_mid_run_then_resume_gives_the_uninterrupted_weights(make_config, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    import yaml

    straight = train(make_config(tmp_path / "a", "max_steps=8"))
    config = make_config(tmp_path / "b", "max_steps=8", "save_every=1", "keep_last=2")
    path = tmp_path / "b.yaml"
    path.write_text(yaml.safe_dump(config.to_dict()))
    command = [sys.executable, "-m", "anymal.train", "--config", str(path), "--resume"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoints = tmp_path / "b" / "run" / "checkpoints"
    deadline = time.time() + 240
    while time.time() < deadline and not (checkpoints.is_dir() and any(checkpoints.glob("step-00000003"))):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (tmp_path / "b" / "run" / "final").exists(), "the run finished before it could be killed"
    subprocess.run(command, env=env, check=True, capture_output=True)
    assert len(list(checkpoints.glob("step-*"))) == 2  # keep_last (a kill may land before pruning)
    a = read_trainable_state(tmp_path / "a" / "run" / "final")
    b = read_trainable_state(tmp_path / "b" / "run" / "final")
    assert straight.steps == 8
    assert all(torch.allclose(a[k], b[k], atol=1e-6, rtol=0) for k in a)


def test_raise_policy_names_file_and_line(make_config, tmp_path):
    from anymal import DataError

    with pytest.raises(DataError, match=r"pairs.jsonl:\d+"):
        train(make_config(tmp_path, "max_steps=1", "on_error=raise"))


def test_config_errors_fail_before_any_model_loads(tmp_path, capsys):
    with pytest.raises(ConfigError, match="max_stepz"):
        load_train_config(None, ["max_stepz=3", "data=[{path: x}]", "model.llm.name_or_path=x"])
    with pytest.raises(ConfigError, match="batch_size"):
        load_train_config(None, ["batch_size=many", "data=[{path: x}]", "model.llm.name_or_path=x"])
    with pytest.raises(ConfigError, match="unknown plugin 'smell'"):
        load_train_config(None, ["data=[{path: x}]", "model.llm.name_or_path=x", "model.modalities.smell={}"])
    config = tmp_path / "c.yaml"
    data = tmp_path / "d.jsonl"  # --dry-run also checks that data files exist (preflight), so this one does
    data.write_text("")
    config.write_text(
        f"model: {{llm: {{name_or_path: x}}}}\ndata: [{{kind: conversations, path: {data}}}]\nstage: pretraining\n"
    )
    assert cli_main(["--config", str(config)]) == 2
    assert "stage='pretraining'" in capsys.readouterr().err
    assert cli_main(["--config", str(config), "--dry-run", "stage=instruct"]) == 0
