"""Resuming from ``checkpoints/step-N`` (weights in safetensors, optimiser/scheduler/RNG through anymal.tree_io,
no pickle) continues the run exactly: the resumed run ends with the uninterrupted run's weights."""

import json
import shutil

import torch

from anymal.checkpoint import read_trainable_state
from anymal.train import train


def test_resume_from_a_step_checkpoint_gives_the_uninterrupted_weights(make_toy_config, tmp_path, one_thread):
    config = make_toy_config(tmp_path, "max_steps=6", "save_every=3", "keep_last=5")
    straight = train(config)
    run = tmp_path / "run"
    reference = read_trainable_state(run / "final")
    step_dir = run / "checkpoints" / "step-00000003"
    assert sorted(p.name for p in step_dir.iterdir()) == [
        "state.json",
        "trainable.safetensors",
        "training_state.json",
        "training_state.safetensors",
    ]
    assert {"optimizer", "scheduler", "rng"} <= set(json.loads((step_dir / "training_state.json").read_text()))
    # as if the run had died after step 3: its later checkpoint and final output never written
    shutil.rmtree(run / "checkpoints" / "step-00000006")
    shutil.rmtree(run / "final")
    resumed = train(config, resume=True)
    assert resumed.steps == 6 and len(resumed.losses) == 3
    assert torch.allclose(torch.tensor(resumed.losses), torch.tensor(straight.losses[3:]), atol=1e-6)
    again = read_trainable_state(run / "final")
    assert again.keys() == reference.keys()
    assert all(torch.allclose(again[k], reference[k], atol=1e-6, rtol=0) for k in reference)
