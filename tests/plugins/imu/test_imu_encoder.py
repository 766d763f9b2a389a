"""The IMU encoder: the three trunks, deterministic seeded init, and safetensors checkpoints that check their config."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from safetensors.torch import save_file

from anymal.errors import CheckpointError, ConfigError
from anymal_imu import IMUPlugin, IMUPluginConfig, load_encoder, read_metadata, save_encoder

TYPES = ("conv_gru", "conv_attention", "patch_transformer")


def _config(encoder_type: str, **overrides) -> IMUPluginConfig:
    fields = dataclasses.asdict(IMUPlugin.tiny_config())
    fields.update(encoder_type=encoder_type, **overrides)
    return IMUPluginConfig(**fields)


@pytest.mark.parametrize("encoder_type", TYPES)
def test_each_trunk_gives_pooled_and_sequence_features(encoder_type):
    config = _config(encoder_type)
    encoder = load_encoder(config).eval()
    with torch.no_grad():
        out = encoder(torch.randn(3, 6, config.window_samples))
    sequence = config.window_samples // (
        config.patch_size if encoder_type == "patch_transformer" else 2**config.conv_layers
    )
    assert out["embeds"].shape == (3, config.embed_dim)
    assert out["features"].shape == (3, sequence, config.width)


@pytest.mark.parametrize("encoder_type", TYPES)
def test_an_item_encodes_the_same_alone_and_in_a_batch(encoder_type):
    config = _config(encoder_type)
    encoder = load_encoder(config).eval()
    x = torch.randn(4, 6, config.window_samples, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        batch, single = encoder(x), encoder(x[2:3])
    assert torch.allclose(batch["embeds"][2], single["embeds"][0], atol=1e-5)
    assert torch.allclose(batch["features"][2], single["features"][0], atol=1e-5)


def test_random_init_is_seeded_and_leaves_the_global_rng_alone():
    state = torch.random.get_rng_state()
    a, b = load_encoder(_config("conv_gru")), load_encoder(_config("conv_gru"))
    assert torch.equal(torch.random.get_rng_state(), state)
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name
    c = load_encoder(_config("conv_gru", seed=1))
    assert not torch.equal(a.head.weight, c.head.weight)


def test_checkpoint_round_trip(tmp_path):
    config = _config("conv_attention", seed=3)
    encoder = load_encoder(config)
    path = save_encoder(encoder, config, tmp_path / "sub" / "imu.safetensors", extra={"note": "test"})
    assert [p.name for p in path.parent.iterdir()] == ["imu.safetensors"]  # no temporary file left behind
    assert read_metadata(path)["info"] == {"note": "test"}
    reloaded = load_encoder(dataclasses.replace(config, checkpoint=str(path), seed=99))
    x = torch.randn(2, 6, config.window_samples)
    with torch.no_grad():
        assert torch.equal(encoder.eval()(x)["embeds"], reloaded.eval()(x)["embeds"])


def test_checkpoint_for_another_config_is_refused_by_field(tmp_path):
    config = _config("conv_gru")
    path = save_encoder(load_encoder(config), config, tmp_path / "imu.safetensors")
    other = dataclasses.replace(config, checkpoint=str(path), sample_rate=50.0)
    with pytest.raises(CheckpointError, match=r"sample_rate: checkpoint 20\.0, config 50\.0"):
        load_encoder(other)
    with pytest.raises(CheckpointError, match="width: checkpoint 16, config 32"):
        load_encoder(dataclasses.replace(config, checkpoint=str(path), width=32))


def test_missing_or_foreign_checkpoints_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match=r"nope\.safetensors: no such file"):
        load_encoder(_config("conv_gru", checkpoint=str(tmp_path / "nope.safetensors")))
    save_file({"w": torch.zeros(2)}, tmp_path / "other.safetensors")
    with pytest.raises(CheckpointError, match=r"other\.safetensors: metadata format None"):
        load_encoder(_config("conv_gru", checkpoint=str(tmp_path / "other.safetensors")))
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match=r"junk\.safetensors: not a readable safetensors file"):
        load_encoder(_config("conv_gru", checkpoint=str(tmp_path / "junk.safetensors")))


def test_encoder_key_shares_only_identical_encoders(tmp_path):
    key = IMUPlugin(_config("conv_gru")).encoder_key()
    assert IMUPlugin(_config("conv_gru")).encoder_key() == key
    assert IMUPlugin(_config("conv_gru", seed=1)).encoder_key() != key
    assert IMUPlugin(_config("conv_gru", num_tokens=9)).encoder_key() == key  # the projector is not the encoder
    assert IMUPlugin(_config("patch_transformer")).encoder_key() != key


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"encoder_type": "lstm"}, "encoder_type='lstm': expected one of conv_gru"),
        ({"kernel_size": 4}, "kernel_size=4: expected an odd number"),
        ({"encoder_type": "patch_transformer", "patch_size": 7}, "patch_size=7 must divide window_samples=64"),
        ({"normalization": "fixed"}, "channel_mean=None: normalization='fixed' needs 6 values"),
        ({"sample_rate": 0.0}, "sample_rate=0.0: expected a positive number"),
        ({"min_coverage": 1.5}, r"min_coverage=1.5: expected a fraction in \(0, 1\]"),
        ({"width": 15, "heads": 2}, "width=15 is not divisible by heads=2"),
    ],
)
def test_invalid_configs_name_the_field(overrides, message):
    with pytest.raises(ConfigError, match=message):
        _config(**{"encoder_type": "conv_gru", **overrides})
