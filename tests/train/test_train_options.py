"""Engine options: held-out loss, gradient accumulation, per-module learning rates, gradient checkpointing, mixed
precision. The modality is the dependency-free ``toy`` plugin: these are tests of the engine, not of images."""

import json

import pytest
import torch

from anymal import ConfigError
from anymal.checkpoint import read_trainable_state
from anymal.train import train


def test_held_out_loss_is_logged_and_falls(make_toy_config, toy_pairs, tmp_path):
    path = toy_pairs[0]
    result = train(
        make_toy_config(
            tmp_path,
            "max_steps=12",
            "lr=1e-2",
            "eval_every=6",
            f"eval_data=[{{kind: pairs, path: '{path}', modality: toy, media_key: toy}}]",
        )
    )
    assert [step for step, _ in result.eval_losses] == [6, 12]
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "eval_loss" in r] == [6, 12]
    assert result.eval_losses[-1][1] < result.losses[0]


def test_gradient_accumulation_equals_one_bigger_batch(make_toy_config, tmp_path):
    big = train(make_toy_config(tmp_path / "big", "max_steps=2", "batch_size=6"))
    accumulated = train(
        make_toy_config(tmp_path / "acc", "max_steps=2", "batch_size=3", "grad_accum=2", "gradient_checkpointing=true")
    )
    assert accumulated.steps == big.steps == 2
    a = read_trainable_state(tmp_path / "big" / "run" / "final")
    b = read_trainable_state(tmp_path / "acc" / "run" / "final")
    # micro-batches are weighted by their target tokens (captions differ in length), so the two agree to float
    # precision, not merely closely
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    assert torch.allclose(torch.tensor(accumulated.losses), torch.tensor(big.losses), atol=1e-5)


def test_per_module_learning_rates(make_toy_config, tmp_path):
    from anymal import AnyMAL

    config = make_toy_config(tmp_path, "max_steps=2", "module_lr={toy: 0.0}", "lr=1e-2")
    train(config)
    initial = AnyMAL(config.model_config()).trainable_state_dict()
    final = read_trainable_state(tmp_path / "run" / "final")
    assert all(torch.equal(initial[k], final[k]) for k in final)  # lr 0 for the toy projector: unchanged
    with pytest.raises(ConfigError, match="module_lr: unknown modules"):
        train(make_toy_config(tmp_path / "bad", "max_steps=1", "module_lr={audio: 0.1}"))


def test_bf16_mixed_precision_follows_the_fp32_run_and_keeps_fp32_weights(make_toy_config, tmp_path):
    full = train(make_toy_config(tmp_path / "fp32", "max_steps=4"))
    mixed = train(make_toy_config(tmp_path / "bf16", "max_steps=4", "mixed_precision=bf16"))
    a, b = torch.tensor(full.losses), torch.tensor(mixed.losses)
    assert not torch.equal(a, b)  # autocast really ran in half precision (and a second run may change precision)
    assert torch.allclose(a, b, atol=0.05)  # and tracks the full-precision run
    weights = read_trainable_state(tmp_path / "bf16" / "run" / "final")
    assert all(w.dtype == torch.float32 for w in weights.values())  # master weights stay fp32
    if not torch.cuda.is_available():  # fp16 has no CPU autocast in accelerate: said, not silently ignored
        with pytest.warns(UserWarning, match="no fp16 autocast on CPU"):
            fp16 = train(make_toy_config(tmp_path / "fp16", "max_steps=4", "mixed_precision=fp16"))
        assert torch.equal(torch.tensor(fp16.losses), a)
