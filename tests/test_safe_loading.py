"""Nothing anymal loads can run code, and a save killed at any instant never loses the checkpoint.

Pickles are planted where a careless loader would unpickle them (the run state, a PEFT adapter); the payload would
create a marker file. Kills are injected (not timed) at every file-system step of a save: each step in turn raises
an exception that, like SIGKILL, skips all clean-up.
"""

from __future__ import annotations

import contextlib
import math
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from anymal import AnyMAL, CheckpointError
from anymal.testing import tiny_anymal
from anymal.tree_io import load_tree, save_tree


class _Payload:
    """Unpickling this creates ``marker``: the proof that a load ran code from a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _plant(path: Path, marker: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(_Payload(marker)))


@pytest.fixture(scope="module")
def model():
    model = tiny_anymal(("toy",))
    with torch.no_grad():
        for p in model.projectors.parameters():
            p.add_(torch.randn_like(p))
    return model


def test_state_trees_round_trip_without_pickle(tmp_path):
    tree = {
        "state": {"projectors.toy.proj.weight": {"step": torch.tensor(3.0), "exp_avg": torch.randn(4, 2)}},
        "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "params": ["projectors.toy.proj.weight"], "x": None}],
        "rng": (3, tuple(range(5)), None),
        "numpy": ("MT19937", np.arange(6, dtype=np.uint32), 2, 0, 0.0),
        "by_index": {0: "a", 7: "b"},
        "limits": [math.inf, -math.inf],
    }
    save_tree(tree, tmp_path, "state")
    assert not list(tmp_path.glob("*.pt")) and not list(tmp_path.glob("*.pkl"))
    again = load_tree(tmp_path, "state")
    assert torch.equal(
        again["state"]["projectors.toy.proj.weight"]["exp_avg"], tree["state"]["projectors.toy.proj.weight"]["exp_avg"]
    )
    assert again["param_groups"][0]["betas"] == (0.9, 0.999) and again["rng"] == tree["rng"]
    assert again["numpy"][0] == "MT19937" and again["numpy"][1].dtype == np.uint32
    assert np.array_equal(again["numpy"][1], tree["numpy"][1]) and again["by_index"] == {0: "a", 7: "b"}
    assert again["limits"] == [math.inf, -math.inf]
    with pytest.raises(TypeError, match="cannot store a object without pickle"):
        save_tree({"x": object()}, tmp_path, "bad")


def test_a_planted_adapter_pickle_is_refused_and_never_runs(model, tmp_path):
    path = tmp_path / "ckpt"
    model.save_pretrained(path)
    marker = tmp_path / "payload_ran"
    _plant(path / "adapter" / "adapter_model.bin", marker)
    with pytest.raises(CheckpointError, match=r"adapter_model\.bin: a pickle-format file; anymal never unpickles"):
        AnyMAL.from_pretrained(path)
    with pytest.raises(CheckpointError, match=r"adapter_model\.bin"):
        tiny_anymal(("toy",)).load_plugin("toy", path, replace=True)
    assert not marker.exists()


def test_a_planted_pickle_in_a_run_state_is_refused_and_never_runs(tmp_path):
    from anymal.train.checkpointing import load_training_state

    state = tmp_path / "checkpoints" / "step-00000002"
    state.mkdir(parents=True)
    marker = tmp_path / "payload_ran"
    _plant(state / "optimizer.pt", marker)  # what anymal wrote before it stopped pickling
    with pytest.raises(CheckpointError, match=r"optimizer\.pt: a pickle-format file"):
        load_training_state(state, None, None, None)
    assert not marker.exists()


class _Killed(BaseException):
    """Raised at the injected step; not an Exception, so ``except Exception`` blocks do not swallow it."""


def _kill_at(monkeypatch, step: int) -> dict:
    """Makes the ``step``-th file-system action of a save raise _Killed; afterwards nothing cleans up (SIGKILL)."""
    import anymal.atomic as atomic
    import anymal.checkpoint as checkpoint

    state = {"count": 0, "killed": False}

    def step_then(real):
        def wrapped(*args, **kwargs):
            if state["killed"]:
                return None  # a killed process runs no clean-up
            if state["count"] == step:
                state["killed"] = True
                raise _Killed(f"killed at step {step}")
            state["count"] += 1
            return real(*args, **kwargs)

        return wrapped

    monkeypatch.setattr(os, "replace", step_then(os.replace))
    monkeypatch.setattr(atomic, "_fsync_path", step_then(atomic._fsync_path))
    monkeypatch.setattr(shutil, "rmtree", step_then(shutil.rmtree))
    monkeypatch.setattr(checkpoint, "save_file", step_then(checkpoint.save_file))
    monkeypatch.setattr(checkpoint, "_write_json", step_then(checkpoint._write_json))
    return state


def _weights(path: Path) -> dict[str, torch.Tensor]:
    from anymal.checkpoint import read_trainable_state

    return read_trainable_state(path)


def test_a_save_killed_at_any_step_leaves_the_old_or_the_new_checkpoint(model, tmp_path, monkeypatch):
    path = tmp_path / "ckpt"
    model.save_pretrained(path, save_tokenizer=False)
    old = _weights(path)
    newer = tiny_anymal(("toy",), seed=1)  # different projector weights, same layout
    new = {k: v for k, v in newer.trainable_state_dict().items()}
    outcomes = set()
    for step in range(100):
        with monkeypatch.context() as patch:
            state = _kill_at(patch, step)
            with contextlib.suppress(_Killed):
                newer.save_pretrained(path, save_tokenizer=False)
        if not state["killed"]:
            break  # the save finished before this step: every step has been tried
        found = _weights(path)  # loading recovers a folder a kill moved aside
        if all(torch.equal(found[k], old[k]) for k in old):
            outcomes.add("old")
        elif all(torch.equal(found[k], new[k]) for k in new):
            outcomes.add("new")
        else:
            raise AssertionError(f"killed at step {step}: the checkpoint holds neither version")
        model.save_pretrained(path, save_tokenizer=False)  # back to the old version; cleans leftovers of the kill
        assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"], step
    else:
        raise AssertionError("the save never completed")
    assert step > 5 and outcomes == {"old", "new"}, (step, outcomes)  # kills before and after the swap were tried
