"""Synthetic sounds with a known pitch (low/medium/high), rhythm (steady/pulsing) and timbre (whistle/buzz)."""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16000
DURATION_S = 0.5
PITCH_HZ = {"low": 220.0, "medium": 440.0, "high": 880.0}
PULSE_HZ = 6.0  # on/off rate of a pulsing sound


def make_sound(truth: dict[str, str], seed: int, sample_rate: int = SAMPLE_RATE, duration: float = DURATION_S):
    """A mono float32 waveform of ``truth`` (``pitch``, ``rhythm``, ``timbre``) and its sample rate.

    A whistle is a sine; a buzz is a band-limited square wave (odd harmonics, amplitude 1/k). Pitch, pulse rate,
    phase, loudness and background noise are jittered per item.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(int(sample_rate * duration)) / sample_rate
    f0 = PITCH_HZ[truth["pitch"]] * rng.uniform(0.95, 1.05)
    phase = rng.uniform(0, 2 * np.pi)
    if truth["timbre"] == "whistle":
        wave = np.sin(2 * np.pi * f0 * t + phase)
    elif truth["timbre"] == "buzz":
        harmonics = [k for k in range(1, 40, 2) if k * f0 < sample_rate / 2]
        wave = sum(np.sin(k * (2 * np.pi * f0 * t + phase)) / k for k in harmonics) * (4 / np.pi) * 0.6
    else:
        raise ValueError(f"unknown timbre {truth['timbre']!r}; expected whistle or buzz")
    if truth["rhythm"] == "pulsing":
        rate = PULSE_HZ * rng.uniform(0.9, 1.1)
        gate = np.sin(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi)) > 0
        envelope = np.convolve(gate.astype(float), np.ones(80) / 80, mode="same")  # 5 ms ramps, no clicks
        wave = wave * envelope
    elif truth["rhythm"] != "steady":
        raise ValueError(f"unknown rhythm {truth['rhythm']!r}; expected steady or pulsing")
    wave = wave * rng.uniform(0.3, 0.8) + rng.normal(0, 0.005, t.shape)
    return np.clip(wave, -1, 1).astype(np.float32), sample_rate
