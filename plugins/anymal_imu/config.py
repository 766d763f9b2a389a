"""The IMU plugin's config: encoder architecture, preprocessing (rate, window, normalisation) and projector shape.

One dataclass holds all three because they must agree: an encoder checkpoint is only valid for the sample rate,
window length and normalisation it was pretrained with, and the checkpoint loader compares those fields (see
``anymal_imu.checkpoint``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from anymal.config import PluginConfig, check_choice
from anymal.errors import ConfigError

ENCODER_TYPES = ("conv_gru", "conv_attention", "patch_transformer")
NORMALIZATIONS = ("zscore", "fixed", "none")
MISSING_GYRO_POLICIES = ("error", "zeros")
PROJECTOR_INPUTS = ("pooled", "sequence")
NUM_CHANNELS = 6  # accelerometer xyz then gyroscope xyz

# Fields that define the encoder's weights and the signal it expects; a checkpoint records them.
ARCH_FIELDS = (
    "encoder_type",
    "width",
    "embed_dim",
    "conv_layers",
    "kernel_size",
    "rnn_layers",
    "heads",
    "transformer_layers",
    "patch_size",
)
SIGNAL_FIELDS = ("sample_rate", "window_samples", "normalization", "channel_mean", "channel_std", "min_std")


def _positive(value: float, name: str) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ConfigError(f"{name}={value!r}: expected a positive number")


@dataclass
class IMUPluginConfig(PluginConfig):
    """Config of the ``imu`` plugin.

    Attributes:
        encoder_type: ``conv_gru`` (1-D conv stack + GRU, the IMU2CLIP-style default), ``conv_attention``
            (conv stack + learned-query attention pooling) or ``patch_transformer`` (time patches + transformer).
        sample_rate: Rate in Hz the encoder works at; every input is resampled to it.
        window_samples: Window length in samples at ``sample_rate``; inputs are centre-cropped or padded to it.
        width: Channel width of the conv stack / transformer.
        embed_dim: Size of the pooled, text-aligned embedding (768 matches CLIP ViT-L-14's text tower).
        conv_layers: Conv blocks (each halves the time axis) for the conv encoders.
        kernel_size: Conv kernel size (odd).
        rnn_layers: GRU layers of ``conv_gru``.
        heads: Attention heads of ``conv_attention`` pooling and of ``patch_transformer``.
        transformer_layers: Transformer blocks of ``patch_transformer``.
        patch_size: Samples per patch of ``patch_transformer``; must divide ``window_samples``.
        checkpoint: Local ``.safetensors`` file with pretrained encoder weights (from the ``imu_text_contrastive``
            pretraining task); ``None`` gives a deterministic random init from ``seed`` (tests, pretraining start).
        seed: Seed of the random init.
        default_sample_rate: Rate assumed for inputs that carry none (file paths, bare arrays); ``None`` makes such
            inputs an error.
        normalization: ``zscore`` (per window, per channel, std floored at ``min_std``), ``fixed`` (subtract
            ``channel_mean``, divide by ``channel_std``: dataset statistics) or ``none``.
        channel_mean: Six per-channel means for ``fixed``.
        channel_std: Six per-channel standard deviations for ``fixed``.
        min_std: Floor of the per-window std in ``zscore``, in input units, so that a still sensor is not
            amplified into noise.
        missing_gyro: What to do with 3-channel (accelerometer-only) input: ``error`` or ``zeros`` (gyroscope
            channels set to zero after normalisation).
        min_coverage: Shortest accepted input as a fraction of the window duration; shorter input is an error,
            longer-or-equal but short of the window is zero-padded.
        projector_input: ``pooled`` (the text-aligned embedding expanded into ``num_tokens``) or ``sequence``
            (the encoder's sequence features pooled to ``num_tokens``).
        projector_rank: Inner width of the projector (``pooled``: per-token; ``sequence``: per-position).
    """

    plugin_type: str = "imu"
    num_tokens: int = 32
    encoder_type: str = "conv_gru"
    sample_rate: float = 200.0
    window_samples: int = 1000
    width: int = 256
    embed_dim: int = 768
    conv_layers: int = 4
    kernel_size: int = 5
    rnn_layers: int = 2
    heads: int = 4
    transformer_layers: int = 4
    patch_size: int = 20
    checkpoint: str | None = None
    seed: int = 0
    default_sample_rate: float | None = None
    normalization: str = "zscore"
    channel_mean: list[float] | None = None
    channel_std: list[float] | None = None
    min_std: float = 1e-2
    missing_gyro: str = "error"
    min_coverage: float = 0.5
    projector_input: str = "pooled"
    projector_rank: int = 256

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice(self.encoder_type, ENCODER_TYPES, "encoder_type")
        check_choice(self.normalization, NORMALIZATIONS, "normalization")
        check_choice(self.missing_gyro, MISSING_GYRO_POLICIES, "missing_gyro")
        check_choice(self.projector_input, PROJECTOR_INPUTS, "projector_input")
        _positive(self.sample_rate, "sample_rate")
        _positive(self.min_std, "min_std")
        if self.default_sample_rate is not None:
            _positive(self.default_sample_rate, "default_sample_rate")
        for name in ("window_samples", "width", "embed_dim", "conv_layers", "kernel_size", "rnn_layers", "heads"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)}: expected a positive integer")
        for name in ("transformer_layers", "patch_size", "projector_rank"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)}: expected a positive integer")
        if self.kernel_size % 2 == 0:
            raise ConfigError(f"kernel_size={self.kernel_size}: expected an odd number (keeps the time axis aligned)")
        if self.width % self.heads:
            raise ConfigError(f"width={self.width} is not divisible by heads={self.heads}")
        if self.encoder_type == "patch_transformer" and self.window_samples % self.patch_size:
            raise ConfigError(
                f"patch_size={self.patch_size} must divide window_samples={self.window_samples} for patch_transformer"
            )
        if self.encoder_type != "patch_transformer" and self.window_samples < 2**self.conv_layers:
            raise ConfigError(
                f"window_samples={self.window_samples} is shorter than the conv stack's downsampling "
                f"(2**conv_layers={2**self.conv_layers})"
            )
        if not 0 < self.min_coverage <= 1:
            raise ConfigError(f"min_coverage={self.min_coverage}: expected a fraction in (0, 1]")
        if self.normalization == "fixed":
            for name in ("channel_mean", "channel_std"):
                values = getattr(self, name)
                if values is None or len(values) != NUM_CHANNELS:
                    raise ConfigError(
                        f"{name}={values!r}: normalization='fixed' needs {NUM_CHANNELS} values "
                        "(accel x, y, z, gyro x, y, z)"
                    )
            if any(not (math.isfinite(s) and s > 0) for s in self.channel_std):
                raise ConfigError(f"channel_std={self.channel_std!r}: expected positive values")

    @property
    def window_seconds(self) -> float:
        """Duration of one encoder window in seconds."""
        return self.window_samples / self.sample_rate

    def arch_dict(self) -> dict:
        """The fields an encoder checkpoint must match (architecture and expected signal)."""
        return {name: getattr(self, name) for name in ARCH_FIELDS + SIGNAL_FIELDS}
