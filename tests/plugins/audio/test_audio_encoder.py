"""CLAP audio towers: random init, transformers folders, LAION-CLAP checkpoints (golden parity with laion_clap)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from audio_laion_fixture import golden_mel
from transformers import ClapConfig, ClapModel

from anymal.errors import CheckpointError, ConfigError
from anymal.testing import asset
from anymal_audio import (
    TINY_AUDIO_CONFIG,
    AudioPlugin,
    AudioPluginConfig,
    build_audio_encoder,
    hf_to_laion_state_dict,
    infer_audio_config,
    laion_to_hf_state_dict,
    load_laion_state_dict,
    resolve_audio_config,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _tiny(**overrides) -> AudioPluginConfig:
    config = AudioPlugin.tiny_config()
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


def _laion(path: Path, **overrides) -> AudioPluginConfig:
    return AudioPluginConfig(backend="laion_clap", encoder=str(path), **overrides)


def _clip():
    esc50 = asset("audio/esc50_4-167077-A-20.wav")
    if esc50.is_file():
        return str(esc50)
    t = torch.arange(48000 * 3) / 48000
    return (torch.sin(2 * torch.pi * 700 * t) * 0.3, 48000)


# --- random init -----------------------------------------------------------------------------------------------


def test_random_init_is_deterministic_in_the_seed_and_frozen():
    first, again = build_audio_encoder(_tiny()), build_audio_encoder(_tiny())
    other = build_audio_encoder(_tiny(seed=1))
    for (name, a), b in zip(first.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), name
    assert any(not torch.equal(a, c) for a, c in zip(first.parameters(), other.parameters()))
    assert not first.training and not any(p.requires_grad for p in first.parameters())
    before = torch.random.get_rng_state()
    build_audio_encoder(_tiny())
    assert torch.equal(before, torch.random.get_rng_state()), "building must not consume the global RNG"


def test_dtype_is_applied():
    encoder = build_audio_encoder(_tiny(dtype="bfloat16"))
    assert {p.dtype for p in encoder.parameters()} == {torch.bfloat16}


# --- transformers checkpoints ----------------------------------------------------------------------------------


def test_loads_the_audio_tower_of_a_full_clap_model_folder(tmp_path):
    """The hub's laion/clap-* checkpoints are full ClapModel folders; the same format, tiny, saved locally."""
    text = dict(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        clap = ClapModel(ClapConfig(text_config=text, audio_config=TINY_AUDIO_CONFIG, projection_dim=32)).eval()
    clap.save_pretrained(tmp_path)
    config = _tiny(encoder=str(tmp_path), audio_config={})
    plugin = AudioPlugin(config)
    assert plugin.audio_config.patch_embeds_hidden_size == TINY_AUDIO_CONFIG["patch_embeds_hidden_size"]
    encoder = plugin.build_encoder()
    batch = plugin.collate([plugin.preprocess(_clip())])
    with torch.no_grad():
        ours = plugin.encode(encoder, batch)
        pooled = clap.audio_model(input_features=batch["input_features"]).pooler_output
        theirs = torch.nn.functional.normalize(clap.audio_projection(pooled), dim=-1)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)


def test_a_missing_folder_is_a_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="nope"):
        AudioPlugin(_tiny(encoder=str(tmp_path / "nope"), audio_config={})).build_encoder()


# --- LAION-CLAP checkpoints ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["laion_htsat_tiny.pt", "laion_htsat_tiny_fusion.pt"])
def test_laion_checkpoint_matches_laion_clap_outputs(name):
    """Golden values computed by laion_clap's own HTSAT code (see audio_laion_fixture.py)."""
    path = FIXTURES / name
    golden = torch.load(path, weights_only=True)["anymal_golden"]
    encoder = build_audio_encoder(_laion(path, max_length_s=2.0))
    mel = golden_mel(tuple(golden["mel_shape"].tolist()))
    with torch.no_grad():
        out = encoder(input_features=mel, is_longer=golden["longer"][:, None])
        pooled = encoder.audio_model(input_features=mel, is_longer=golden["longer"][:, None]).pooler_output
    torch.testing.assert_close(pooled, golden["embedding"], rtol=0, atol=1e-5)
    torch.testing.assert_close(out.audio_embeds, golden["projected"], rtol=0, atol=1e-5)


def test_architecture_is_inferred_from_the_laion_weights():
    state = load_laion_state_dict(FIXTURES / "laion_htsat_tiny_fusion.pt")
    assert not any(k.startswith("module.") for k in state)
    config = infer_audio_config(state)
    assert config["depths"] == [2, 2] and config["num_attention_heads"] == [1, 2]
    assert (config["patch_embeds_hidden_size"], config["hidden_size"], config["projection_dim"]) == (8, 16, 16)
    assert (config["num_mel_bins"], config["window_size"], config["enable_fusion"]) == (16, 8, True)


def test_hf_and_laion_layouts_give_identical_embeddings(tmp_path):
    """One set of weights, two files: a transformers folder and a LAION-layout .pt; same features either way."""
    hf_plugin = AudioPlugin(_tiny())
    hf_encoder = hf_plugin.build_encoder()
    hf_encoder.save_pretrained(tmp_path / "hf")
    laion_state = {f"module.{k}": v for k, v in hf_to_laion_state_dict(hf_encoder.state_dict()).items()}
    torch.save({"epoch": 3, "state_dict": laion_state}, tmp_path / "clap.pt")

    folder_plugin = AudioPlugin(_tiny(encoder=str(tmp_path / "hf"), audio_config={}))
    laion_plugin = AudioPlugin(
        _tiny(backend="laion_clap", encoder=str(tmp_path / "clap.pt"), audio_config={"spec_size": 128})
    )
    batch = hf_plugin.collate([hf_plugin.preprocess(_clip())])
    with torch.no_grad():
        reference = hf_plugin.encode(hf_encoder, batch)
        for plugin in (folder_plugin, laion_plugin):  # equal up to float rounding of a reloaded module
            torch.testing.assert_close(plugin.encode(plugin.build_encoder(), batch), reference, rtol=0, atol=1e-6)


def test_conversion_round_trip_is_lossless():
    state = build_audio_encoder(_tiny()).state_dict()
    back = laion_to_hf_state_dict(hf_to_laion_state_dict(state))
    assert back.keys() == state.keys()
    assert all(torch.equal(back[k], state[k]) for k in state)


def test_pann_and_unknown_laion_weights_are_refused(tmp_path):
    state = load_laion_state_dict(FIXTURES / "laion_htsat_tiny.pt")
    pann = {
        "audio_branch.conv_block1.conv1.weight": torch.zeros(64, 1, 3, 3),
        "audio_projection.2.weight": torch.zeros(4, 4),
    }
    with pytest.raises(CheckpointError, match="PANN"):
        infer_audio_config(pann)
    odd = copy.copy(state)
    odd["audio_branch.layers.0.blocks.0.attn.extra_gate"] = torch.zeros(3)
    with pytest.raises(CheckpointError, match="extra_gate"):
        laion_to_hf_state_dict(odd)
    text_only = {k: v for k, v in state.items() if not k.startswith("audio_")}
    with pytest.raises(CheckpointError, match="audio_branch"):
        infer_audio_config(text_only)


def test_unreadable_laion_checkpoints_are_checkpoint_errors(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a zip, not a pickle")
    with pytest.raises(CheckpointError, match=r"junk\.pt"):
        resolve_audio_config(_laion(tmp_path / "junk.pt"))
    with pytest.raises(CheckpointError, match="not found"):
        resolve_audio_config(_laion(tmp_path / "absent.pt"))
    torch.save({"state_dict": {"epoch": 3}}, tmp_path / "odd.pt")
    with pytest.raises(CheckpointError, match="tensors"):
        resolve_audio_config(_laion(tmp_path / "odd.pt"))


def test_spec_size_is_read_off_the_saved_window_masks():
    # the golden checkpoints were built on a 64-wide spectrogram image (LAION's released ones: 256)
    assert AudioPlugin(_laion(FIXTURES / "laion_htsat_tiny.pt")).audio_config.spec_size == 64
    with pytest.raises(ConfigError, match="spec_size=256 contradicts"):
        resolve_audio_config(_laion(FIXTURES / "laion_htsat_tiny.pt", audio_config={"spec_size": 256}))
    exported = {
        k: v for k, v in load_laion_state_dict(FIXTURES / "laion_htsat_tiny.pt").items() if "attn_mask" not in k
    }
    assert "spec_size" not in infer_audio_config(exported)


# --- geometry checks -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("audio_overrides", "plugin_overrides", "match"),
    [
        ({"spec_size": 100}, {}, "multiple of num_mel_bins"),
        ({}, {"max_length_s": 10.0}, "exceed the encoder's spectrogram width"),
        ({"hidden_size": 48}, {}, "hidden_size"),
        ({"window_size": 6}, {}, "window_size"),
    ],
)
def test_inconsistent_geometry_is_a_config_error(audio_overrides, plugin_overrides, match):
    config = _tiny(audio_config={**TINY_AUDIO_CONFIG, **audio_overrides}, **plugin_overrides)
    with pytest.raises(ConfigError, match=match):
        build_audio_encoder(config)
