"""Synthetic wrist IMU windows of four activities: standing still, walking, running and jumping.

Each window is ``[T, 6]`` float32 in the imu plugin's layout (accelerometer x, y, z in m/s², then gyroscope x, y,
z in rad/s) at a known sample rate. The activities differ the way real ones do: still is gravity plus sensor
noise; walking and running are periodic at their step rates (about 1.8 and 2.8 steps per second) with larger
impacts and swings when running; jumping alternates near free fall with hard landings about once a second. Step
rate, amplitudes, phase, the sensor's tilt and the noise are jittered per window.
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 50.0
DURATION_S = 2.0
GRAVITY = 9.81

# (step rate Hz, vertical accel amplitude, horizontal accel amplitude, gyro amplitude)
GAITS = {"walking": (1.8, 2.5, 1.5, 0.8), "running": (2.8, 8.0, 4.0, 2.5)}


def _tilt(rng: np.random.Generator, max_angle: float = 0.3) -> np.ndarray:
    """A random rotation matrix (small tilt of the sensor on the wrist)."""
    ax, ay, az = rng.uniform(-max_angle, max_angle, 3)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _gait(t: np.ndarray, activity: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    rate, vertical, horizontal, swing = GAITS[activity]
    f = rate * rng.uniform(0.9, 1.1)
    phase = rng.uniform(0, 2 * np.pi)
    step = 2 * np.pi * f * t + phase
    impact = np.maximum(np.sin(step), 0) ** 3  # sharp heel strikes
    accel = np.stack(
        [
            horizontal * rng.uniform(0.8, 1.2) * np.sin(step / 2),  # arm swing: half the step rate
            0.5 * horizontal * rng.uniform(0.8, 1.2) * np.sin(step + 1.0),
            vertical * rng.uniform(0.8, 1.2) * (impact - impact.mean()),
        ],
        axis=1,
    )
    gyro = swing * rng.uniform(0.8, 1.2) * np.stack([np.sin(step / 2), 0.4 * np.cos(step / 2), 0.2 * np.sin(step)], 1)
    return accel, gyro


def _jumps(t: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    f = rng.uniform(1.0, 1.4)
    cycle = (f * t + rng.uniform(0, 1)) % 1.0
    flight = cycle < 0.45  # airborne: the accelerometer reads (nearly) zero, cancelling gravity below
    landing = np.exp(-(((cycle - 0.5) / 0.04) ** 2)) * rng.uniform(18, 26)
    vertical = np.where(flight, -GRAVITY, landing)
    accel = np.stack([0.3 * rng.standard_normal(t.shape), 0.3 * rng.standard_normal(t.shape), vertical], axis=1)
    gyro = 0.3 * np.stack([np.sin(2 * np.pi * f * t), np.cos(2 * np.pi * f * t), np.zeros_like(t)], axis=1)
    return accel, gyro


def make_motion(truth: dict[str, str], seed: int, sample_rate: float = SAMPLE_RATE, duration: float = DURATION_S):
    """A ``[T, 6]`` float32 IMU window of ``truth["activity"]`` and its sample rate, reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(sample_rate * duration)) / sample_rate
    activity = truth["activity"]
    if activity == "still":
        accel, gyro = np.zeros((len(t), 3)), np.zeros((len(t), 3))
    elif activity in GAITS:
        accel, gyro = _gait(t, activity, rng)
    elif activity == "jumping":
        accel, gyro = _jumps(t, rng)
    else:
        raise ValueError(f"unknown activity {activity!r}; expected still, walking, running or jumping")
    accel = accel + np.array([0.0, 0.0, GRAVITY])
    rotation = _tilt(rng)
    accel = accel @ rotation.T + rng.normal(0, 0.05, accel.shape)
    gyro = gyro @ rotation.T + rng.normal(0, 0.02, gyro.shape)
    return np.concatenate([accel, gyro], axis=1).astype(np.float32), sample_rate
