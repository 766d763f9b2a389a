"""The ``audio`` modality plugin: any audio clip -> CLAP (frozen) -> linear projector -> LLM input embeddings."""

from __future__ import annotations

import functools
import io
import json
from typing import Any

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F
from torch import nn
from transformers import ClapAudioConfig

from anymal.plugin import ModalityPlugin
from anymal_audio.config import AudioPluginConfig
from anymal_audio.encoder import build_audio_encoder, resolve_audio_config, resolve_truncation
from anymal_audio.features import ClapFrontEnd
from anymal_audio.io import load_audio
from anymal_audio.projector import PooledProjector, SequenceProjector
from anymal_audio.resample import prepare_waveform

EXAMPLE_FILES = ("audio/esc50_1-100032-A-0.wav", "audio/jfk.flac")  # in the shared assets folder

# A CLAP audio tower small enough for CPU tests: HTSAT with two Swin stages on a 128x128 spectrogram image
# (32 mel bins x 4 time chunks), a 16-d patch embedding and a 32-d projection; ~17k parameters.
TINY_AUDIO_CONFIG: dict[str, Any] = {
    "num_mel_bins": 32,
    "spec_size": 128,
    "patch_embeds_hidden_size": 16,
    "depths": [1, 1],
    "num_attention_heads": [2, 4],
    "window_size": 8,
    "hidden_size": 32,
    "projection_dim": 32,
    "mlp_ratio": 2.0,
    "num_classes": 8,
    "num_hidden_layers": 2,
}


def _is_array(value: Any) -> bool:
    return isinstance(value, (np.ndarray, torch.Tensor)) and value.ndim >= 1


def _is_scalar(value: Any) -> bool:
    """A sample rate, or what was meant as one: a number, a 0-d array, or a numeric string such as ``"16000"``
    (refused by ``load_audio`` with a message naming it, instead of being read as a second clip's path)."""
    if isinstance(value, (np.ndarray, torch.Tensor)):
        return value.ndim == 0
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return False
        return True
    return isinstance(value, (int, float, np.generic)) and not isinstance(value, bool)


class AudioPlugin(ModalityPlugin):
    """Audio clips through a frozen LAION CLAP audio encoder and a trainable linear projector (AnyMAL's recipe).

    Inputs: a file path (wav/flac/ogg via soundfile; mp3/aac/m4a and video containers via PyAV), encoded bytes,
    an ``(array, sample_rate)`` pair, or a ``datasets`` Audio mapping. Clips are down-mixed to mono, resampled
    to the encoder's rate with soxr, and turned into CLAP log-mels by ``ClapFeatureExtractor``.
    """

    name = "audio"
    config_class = AudioPluginConfig
    noun = "audio clip"
    config: AudioPluginConfig

    # --- resolved settings -------------------------------------------------------------------------------------
    @functools.cached_property
    def audio_config(self) -> ClapAudioConfig:
        """The encoder architecture (read from the checkpoint's config, not its weights)."""
        return resolve_audio_config(self.config)

    @functools.cached_property
    def front_end(self) -> ClapFrontEnd:
        cfg = self.config
        return ClapFrontEnd(
            num_mel_bins=self.audio_config.num_mel_bins,
            sampling_rate=cfg.sampling_rate,
            max_length=cfg.max_length_samples,
            truncation=resolve_truncation(cfg, self.audio_config),
            padding=cfg.padding,
            seed=cfg.seed if cfg.deterministic_crops else None,
            hop_length=cfg.hop_length,
            fft_window_size=cfg.fft_window_size,
            frequency_min=cfg.frequency_min,
            frequency_max=cfg.frequency_max,
        )

    @property
    def feature_dim(self) -> int:
        """Width of what ``encode`` returns: the projection dim (pooled) or the encoder width (sequence)."""
        audio = self.audio_config
        return audio.projection_dim if self.config.features == "pooled" else audio.hidden_size

    # --- encoder -------------------------------------------------------------------------------------------------
    def build_encoder(self) -> nn.Module:
        return build_audio_encoder(self.config, self.audio_config)

    def encoder_key(self) -> str | None:
        cfg = self.config
        key = {
            "backend": cfg.backend,
            "encoder": cfg.encoder,
            "revision": cfg.revision,
            "audio_config": cfg.audio_config,
            "dtype": cfg.dtype,
            "seed": None if cfg.encoder else cfg.seed,
        }
        return "clap-audio:" + json.dumps(key, sort_keys=True, default=str)

    def encode(self, encoder: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Pooled: L2-normalised CLAP embeddings ``[n, projection_dim]``; sequence: ``[n, frames, hidden_size]``."""
        out = encoder(input_features=batch["input_features"], is_longer=batch["is_longer"])
        if self.config.features == "pooled":
            return F.normalize(out.audio_embeds, dim=-1)
        # last_hidden_state is [n, hidden, freq, time]: average the frequency rows into one time sequence
        return out.last_hidden_state.mean(dim=2).transpose(1, 2)

    # --- projector -----------------------------------------------------------------------------------------------
    def build_projector(self, llm_dim: int) -> nn.Module:
        cfg = self.config
        hidden = cfg.projector_hidden_dim if cfg.projector == "mlp" else None
        cls = PooledProjector if cfg.features == "pooled" else SequenceProjector
        return cls(self.feature_dim, llm_dim, cfg.num_tokens, hidden)

    def project(self, projector: nn.Module, features: torch.Tensor) -> torch.Tensor:
        """Projects encoder features, first cast to the projector's dtype (a bf16 encoder may feed an fp32 one)."""
        weight = next(projector.parameters())
        return projector(features.to(dtype=weight.dtype))

    # --- data ----------------------------------------------------------------------------------------------------
    def reseed(self, seed: int) -> None:
        """With ``deterministic_crops=False`` (random crops as augmentation), draws the next crops from ``seed``, so
        training's crops are a function of run seed, epoch and item; fixed crops stay fixed."""
        if not self.config.deterministic_crops:
            self.front_end.seed = seed

    def preprocess(self, raw: Any) -> dict[str, torch.Tensor]:
        """``input_features`` ``[views, frames, mel_bins]`` and ``is_longer`` ``[1]`` for one clip."""
        wave = load_audio(raw, default_sample_rate=self.config.array_sample_rate)
        signal = prepare_waveform(wave, self.config.sampling_rate, self.config.max_duration_s)
        return self.front_end(signal)

    def is_single_input(self, raw: Any) -> bool:
        """One clip, including an ``(array, sample_rate)`` pair; a list or tuple of clips is a batch."""
        if isinstance(raw, (list, tuple)):
            return len(raw) == 2 and _is_array(raw[0]) and _is_scalar(raw[1])
        return True

    # --- testing -------------------------------------------------------------------------------------------------
    @classmethod
    def tiny_config(cls) -> AudioPluginConfig:
        """A random-init tiny HTSAT tower (no download) on 5 s clips; 4 LLM tokens through the 2-layer projector."""
        return AudioPluginConfig(
            encoder="",
            audio_config=dict(TINY_AUDIO_CONFIG),
            num_tokens=4,
            max_length_s=5.0,
            projector_hidden_dim=16,
            seed=0,
        )

    def example_inputs(self) -> list[Any]:
        """Two real clips from the shared assets (a dog bark, JFK's speech) or, without them, two synthetic tones."""
        from anymal.testing import asset  # the shared assets folder ($ANYMAL_ASSETS)

        files = [asset(name) for name in EXAMPLE_FILES]
        if all(path.is_file() for path in files):
            return [str(path) for path in files]
        t = np.arange(44100 * 2) / 44100
        tone = (0.5 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
        t16 = np.arange(16000 * 3) / 16000
        chirp = np.stack([np.sin(2 * np.pi * (200 + 600 * t16) * t16), 0.3 * np.sin(2 * np.pi * 1000 * t16)], axis=1)
        return [(tone, 44100), (chirp.astype(np.float32), 16000)]

    def bad_inputs(self) -> list[Any]:
        """Representative bad inputs: wrong type, missing file, unknown/corrupt/truncated bytes, empty, NaN, no rate."""
        buffer = io.BytesIO()
        sf.write(buffer, np.zeros(8000, dtype=np.float32), 16000, format="WAV", subtype="PCM_16")
        truncated_wav = buffer.getvalue()[:4000]
        corrupt_wav = b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x01" * 40
        bad: list[Any] = [
            object(),
            "/nonexistent/anymal-missing-clip.wav",
            b"plain text, not an encoded audio file",
            corrupt_wav,
            truncated_wav,
            (np.zeros(0, dtype=np.float32), 16000),
            (np.array([0.0, np.nan, 0.1], dtype=np.float32), 16000),
            (np.array([0.0, np.inf], dtype=np.float32), 16000),
            (np.zeros(1600, dtype=np.float32), 0),
            {"array": np.zeros(1600, dtype=np.float32)},
        ]
        if self.config.array_sample_rate is None:
            bad.append(np.zeros(1600, dtype=np.float32))
        return bad
