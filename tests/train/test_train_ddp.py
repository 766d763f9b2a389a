"""Two CPU processes (DDP over gloo, launched with torchrun) train the same weights as one process."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
import yaml

from anymal.checkpoint import read_trainable_state
from anymal.train import train


@pytest.mark.integration  # two torchrun processes: make test-integration
@pytest.mark.skipif(
    shutil.which("torchrun") is None and not os.path.exists(os.path.join(os.path.dirname(sys.executable), "torchrun")),
    reason="torchrun is not installed",
)
def test_two_processes_match_one_with_the_same_global_batch_and_seed(make_config, tmp_path):
    single = train(make_config(tmp_path / "single", "max_steps=4", "batch_size=4", "log_every=1"))
    config = make_config(tmp_path / "ddp", "max_steps=4", "batch_size=4", "log_every=1")
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(config.to_dict()))
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [torchrun, "--nproc_per_node", "2", "--master_port", "29533", "-m", "anymal.train", "--config", str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("done: 4 steps") == 2  # both ranks ran
    a = read_trainable_state(tmp_path / "single" / "run" / "final")
    b = read_trainable_state(tmp_path / "ddp" / "run" / "final")
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-5
    losses = [
        json.loads(line)["loss"] for line in (tmp_path / "ddp" / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    assert torch.allclose(torch.tensor(losses), torch.tensor(single.losses), atol=1e-5)
