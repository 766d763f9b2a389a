"""IMU-to-text contrastive pretraining: the loss against open_clip's, learning on real recordings, the task's files."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from open_clip.loss import ClipLoss

from anymal.errors import ConfigError, DataError
from anymal_imu import (
    IMUPlugin,
    build_text_tower,
    info_nce,
    load_encoder,
    pretrain_encoder,
    read_metadata,
    retrieval_accuracy,
)
from anymal_imu.pretrain import IMUContrastiveConfig, caption_table, load_pairs


def _unit(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x, dim=-1)


def test_info_nce_with_distinct_captions_equals_open_clips_clip_loss():
    generator = torch.Generator().manual_seed(0)
    imu, text = _unit(torch.randn(8, 16, generator=generator)), _unit(torch.randn(8, 16, generator=generator))
    scale = torch.tensor(math.log(1 / 0.07))
    expected = ClipLoss()(imu, text, scale.exp())
    assert torch.allclose(info_nce(imu, text, scale), expected, atol=1e-6)
    assert torch.allclose(info_nce(imu, text, scale, torch.arange(8)), expected, atol=1e-6)


def test_info_nce_counts_repeated_captions_as_positives():
    generator = torch.Generator().manual_seed(1)
    ids = torch.tensor([0, 0, 1, 2, 1, 0])
    imu, text = _unit(torch.randn(6, 8, generator=generator)), _unit(torch.randn(3, 8, generator=generator))[ids]
    scale = torch.tensor(2.0)
    logits = scale.exp() * imu @ text.T
    expected = 0.0
    for view in (logits, logits.T):  # each row's loss: mean of -log p over every column sharing its caption
        log_p = view.log_softmax(dim=1)
        expected += sum(-log_p[i, ids == ids[i]].mean() for i in range(len(ids))) / len(ids)
    assert info_nce(imu, text, scale, ids).item() == pytest.approx(expected.item() / 2, abs=1e-6)
    # perfectly aligned, the loss is log(#repeats) per row, its minimum; plain CLIP would push repeats apart
    aligned = info_nce(text, text, torch.tensor(math.log(100.0)), ids)
    assert aligned.item() == pytest.approx(float(np.mean([math.log(3)] * 3 + [math.log(2)] * 2 + [0])), abs=1e-2)


def test_the_temperature_is_learnable():
    scale = torch.tensor(math.log(1 / 0.07), requires_grad=True)
    imu, text = _unit(torch.randn(4, 8)), _unit(torch.randn(4, 8))
    info_nce(imu, text, scale).backward()
    assert scale.grad is not None and scale.grad.abs() > 0


def test_tiny_text_tower_is_offline_seeded_and_distinguishes_captions():
    a = build_text_tower("tiny", embed_dim=16, seed=0)
    b = build_text_tower("tiny", embed_dim=16, seed=0)
    captions = ["a person walking", "a person running", "a person walking"]
    ea, eb = a.encode(captions), b.encode(captions)
    assert ea.shape == (3, 16) and a.output_dim == 16
    assert torch.equal(ea, eb)
    assert torch.allclose(ea[0], ea[2]) and not torch.allclose(ea[0], ea[1])
    assert all(not p.requires_grad for p in a.parameters())
    with pytest.raises(ConfigError, match="text_model='ViT-Nope': not an open_clip model"):
        build_text_tower("ViT-Nope")


CAPTIONS = {
    "Standing": "a person standing still",
    "Walking": "a person walking",
    "Running": "a person running",
    "Badminton": "a person playing badminton",
}


def test_contrastive_pretraining_learns_on_real_recordings(basic_motions, bm_config, one_thread):
    plugin = IMUPlugin(bm_config())
    windows = torch.stack([plugin.preprocess((np.ascontiguousarray(x.T), 10.0)) for x in basic_motions["X"]])
    captions = [CAPTIONS[str(y)] for y in basic_motions["y"]]
    held_out = torch.arange(len(captions)) % 4 == 0  # 10 recordings, balanced over the 4 activities
    text = build_text_tower("tiny", embed_dim=plugin.config.embed_dim, seed=0)
    encoder = plugin.build_encoder()

    train_captions = [c for c, h in zip(captions, held_out) if not h]
    result = pretrain_encoder(encoder, windows[~held_out], train_captions, text, steps=100, batch_size=30, lr=3e-3)
    metrics = result.metrics()

    # retrieval of the right caption among the 4 activities on the training windows: chance is 25%
    assert metrics["retrieval_acc_before"] <= 0.5
    assert metrics["retrieval_acc_after"] >= 0.9
    # InfoNCE goes down (its floor with 4 captions repeated in a batch of 30 is about log(7.5) = 2.0)
    assert metrics["loss_last"] < metrics["loss_first"] - 0.5
    assert metrics["temperature"] < 0.07  # the learnable temperature sharpened
    # and it transfers to the 10 recordings it never saw
    table, ids, _ = caption_table(text, captions)
    assert retrieval_accuracy(encoder, windows[held_out], table, ids[held_out]) >= 0.5


def test_the_pretraining_task_writes_a_checkpoint_the_plugin_loads(basic_motions, bm_config, tmp_path, one_thread):
    data = tmp_path / "motions.npz"
    np.savez(data, X=basic_motions["X"], y=basic_motions["y"], sample_rate_hz=10.0)
    plugin = IMUPlugin(bm_config())
    task = plugin.pretraining_tasks()["imu_text_contrastive"]
    output = tmp_path / "ckpt" / "imu.safetensors"
    metrics = task.run(
        plugin,
        {
            "data": str(data),
            "output": str(output),
            "text_model": "tiny",
            "label_captions": CAPTIONS,
            "steps": 60,
            "batch_size": 40,
            "lr": 3e-3,
            "progress": False,
        },
    )
    assert metrics["checkpoint"] == str(output) and metrics["pairs"] == 40 and metrics["distinct_captions"] == 4
    assert sorted(p.name for p in output.parent.iterdir()) == ["imu.metrics.jsonl", "imu.safetensors"]
    lines = [json.loads(line) for line in (output.parent / "imu.metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 60 and lines[-1]["loss"] < lines[0]["loss"]
    info = read_metadata(output)["info"]
    assert info["task_config"]["text_model"] == "tiny" and info["metrics"]["steps"] == 60

    # the plugin config now points at the checkpoint, and the loaded encoder is the trained one
    trained = IMUPlugin(bm_config(checkpoint=str(output)))
    encoder = trained.build_encoder()
    windows = torch.stack([trained.preprocess((np.ascontiguousarray(x.T), 10.0)) for x in basic_motions["X"]])
    text = build_text_tower("tiny", embed_dim=trained.config.embed_dim, seed=0)
    table, ids, _ = caption_table(text, [CAPTIONS[str(y)] for y in basic_motions["y"]])
    assert retrieval_accuracy(encoder, windows, table, ids) == pytest.approx(metrics["retrieval_acc_after"])
    assert not torch.equal(encoder.head.weight, load_encoder(bm_config()).head.weight)


def test_jsonl_pairs_of_files(tmp_path, bm_config):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(3):
        np.save(tmp_path / f"rec{i}.npy", rng.standard_normal((200, 6)).astype(np.float32))  # 20 s at 10 Hz
        rows.append(json.dumps({"imu": f"rec{i}.npy", "caption": f"motion {i}", "sample_rate": 10}))
    (tmp_path / "pairs.jsonl").write_text("\n".join(rows) + "\n")
    cfg = IMUContrastiveConfig(data=str(tmp_path / "pairs.jsonl"), output=str(tmp_path / "out.safetensors"))
    windows, captions = load_pairs(IMUPlugin(bm_config()), cfg)
    assert windows.shape == (3, 6, 100) and captions == ["motion 0", "motion 1", "motion 2"]

    (tmp_path / "bad.jsonl").write_text(rows[0] + "\n" + json.dumps({"imu": "rec9.npy", "caption": "x"}) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl:2: IMU file .*rec9.npy: no such file"):
        load_pairs(IMUPlugin(bm_config()), dataclasses.replace(cfg, data=str(tmp_path / "bad.jsonl")))
    (tmp_path / "nocap.jsonl").write_text(json.dumps({"imu": "rec0.npy"}) + "\n")
    with pytest.raises(DataError, match=r"nocap.jsonl:1: expected a JSON object with 'imu' and 'caption'"):
        load_pairs(IMUPlugin(bm_config()), dataclasses.replace(cfg, data=str(tmp_path / "nocap.jsonl")))


def test_task_config_errors_name_the_field(tiny_plugin, tmp_path):
    run = tiny_plugin.pretraining_tasks()["imu_text_contrastive"].run
    with pytest.raises(ConfigError, match=r"imu_text_contrastive\.output: required"):
        run(tiny_plugin, {"data": "x.npz"})
    with pytest.raises(ConfigError, match=r"expected a \.safetensors file name"):
        run(tiny_plugin, {"data": "x.npz", "output": "enc.pt"})
    with pytest.raises(ConfigError, match="stepz"):
        run(tiny_plugin, {"data": "x.npz", "output": "enc.safetensors", "stepz": 3})
    np.savez(tmp_path / "d.npz", X=np.zeros((4, 6, 100), np.float32), y=np.array(["a", "b", "a", "b"]))
    config = {"data": str(tmp_path / "d.npz"), "output": str(tmp_path / "e.safetensors"), "text_model": "tiny"}
    with pytest.raises(DataError, match=r"d.npz: no sample rate"):
        run(tiny_plugin, config)
