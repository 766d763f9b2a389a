"""FSDP2 with an output plugin: two CPU processes train the ``[LOC]`` head, its trigger tokens' rows, the
projector and LoRA the way one process does, and save a checkpoint whose boxes match.

The worry this settles: the trigger rows (``model.token_rows``) and the heads sit in FSDP2's root parameter group,
outside the wrapped decoder layers, and are read by the fused embedding and the output losses. Under FSDP2 a root
parameter is a sharded ``DTensor`` until the root's forward gathers it, so a read outside that forward would fail or
train only a shard. Same worker and conventions as ``test_train_fsdp.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from anymal import AnyMAL
from anymal.checkpoint import read_trainable_state
from anymal.testing import tiny_llm_folder
from anymal.train import load_train_config, train
from anymal_demo.world.grounding import scenes, write_trigger_rows
from anymal_image import ImagePlugin

TORCHRUN = os.path.join(os.path.dirname(sys.executable), "torchrun")
WORKER = Path(__file__).with_name("fsdp_worker.py")
SIZE = 32

pytestmark = [
    pytest.mark.integration,  # two torchrun processes: make test-integration
    pytest.mark.skipif(not os.path.exists(TORCHRUN), reason="torchrun is not installed"),
]


def _config(folder: Path, data: Path) -> dict:
    image = ImagePlugin.tiny_config()
    return {
        "stage": "instruct",
        "output_dir": str(folder / "run"),
        "model": {
            "llm": {"name_or_path": str(tiny_llm_folder())},
            "modalities": {"image": {"num_tokens": 4, "model_name": image.model_name, "pretrained": None,
                                     "model_config": image.model_config}},
            "outputs": {"loc": {"projection_dim": 16, "decoder_dims": [8]}},
        },
        "data": [{"kind": "conversations", "path": str(data)}],
        # LoRA dropout off: dropout draws from each process's RNG, so sharded and single runs would differ by design
        "lora": {"rank": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]},
        "max_steps": 4,
        "batch_size": 4,
        "lr": 5e-3,
        "log_every": 1,
        "seed": 0,
    }  # fmt: skip


def _losses(run: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines() if "loss" in line]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("fsdp_outputs")
    data = write_trigger_rows(
        root, "train", scenes(16, 0, SIZE, 1), lambda e: f"<image>\nWhere is {e}?", "[LOC]",
        lambda target: {"loc": [list(target.box)]},
    )  # fmt: skip
    paths = {}
    for name in ("single", "fsdp"):
        paths[name] = root / f"{name}.yaml"
        paths[name].write_text(yaml.safe_dump(_config(root / name, data)))
    single = train(load_train_config(paths["single"]))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    command = [TORCHRUN, "--nproc_per_node", "2", "--master_port", "29547", str(WORKER), "--config", str(paths["fsdp"])]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stderr.count("sharded: encoders heads projectors token_rows") == 2  # both ranks hold DTensor shards
    return root, single


def test_sharded_training_with_an_output_plugin_matches_one_process(runs):
    root, single = runs
    sharded = _losses(root / "fsdp" / "run")
    assert torch.allclose(torch.tensor(sharded), torch.tensor(single.losses), atol=1e-4), (sharded, single.losses)
    metrics = [json.loads(line) for line in (root / "fsdp" / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any("loc/giou" in m for m in metrics)  # the box losses ran on the sharded model
    one = read_trainable_state(root / "single" / "run" / "final")
    two = read_trainable_state(root / "fsdp" / "run" / "final")
    assert one.keys() == two.keys()
    assert any(k.startswith("heads.loc") for k in two) and any(k.startswith("token_rows.loc") for k in two)
    for key in one:
        assert one[key].shape == two[key].shape, key  # whole tensors, not one rank's shard
        assert torch.allclose(one[key], two[key], atol=1e-4), (key, (one[key] - two[key]).abs().max().item())


def test_the_sharded_checkpoint_generates_the_same_boxes(runs):
    root, _ = runs
    photo = (root / "media").glob("*.png").__next__()
    prompt = "<image>\nWhere is the shape?"
    models = [AnyMAL.from_pretrained(root / name / "run" / "final") for name in ("single", "fsdp")]
    vocab = models[0].trigger_ids["loc"][0]
    forced = dict(max_new_tokens=1, suppress_tokens=list(range(vocab)))  # only [LOC] can come out
    one, two = (model.generate(prompt, image=str(photo), **forced).boxes[0] for model in models)
    assert len(one) == len(two) == 1
    assert np.allclose(one.data, two.data, atol=1e-3)
