"""Signal preprocessing: resample to the encoder's rate, normalise per channel, centre-crop or pad to one window.

Order matters and is fixed: resampling first (soxr, a band-limited resampler, so downsampling does not alias);
then the window is cut (centre crop of longer input); then per-channel normalisation on the real samples of that
window; then symmetric zero padding of shorter input (zero is the channel mean after ``zscore``/``fixed``
normalisation, so padding adds no offset). Centre cropping keeps inference deterministic; pretraining uses the same
function, so the encoder sees at training time exactly what it will see in use.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import soxr
import torch

from anymal.errors import InputError
from anymal_imu.config import NUM_CHANNELS, IMUPluginConfig
from anymal_imu.recording import check_sample_rate


def resample(signal: np.ndarray, in_rate: float, out_rate: float) -> np.ndarray:
    """Resamples ``[T, C]`` float32 from ``in_rate`` to ``out_rate`` Hz with soxr (high quality, delay-compensated).

    Args:
        signal: ``[T, C]`` samples.
        in_rate: Rate of ``signal`` in Hz.
        out_rate: Wanted rate in Hz.

    Returns:
        ``[round(T * out_rate / in_rate), C]`` float32 samples.
    """
    if in_rate == out_rate or signal.shape[0] == 0:
        return signal
    out = soxr.resample(np.ascontiguousarray(signal, dtype=np.float32), in_rate, out_rate, quality="HQ")
    return np.ascontiguousarray(out, dtype=np.float32)


def resample_centre(signal: np.ndarray, in_rate: float, out_rate: float, length: int) -> np.ndarray:
    """``centre_crop(resample(signal, in_rate, out_rate), length)``, resampling only the centre of long input.

    An hour-long recording is not resampled in full for one window: the cut is widened by a margin for the
    resampling filter and aligned to a sample both rates share, so the result matches resampling everything.
    """
    total = round(signal.shape[0] * out_rate / in_rate)  # soxr's output length
    if in_rate == out_rate or total <= length:
        return centre_crop(resample(signal, in_rate, out_rate), length)
    start = (total - length) // 2  # first output sample of the window
    ratio = in_rate / out_rate  # input samples per output sample
    period = max(1, Fraction(ratio).limit_denominator(10_000).numerator)  # input samples spanning whole outputs
    margin = max(128, math.ceil(128 * ratio), math.ceil(length * ratio) // 4)  # covers soxr HQ filter tails
    first = math.floor((start * ratio - margin) / period) * period
    last = math.ceil((start + length) * ratio + margin)
    if first <= 0 or last >= signal.shape[0]:
        return centre_crop(resample(signal, in_rate, out_rate), length)
    part = resample(signal[first:last], in_rate, out_rate)
    offset = start - round(first / ratio)
    return part[offset : offset + length]


def centre_crop(signal: np.ndarray, length: int) -> np.ndarray:
    """The central ``length`` samples of ``[T, C]`` (unchanged when ``T <= length``)."""
    extra = signal.shape[0] - length
    if extra <= 0:
        return signal
    start = extra // 2
    return signal[start : start + length]


def pad_to(signal: np.ndarray, length: int) -> np.ndarray:
    """Zero-pads ``[T, C]`` symmetrically (extra sample at the end) to ``length`` samples."""
    missing = length - signal.shape[0]
    if missing <= 0:
        return signal
    before = missing // 2
    return np.pad(signal, ((before, missing - before), (0, 0)))


def normalize(signal: np.ndarray, config: IMUPluginConfig) -> np.ndarray:
    """Per-channel normalisation of ``[T, C]`` as the config says (``zscore``, ``fixed`` or ``none``)."""
    if config.normalization == "zscore":
        mean = signal.mean(axis=0, keepdims=True)
        std = np.maximum(signal.std(axis=0, keepdims=True), config.min_std)
        return (signal - mean) / std
    if config.normalization == "fixed":
        channels = signal.shape[1]
        mean = np.asarray(config.channel_mean, dtype=np.float32)[:channels]
        std = np.asarray(config.channel_std, dtype=np.float32)[:channels]
        return (signal - mean) / std
    return signal


def preprocess_signal(signal: np.ndarray, rate: float, config: IMUPluginConfig, where: str = "imu") -> torch.Tensor:
    """One validated ``[T, C]`` recording at ``rate`` Hz to the encoder's ``[6, window_samples]`` float32 input.

    Raises:
        InputError: the rate is not a finite number within ``MIN_SAMPLE_RATE..MAX_SAMPLE_RATE``; the recording has
            non-finite samples, is shorter than ``min_coverage`` of a window (or resamples to no samples), or has
            3 channels while ``missing_gyro='error'``; its values are too large to normalise in float32.
    """
    rate = check_sample_rate(rate, f"{where}.sample_rate", signal.shape[0])
    channels = signal.shape[1]
    if channels != NUM_CHANNELS and config.missing_gyro != "zeros":
        raise InputError(
            f"{where}: got {channels} channels (accelerometer only?); expected 6 (accel xyz + gyro xyz). "
            "Set missing_gyro='zeros' in the imu config to accept accelerometer-only input."
        )
    duration = signal.shape[0] / rate
    needed = config.min_coverage * config.window_seconds
    if duration < needed:
        raise InputError(
            f"{where}: too short: {signal.shape[0]} samples at {rate:g} Hz = {duration:.3g} s; expected at least "
            f"{needed:.3g} s ({config.min_coverage:g} of the encoder's {config.window_seconds:.3g} s window)"
        )
    if round(signal.shape[0] * config.sample_rate / rate) < 1:
        raise InputError(
            f"{where}: {signal.shape[0]} samples at {rate:g} Hz = {duration:.3g} s resample to no samples at the "
            f"encoder's {config.sample_rate:g} Hz; expected at least {1 / config.sample_rate:.3g} s"
        )
    finite = np.isfinite(signal)
    if not finite.all():
        raise InputError(
            f"{where}: contains {int(finite.size - finite.sum())} NaN or infinite value(s); IMU samples must be finite"
        )
    signal = resample_centre(signal, rate, config.sample_rate, config.window_samples)
    signal = normalize(signal.astype(np.float64), config)
    signal = pad_to(signal, config.window_samples)
    if not np.isfinite(signal).all() or np.abs(signal).max() > np.finfo(np.float32).max:
        raise InputError(
            f"{where}: values up to {float(np.abs(signal[np.isfinite(signal)]).max(initial=0)):.3g} overflow when "
            f"resampled and normalised ({config.normalization}) in float32; expected sensor readings in physical "
            "units (m/s^2, rad/s)"
        )
    if channels != NUM_CHANNELS:
        signal = np.concatenate([signal, np.zeros((signal.shape[0], NUM_CHANNELS - channels), np.float32)], axis=1)
    return torch.from_numpy(np.ascontiguousarray(signal.T, dtype=np.float32))
