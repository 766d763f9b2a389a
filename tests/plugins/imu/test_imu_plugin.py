"""The ``imu`` plugin end to end: registry, the core's plugin contract (every variant), tokens for the LLM."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import anymal
from anymal.config import AnyMALConfig, config_from_dict
from anymal.testing import check_plugin_contract
from anymal_imu import IMUPlugin, IMUPluginConfig, IMURecording


def test_the_entry_point_resolves_to_the_plugin():
    assert anymal.get_plugin("imu") is IMUPlugin
    assert IMUPlugin.noun == "motion recording"
    assert IMUPlugin().config.plugin_type == "imu"
    assert "motion recording" in IMUPlugin().alignment_task().instruction_pool()[0]


def _variant(**overrides):
    class Variant(IMUPlugin):
        @classmethod
        def tiny_config(cls) -> IMUPluginConfig:
            return dataclasses.replace(IMUPlugin.tiny_config(), **overrides)

    return Variant


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"encoder_type": "conv_attention"},
        {"encoder_type": "patch_transformer"},
        {"projector_input": "sequence"},
        {"missing_gyro": "zeros", "default_sample_rate": 25.0},
        {"normalization": "fixed", "channel_mean": [0.0] * 6, "channel_std": [2.0] * 6},
    ],
    ids=["conv_gru", "conv_attention", "patch_transformer", "sequence", "lenient", "fixed"],
)
def test_every_variant_passes_the_plugin_contract(overrides):
    check_plugin_contract(_variant(**overrides))


@pytest.mark.parametrize("source", ["pooled", "sequence"])
def test_projected_tokens_have_the_llm_shape_and_only_the_projector_learns(tiny_plugin, source):
    plugin = IMUPlugin(dataclasses.replace(tiny_plugin.config, projector_input=source, num_tokens=5))
    encoder = plugin.build_encoder().eval().requires_grad_(False)
    projector = plugin.build_projector(48)
    batch = plugin.collate([plugin.preprocess(raw) for raw in plugin.example_inputs()])
    with torch.no_grad():
        features = plugin.encode(encoder, batch)
    assert torch.allclose(features["embeds"].norm(dim=-1), torch.ones(2))  # unit norm: the text-aligned space
    tokens = plugin.project(projector, features)
    assert tokens.shape == (2, 5, 48)
    assert not torch.allclose(tokens[0], tokens[1])  # different recordings give different tokens


def test_the_config_round_trips_through_the_anymal_config():
    config = AnyMALConfig.from_dict({"modalities": {"imu": {"encoder_type": "patch_transformer", "num_tokens": 8}}})
    imu = config.modalities["imu"]
    assert isinstance(imu, IMUPluginConfig) and imu.encoder_type == "patch_transformer" and imu.num_tokens == 8
    assert AnyMALConfig.from_dict(config.to_dict()).modalities["imu"] == imu
    with pytest.raises(anymal.ConfigError, match=r"modalities\.imu"):
        AnyMALConfig.from_dict({"modalities": {"imu": {"normalization": "minmax"}}})


def test_defaults_are_the_realistic_imu2clip_like_setting():
    config = config_from_dict(IMUPluginConfig, {})
    assert (config.sample_rate, config.window_samples, config.embed_dim) == (200.0, 1000, 768)  # 5 s; ViT-L-14 text


def test_real_recordings_become_tokens(basic_motions, bm_config):
    plugin = IMUPlugin(bm_config(sample_rate=20.0, window_samples=160))  # 10 Hz recordings upsampled, 8 s window
    raws = [IMURecording(x, 10.0, layout="CT") for x in basic_motions["X"][::10]]
    encoder, projector = plugin.build_encoder().eval(), plugin.build_projector(64)
    with torch.no_grad():
        tokens = plugin.project(projector, plugin.encode(encoder, plugin.collate([plugin.preprocess(r) for r in raws])))
    assert tokens.shape == (4, plugin.num_tokens, 64)
    assert torch.isfinite(tokens).all()
