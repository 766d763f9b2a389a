"""The audio plugin end to end: ESC-50 clips through preprocess, CLAP, projector; front end; config; registry."""

from __future__ import annotations

import csv
import dataclasses

import numpy as np
import pytest
import torch
from transformers import ClapFeatureExtractor

import anymal
from anymal.config import AnyMALConfig
from anymal.errors import ConfigError
from anymal.testing import check_plugin_contract, require_asset
from anymal_audio import TINY_AUDIO_CONFIG, AudioPlugin, AudioPluginConfig, load_audio, prepare_waveform

LLM_DIM = 48

# A fusion tower: fusion needs 64 mel bins and a 256-wide image (10 s clips, like LAION's fusion checkpoints).
TINY_FUSION_CONFIG = {
    **TINY_AUDIO_CONFIG,
    "num_mel_bins": 64,
    "spec_size": 256,
    "patch_embeds_hidden_size": 8,
    "hidden_size": 16,
    "num_attention_heads": [1, 2],
    "enable_fusion": True,
    "fusion_type": "aff_2d",
}


@pytest.fixture(scope="module")
def esc50_clips():
    meta = require_asset("audio/esc50_meta_subset.csv")
    with meta.open() as handle:
        rows = list(csv.DictReader(handle))
    clips = [meta.parent / f"esc50_{row['filename']}" for row in rows]
    clips = [clip for clip in clips if clip.is_file()]
    if len(clips) < 2:
        pytest.skip("ESC-50 clips missing from the assets folder")
    return clips


def _plugin(**overrides) -> AudioPlugin:
    return AudioPlugin(dataclasses.replace(AudioPlugin.tiny_config(), **overrides))


# --- end to end ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("features", "projector"), [("pooled", "mlp"), ("pooled", "linear"), ("sequence", "mlp"), ("sequence", "linear")]
)
def test_esc50_clips_become_llm_tokens(esc50_clips, features, projector):
    plugin = _plugin(features=features, projector=projector)
    encoder = plugin.build_encoder()
    items = [plugin.preprocess(str(clip)) for clip in esc50_clips]
    assert all(item["input_features"].shape == (1, 501, 32) for item in items)  # 5 s: 501 frames x 32 mels
    batch = plugin.collate(items)
    with torch.no_grad():
        feats = plugin.encode(encoder, batch)
    if features == "pooled":
        assert feats.shape == (len(items), TINY_AUDIO_CONFIG["projection_dim"])
        torch.testing.assert_close(feats.norm(dim=-1), torch.ones(len(items)))  # CLAP's unit-sphere embeddings
    else:
        # 128x128 image -> 16x16 tokens after two stages -> 4 frequency rows x (4 chunks x 16 frames)
        assert feats.shape == (len(items), 64, TINY_AUDIO_CONFIG["hidden_size"])
    projector_module = plugin.build_projector(LLM_DIM)
    tokens = plugin.project(projector_module, feats)
    assert tokens.shape == (len(items), plugin.num_tokens, LLM_DIM)
    assert torch.isfinite(tokens).all()
    # different sounds give different tokens, and a clip alone gives what it gives in the batch
    assert min((tokens[0] - tokens[i]).abs().max() for i in range(1, len(items))) > 1e-4
    with torch.no_grad():
        alone = plugin.project(projector_module, plugin.encode(encoder, plugin.collate(items[1:2])))
    torch.testing.assert_close(alone[0], tokens[1].detach(), rtol=1e-4, atol=1e-5)


def test_same_clip_in_any_form_gives_the_same_features(esc50_clips):
    plugin = _plugin()
    path = esc50_clips[0]
    wave = load_audio(path)
    forms = [str(path), path, path.read_bytes(), (wave.samples, wave.sample_rate), {"path": str(path), "bytes": None}]
    reference = plugin.preprocess(forms[0])["input_features"]
    for raw in forms[1:]:
        assert torch.equal(plugin.preprocess(raw)["input_features"], reference)


# --- front end -------------------------------------------------------------------------------------------------


def test_front_end_matches_clap_feature_extractor(esc50_clips):
    """Short clips: our per-clip features are exactly ClapFeatureExtractor's on the same 48 kHz waveform."""
    plugin = AudioPlugin(AudioPluginConfig(encoder="", audio_config={**TINY_FUSION_CONFIG, "enable_fusion": False}))
    signal = prepare_waveform(load_audio(esc50_clips[1]), 48000)
    reference = ClapFeatureExtractor(
        frequency_min=50, frequency_max=14000, truncation="rand_trunc", padding="repeatpad"
    )
    expected = reference(signal, sampling_rate=48000, return_tensors="pt")["input_features"][0]
    item = plugin.preprocess(str(esc50_clips[1]))
    assert item["input_features"].shape == (1, 1001, 64)  # 10 s window: the 5 s clip is repeated then padded
    torch.testing.assert_close(item["input_features"], expected.float(), rtol=0, atol=1e-4)
    assert not item["is_longer"].item()


def test_long_clips_get_reproducible_crops_without_touching_numpy_state():
    t = np.arange(48000 * 9) / 48000
    clip = ((0.3 * np.sin(2 * np.pi * (100 + 300 * t) * t)).astype(np.float32), 48000)  # 9 s chirp > 5 s window
    plugin = _plugin()
    np.random.seed(123)
    state = np.random.get_state()[1].copy()
    first, second = plugin.preprocess(clip), plugin.preprocess(clip)
    assert np.array_equal(np.random.get_state()[1], state)
    assert first["is_longer"].item() and torch.equal(first["input_features"], second["input_features"])
    assert not torch.equal(_plugin(seed=5).preprocess(clip)["input_features"], first["input_features"])
    free = _plugin(deterministic_crops=False)
    crops = {free.preprocess(clip)["input_features"].sum().item() for _ in range(4)}
    assert len(crops) > 1  # fresh random crops for augmentation


def test_fusion_tower_fuses_long_speech_and_not_short_clips(esc50_clips):
    jfk = require_asset("audio/jfk.flac")
    plugin = AudioPlugin(AudioPluginConfig(encoder="", audio_config=TINY_FUSION_CONFIG, num_tokens=3))
    assert plugin.front_end.truncation == "fusion"  # "auto" follows the checkpoint's enable_fusion
    long_item, short_item = plugin.preprocess(str(jfk)), plugin.preprocess(str(esc50_clips[0]))
    assert long_item["input_features"].shape == short_item["input_features"].shape == (4, 1001, 64)
    assert long_item["is_longer"].item() and not short_item["is_longer"].item()
    views = short_item["input_features"]
    assert all(torch.equal(views[0], views[i]) for i in range(1, 4))  # a short clip: four copies of one mel
    encoder = plugin.build_encoder()
    with torch.no_grad():
        batch = plugin.encode(encoder, plugin.collate([long_item, short_item]))
        alone = plugin.encode(encoder, plugin.collate([short_item]))
    assert batch.shape == (2, TINY_FUSION_CONFIG["projection_dim"])
    torch.testing.assert_close(alone[0], batch[1], rtol=1e-4, atol=1e-5)  # a fused neighbour changes nothing


# --- projector -------------------------------------------------------------------------------------------------


def test_projector_sizes_at_llama_scale():
    """The paper's linear layer vs the factored MLP, for LAION CLAP (512-d) into LLaMA-2-7B (4096-d), 32 tokens."""
    config = AudioPluginConfig(encoder="", audio_config={"projection_dim": 512})
    with torch.device("meta"):  # shapes only: no 67M-parameter initialisation in a unit test
        linear = AudioPlugin(dataclasses.replace(config, projector="linear")).build_projector(4096)
        mlp = AudioPlugin(config).build_projector(4096)
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    assert count(linear) == 512 * 32 * 4096 + 32 * 4096
    assert count(mlp) == 512 * 32 * 1024 + 32 * 1024 + 1024 * 4096 + 4096
    features = torch.zeros(2, 512, device="meta")
    assert linear(features).shape == mlp(features).shape == (2, 32, 4096)


# --- config and registry ---------------------------------------------------------------------------------------


def test_registered_and_passes_the_contract_kit():
    assert anymal.get_plugin("audio") is AudioPlugin
    assert AudioPlugin.noun == "audio clip"
    assert "Describe this audio clip briefly." in AudioPlugin().alignment_task().instruction_pool()
    check_plugin_contract("audio")


def test_config_round_trips_through_the_model_config():
    config = AnyMALConfig.from_dict({"modalities": {"audio": dataclasses.asdict(AudioPlugin.tiny_config())}})
    assert config.modalities["audio"] == AudioPlugin.tiny_config()
    partial = AnyMALConfig.from_dict({"modalities": {"audio": {"num_tokens": 8, "features": "sequence"}}})
    assert partial.modalities["audio"].encoder == "laion/clap-htsat-unfused"


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"backend": "clap_module"}, "backend"),
        ({"features": "frames"}, "features"),
        ({"truncation": "crop"}, "truncation"),
        ({"frequency_max": 30000.0}, "frequency_min/max"),
        ({"backend": "laion_clap", "encoder": ""}, ".pt checkpoint"),
        ({"num_tokens": 0}, "num_tokens"),
    ],
)
def test_invalid_configs_are_refused(overrides, match):
    with pytest.raises(ConfigError, match=match):
        AudioPluginConfig(**overrides)


def test_fusion_needs_a_fusion_tower_with_64_mels():
    with pytest.raises(ConfigError, match="fusion checkpoint"):
        _plugin(truncation="fusion").front_end  # noqa: B018
    config = AudioPluginConfig(
        encoder="", truncation="fusion", audio_config={**TINY_AUDIO_CONFIG, "enable_fusion": True}
    )
    with pytest.raises(ConfigError, match="num_mel_bins=64"):
        AudioPlugin(config).front_end  # noqa: B018


def test_encoder_key_shares_identical_towers_only():
    assert _plugin().encoder_key() == _plugin(num_tokens=9, features="sequence").encoder_key()
    assert _plugin().encoder_key() != _plugin(seed=1).encoder_key()
    assert AudioPlugin().encoder_key() == AudioPlugin(AudioPluginConfig(seed=4)).encoder_key()  # seed unused


def test_a_bfloat16_encoder_feeds_a_float32_projector(esc50_clips):
    plugin = _plugin(dtype="bfloat16")
    encoder = plugin.build_encoder()
    batch = plugin.collate([plugin.preprocess(str(clip)) for clip in esc50_clips[:2]])
    batch["input_features"] = batch["input_features"].to(torch.bfloat16)  # what the core does for the encoder
    with torch.no_grad():
        feats = plugin.encode(encoder, batch)
    assert feats.dtype == torch.bfloat16
    tokens = plugin.project(plugin.build_projector(LLM_DIM), feats)
    assert tokens.dtype == torch.float32 and tokens.shape == (2, plugin.num_tokens, LLM_DIM)
