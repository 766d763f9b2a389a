"""The audio plugin's typed config: which CLAP audio tower to load, how clips become log-mels, and the projector."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from anymal.config import PluginConfig, check_choice
from anymal.errors import ConfigError

BACKENDS = ("hf", "laion_clap")
TRUNCATIONS = ("auto", "fusion", "rand_trunc")
PADDINGS = ("repeatpad", "repeat", "pad")
FEATURES = ("pooled", "sequence")
PROJECTORS = ("linear", "mlp")
DTYPES = ("float32", "bfloat16", "float16")


@dataclass
class AudioPluginConfig(PluginConfig):
    """Config of the ``audio`` plugin (CLAP audio encoder + linear projector).

    Attributes:
        encoder: what to load. ``backend="hf"``: a hub id or local folder of a transformers CLAP checkpoint
            (``laion/clap-htsat-unfused``, ``laion/larger_clap_general``, or a ``ClapAudioModelWithProjection``
            folder), or ``""`` to build a randomly initialised tower from ``audio_config`` (tests, benchmarks).
            ``backend="laion_clap"``: a path to an original LAION-CLAP ``.pt`` checkpoint (HTSAT audio branch).
        backend: ``"hf"`` or ``"laion_clap"`` (see ``encoder``).
        revision: hub revision for ``backend="hf"``.
        audio_config: ``ClapAudioConfig`` fields: the whole architecture when ``encoder=""``, overrides otherwise.
        seed: seed of the random initialisation when ``encoder=""`` (same seed, bit-identical weights).
        dtype: dtype the encoder is loaded in.
        sampling_rate: the encoder's sample rate; every input is resampled to it (48 kHz for LAION CLAP).
        max_length_s: clip length the encoder sees; longer clips are cropped or fused, shorter ones padded.
        hop_length, fft_window_size, frequency_min, frequency_max: log-mel front end (LAION's HTSAT values).
        truncation: long clips: ``"fusion"`` (3 crops + a global view, for fusion checkpoints), ``"rand_trunc"``
            (one crop), or ``"auto"`` (fusion exactly when the checkpoint was trained with fusion).
        padding: short clips: ``"repeatpad"`` (tile then zero-pad, CLAP's default), ``"repeat"`` or ``"pad"``.
        deterministic_crops: seed the crop positions of long clips from ``seed`` so the same clip always gives the
            same features; set ``False`` to draw fresh random crops (augmentation during training).
        features: what the projector sees: ``"pooled"``, CLAP's text-aligned projected embedding (L2-normalised),
            or ``"sequence"``, the encoder's last hidden states averaged over frequency (a time sequence).
        projector: ``"linear"`` (the paper's linear layer to ``num_tokens`` tokens) or ``"mlp"`` (two layers,
            the second shared across tokens, far fewer parameters at LLaMA sizes).
        projector_hidden_dim: hidden width of the ``"mlp"`` projector.
        array_sample_rate: the sample rate assumed for bare arrays/tensors; ``None`` refuses them.
        max_duration_s: longer inputs are refused (decoding hours of audio at 48 kHz takes gigabytes); ``None``
            disables the check.
    """

    plugin_type: str = "audio"
    num_tokens: int = 32
    encoder: str = "laion/clap-htsat-unfused"
    backend: str = "hf"
    revision: str | None = None
    audio_config: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    dtype: str = "float32"
    sampling_rate: int = 48000
    max_length_s: float = 10.0
    hop_length: int = 480
    fft_window_size: int = 1024
    frequency_min: float = 50.0
    frequency_max: float = 14000.0
    truncation: str = "auto"
    padding: str = "repeatpad"
    deterministic_crops: bool = True
    features: str = "pooled"
    projector: str = "mlp"
    projector_hidden_dim: int = 1024
    array_sample_rate: int | None = None
    max_duration_s: float | None = 600.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice(self.backend, BACKENDS, "audio.backend")
        check_choice(self.truncation, TRUNCATIONS, "audio.truncation")
        check_choice(self.padding, PADDINGS, "audio.padding")
        check_choice(self.features, FEATURES, "audio.features")
        check_choice(self.projector, PROJECTORS, "audio.projector")
        check_choice(self.dtype, DTYPES, "audio.dtype")
        if self.backend == "laion_clap" and not self.encoder:
            raise ConfigError("audio.encoder: backend='laion_clap' needs the path of a LAION-CLAP .pt checkpoint")
        for name in ("sampling_rate", "hop_length", "fft_window_size", "projector_hidden_dim"):
            if getattr(self, name) < 1:
                raise ConfigError(f"audio.{name}={getattr(self, name)}: expected a positive integer")
        if self.max_length_s <= 0:
            raise ConfigError(f"audio.max_length_s={self.max_length_s}: expected a positive duration in seconds")
        if not 0 <= self.frequency_min < self.frequency_max <= self.sampling_rate / 2:
            raise ConfigError(
                f"audio.frequency_min/max={self.frequency_min}/{self.frequency_max}: expected "
                f"0 <= min < max <= sampling_rate/2 = {self.sampling_rate / 2:g}"
            )
        if self.array_sample_rate is not None and self.array_sample_rate < 1:
            raise ConfigError(
                f"audio.array_sample_rate={self.array_sample_rate}: expected a positive rate in Hz or null"
            )
        if self.max_duration_s is not None and self.max_duration_s <= 0:
            raise ConfigError(f"audio.max_duration_s={self.max_duration_s}: expected a positive duration or null")

    @property
    def max_length_samples(self) -> int:
        """Clip length the encoder sees, in samples at ``sampling_rate``."""
        return round(self.max_length_s * self.sampling_rate)
