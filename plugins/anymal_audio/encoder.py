"""Building the frozen CLAP audio tower (transformers' ``ClapAudioModelWithProjection``) from an audio config.

Three sources, one model class: a transformers checkpoint (hub id or folder), an original LAION-CLAP ``.pt``
(converted on load, see ``anymal_audio.laion``), or a random initialisation from a ``ClapAudioConfig`` dict for
tests and benchmarks, deterministic in the config's seed.
"""

from __future__ import annotations

import torch
from transformers import ClapAudioConfig, ClapAudioModelWithProjection
from transformers.utils import logging as hf_logging

from anymal.errors import CheckpointError, ConfigError
from anymal_audio.config import AudioPluginConfig
from anymal_audio.features import FUSION_MEL_BINS
from anymal_audio.laion import LAION_SPEC_SIZE, infer_audio_config, laion_to_hf_state_dict, load_laion_state_dict


def _clap_audio_config(fields: dict, where: str) -> ClapAudioConfig:
    try:
        return ClapAudioConfig(**fields)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: not a valid ClapAudioConfig ({exc})") from None


def resolve_audio_config(config: AudioPluginConfig) -> ClapAudioConfig:
    """The architecture the plugin will run, without loading weights (only a config file or checkpoint keys)."""
    if config.backend == "laion_clap":
        fields = infer_audio_config(load_laion_state_dict(config.encoder), config.encoder)
        for name, value in config.audio_config.items():
            if name in fields and fields[name] != value:
                raise ConfigError(
                    f"audio.audio_config.{name}={value!r} contradicts the LAION-CLAP checkpoint's weights, "
                    f"which imply {fields[name]!r}"
                )
        return _clap_audio_config({"spec_size": LAION_SPEC_SIZE, **fields, **config.audio_config}, "audio.audio_config")
    if not config.encoder:
        return _clap_audio_config(dict(config.audio_config), "audio.audio_config")
    try:
        return ClapAudioConfig.from_pretrained(config.encoder, revision=config.revision, **config.audio_config)
    except OSError as exc:
        raise CheckpointError(
            f"audio.encoder={config.encoder!r}: cannot read its CLAP config ({str(exc).splitlines()[0]}); with "
            "HF_HUB_OFFLINE=1 the checkpoint must be a local folder or already in the Hugging Face cache"
        ) from None


def resolve_truncation(config: AudioPluginConfig, audio: ClapAudioConfig) -> str:
    """``"fusion"`` or ``"rand_trunc"``; ``"auto"`` follows the checkpoint (fusion iff it was trained with it)."""
    truncation = config.truncation
    if truncation == "auto":
        truncation = "fusion" if audio.enable_fusion else "rand_trunc"
    if truncation == "fusion" and not audio.enable_fusion:
        raise ConfigError("audio.truncation='fusion' needs a fusion checkpoint (audio_config.enable_fusion=True)")
    if truncation == "fusion" and audio.num_mel_bins != FUSION_MEL_BINS:
        raise ConfigError(
            f"audio.truncation='fusion' needs num_mel_bins={FUSION_MEL_BINS} (ClapFeatureExtractor's fusion view "
            f"is fixed at 64 bins), got {audio.num_mel_bins}"
        )
    return truncation


def check_geometry(config: AudioPluginConfig, audio: ClapAudioConfig) -> None:
    """Refuses front-end/encoder combinations that would only fail (or silently misbehave) at forward time."""
    freq_ratio = audio.spec_size // audio.num_mel_bins
    if freq_ratio < 1 or audio.spec_size % audio.num_mel_bins:
        raise ConfigError(
            f"audio.audio_config: spec_size={audio.spec_size} must be a multiple of num_mel_bins={audio.num_mel_bins}"
        )
    frames = config.max_length_samples // config.hop_length + 1
    if frames > audio.spec_size * freq_ratio:
        raise ConfigError(
            f"audio.max_length_s={config.max_length_s}: {frames} mel frames exceed the encoder's spectrogram width "
            f"{audio.spec_size * freq_ratio} (spec_size * spec_size // num_mel_bins); shorten max_length_s or "
            "raise hop_length"
        )
    expected_hidden = audio.patch_embeds_hidden_size * 2 ** (len(audio.depths) - 1)
    if audio.hidden_size != expected_hidden:
        raise ConfigError(
            f"audio.audio_config.hidden_size={audio.hidden_size}: must be patch_embeds_hidden_size * "
            f"2**(len(depths)-1) = {expected_hidden}"
        )
    grid = audio.spec_size // (
        audio.patch_stride[0] if isinstance(audio.patch_stride, (list, tuple)) else audio.patch_stride
    )
    last = grid // 2 ** (len(audio.depths) - 1)
    if last < audio.window_size or last % audio.window_size:
        raise ConfigError(
            f"audio.audio_config: window_size={audio.window_size} must divide the last stage's {last}x{last} grid"
        )


def _random_init(audio: ClapAudioConfig, seed: int) -> ClapAudioModelWithProjection:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ClapAudioModelWithProjection(audio)


def _from_laion(config: AudioPluginConfig, audio: ClapAudioConfig) -> ClapAudioModelWithProjection:
    state = laion_to_hf_state_dict(load_laion_state_dict(config.encoder), config.encoder)
    model = _random_init(audio, config.seed)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"{config.encoder}: LAION-CLAP weights do not fit the inferred architecture "
            f"(missing {missing[:4]}, unexpected {unexpected[:4]}); set audio.audio_config to the checkpoint's "
            "architecture (e.g. spec_size)"
        )
    return model


def _from_transformers(config: AudioPluginConfig, audio: ClapAudioConfig) -> ClapAudioModelWithProjection:
    """Loads the audio tower of a transformers CLAP checkpoint (a full ``ClapModel`` folder works: its text tower
    is skipped quietly), refusing checkpoints that leave any audio weight uninitialised."""
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the text tower's weights are expected to be unused: no report for those
    try:
        model, info = ClapAudioModelWithProjection.from_pretrained(
            config.encoder, revision=config.revision, config=audio, output_loading_info=True
        )
    except OSError as exc:
        raise CheckpointError(
            f"audio.encoder={config.encoder!r}: cannot load CLAP weights ({str(exc).splitlines()[0]})"
        ) from None
    finally:
        hf_logging.set_verbosity(verbosity)
    bad = list(info.get("missing_keys", [])) + [str(k) for k in info.get("mismatched_keys", [])]
    if bad:
        raise CheckpointError(
            f"audio.encoder={config.encoder!r}: {len(bad)} audio weights are missing or mis-shaped in the "
            f"checkpoint (e.g. {bad[:3]}); expected a CLAP checkpoint with an audio tower"
        )
    return model


def build_audio_encoder(
    config: AudioPluginConfig, audio: ClapAudioConfig | None = None
) -> ClapAudioModelWithProjection:
    """The CLAP audio tower described by ``config``, in eval mode, frozen, in ``config.dtype``."""
    audio = audio or resolve_audio_config(config)
    check_geometry(config, audio)
    if config.backend == "laion_clap":
        model = _from_laion(config, audio)
    elif config.encoder:
        model = _from_transformers(config, audio)
    else:
        model = _random_init(audio, config.seed)
    model = model.to(getattr(torch, config.dtype)).eval()
    model.requires_grad_(False)
    return model
