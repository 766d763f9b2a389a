"""From a decoded ``Waveform`` to the mono, finite, encoder-rate signal CLAP's front end expects.

Down-mixing averages the channels (what librosa's ``mono=True`` does, which LAION used to prepare CLAP's training
data); resampling uses soxr, a maintained high-quality resampler, so that no torchaudio is needed.
"""

from __future__ import annotations

import numpy as np
import soxr

from anymal.errors import InputError
from anymal_audio.io import Waveform

RESAMPLE_QUALITY = "HQ"  # soxr's default high-quality preset: flat to ~0.91 Nyquist, ~120 dB stop-band rejection


def check_waveform(wave: Waveform, max_duration_s: float | None = None) -> None:
    """Refuses empty clips, NaN/inf samples and (optionally) clips longer than ``max_duration_s`` seconds."""
    if wave.samples.shape[0] == 0 or wave.samples.shape[1] == 0:
        raise InputError(
            f"{wave.source}: contains no audio samples (shape {wave.samples.shape}); expected a non-empty clip"
        )
    finite = np.isfinite(wave.samples)
    if not finite.all():
        bad = int(finite.size - finite.sum())
        raise InputError(f"{wave.source}: {bad} sample(s) are NaN or inf; expected finite audio samples")
    if max_duration_s is not None and wave.duration_s > max_duration_s:
        raise InputError(
            f"{wave.source}: {wave.duration_s:.1f} s long, more than max_duration_s={max_duration_s:g}; "
            "cut the clip or raise max_duration_s in the audio plugin config"
        )


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Averages ``[frames, channels]`` to a 1-D float32 signal."""
    if samples.ndim == 1:
        return samples.astype(np.float32, copy=False)
    if samples.shape[1] == 1:
        return np.ascontiguousarray(samples[:, 0], dtype=np.float32)
    return samples.mean(axis=1, dtype=np.float64).astype(np.float32)


def resample(signal: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Band-limited resampling of a 1-D signal with soxr (identity when the rates are equal)."""
    if from_rate == to_rate:
        return signal
    return soxr.resample(signal, from_rate, to_rate, quality=RESAMPLE_QUALITY).astype(np.float32, copy=False)


def prepare_waveform(wave: Waveform, target_rate: int, max_duration_s: float | None = None) -> np.ndarray:
    """The checked, mono, ``target_rate`` Hz float32 signal of ``wave``."""
    check_waveform(wave, max_duration_s)
    signal = resample(to_mono(wave.samples), wave.sample_rate, target_rate)
    if signal.shape[0] == 0:
        raise InputError(
            f"{wave.source}: {wave.samples.shape[0]} sample(s) at {wave.sample_rate} Hz = {wave.duration_s:.3g} s "
            f"resample to no samples at the encoder's {target_rate} Hz; expected a clip of at least "
            f"{1 / target_rate:.3g} s"
        )
    return signal
