"""IMU input schema: what ``imu=`` accepts, and its conversion to one validated ``[T, C]`` float32 array plus a rate.

Accepted raw inputs (channels are accelerometer x, y, z then gyroscope x, y, z, in that order):

* ``(array, sample_rate)``: a numpy array or torch tensor in ``[T, 6]`` layout (time first), rate in Hz;
* ``IMURecording(data, sample_rate, layout="TC" | "CT")``: the explicit form, for channel-first data;
* a ``.npy`` or ``.csv`` path (``str`` or ``pathlib.Path``) in ``[T, 6]`` layout, read with the config's
  ``default_sample_rate``; ``IMURecording.from_file(path, sample_rate=..., layout=...)`` gives the rate explicitly;
* a bare array or tensor in ``[T, 6]`` layout, also read with ``default_sample_rate``.

A CSV file holds one sample per row and one channel per column, comma-separated, with an optional header row.
Three-channel (accelerometer-only) input is accepted only when the config says ``missing_gyro="zeros"``.
Everything else raises ``anymal.errors.InputError`` naming the input and the expected layout.
"""

from __future__ import annotations

import math
import numbers
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from anymal.errors import InputError

LAYOUTS = ("TC", "CT")
EXPECTED_TC = "[T, 6] (time, accel xyz + gyro xyz)"
FILE_SUFFIXES = (".npy", ".csv")


@dataclass(frozen=True, eq=False)  # identity semantics: arrays have no single truth value
class IMURecording:
    """One IMU recording with its sample rate and layout.

    Attributes:
        data: numpy array or torch tensor, ``[T, C]`` when ``layout="TC"`` or ``[C, T]`` when ``layout="CT"``;
            C is 6 (accelerometer xyz, gyroscope xyz) or 3 (accelerometer only, see ``missing_gyro``).
        sample_rate: Samples per second (Hz).
        layout: ``"TC"`` (time first) or ``"CT"`` (channels first).
        source: Where the data came from (a file path), used in error messages.
    """

    data: Any
    sample_rate: float | None
    layout: str = "TC"
    source: str = "imu"

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise InputError(f"{self.source}: layout={self.layout!r}; expected 'TC' ([T, C]) or 'CT' ([C, T])")

    @classmethod
    def from_file(cls, path: str | os.PathLike, sample_rate: float | None = None, layout: str = "TC") -> IMURecording:
        """Reads a ``.npy`` or ``.csv`` file; ``sample_rate`` in Hz (files carry no rate of their own)."""
        return cls(read_imu_file(path), sample_rate, layout, source=str(path))

    def time_major(self) -> np.ndarray:
        """The data as a validated float32 ``[T, C]`` array (raises ``InputError`` on NaN/inf or a bad shape)."""
        array = _to_numpy(self.data, self.source)
        if array.ndim != 2:
            raise InputError(
                f"{self.source}: got an array of shape {list(array.shape)}; expected a 2-D array, "
                f"{EXPECTED_TC} with layout='TC' or [6, T] with layout='CT'"
            )
        if self.layout == "CT":
            array = array.T
        _check_channels(array, self.source, self.layout)
        if not np.isfinite(array).all():
            bad = int((~np.isfinite(array)).sum())
            raise InputError(f"{self.source}: contains {bad} NaN or infinite value(s); IMU samples must be finite")
        return np.ascontiguousarray(array, dtype=np.float32)

    def rate(self) -> float:
        """The validated sample rate in Hz."""
        return check_sample_rate(self.sample_rate, f"{self.source}.sample_rate")


def _scalar(value: Any) -> Any:
    """A 0-d tensor/array as a Python number (rates often come out of data loaders that way); else unchanged."""
    if isinstance(value, (torch.Tensor, np.ndarray)) and value.ndim == 0 and value.dtype != bool:
        return value.item()
    return value


def check_sample_rate(rate: Any, where: str) -> float:
    """A positive, finite sample rate as float, or ``InputError`` naming ``where``."""
    rate = _scalar(rate)
    if rate is None:
        raise InputError(
            f"{where}: missing sample rate; pass (array, sample_rate), IMURecording(data, sample_rate=...), "
            "IMURecording.from_file(path, sample_rate=...) or set default_sample_rate in the imu config"
        )
    if not _is_number(rate) or not math.isfinite(rate) or rate <= 0:
        raise InputError(f"{where}={rate!r}: expected a positive sample rate in Hz")
    return float(rate)


def _to_numpy(data: Any, where: str) -> np.ndarray:
    if isinstance(data, torch.Tensor):
        if data.is_complex() or data.dtype == torch.bool:
            raise InputError(f"{where}: tensor dtype {data.dtype} is not a real number type")
        return data.detach().to("cpu", torch.float32).numpy()
    if isinstance(data, np.ndarray):
        if data.dtype.kind not in "fiu":
            raise InputError(f"{where}: array dtype {data.dtype} is not a real number type")
        return data.astype(np.float32, copy=False)
    raise InputError(f"{where}: got {type(data).__name__}; expected a numpy array or torch tensor {EXPECTED_TC}")


def _check_channels(array: np.ndarray, where: str, layout: str) -> None:
    t, c = array.shape
    if c in (3, 6):
        return
    hint = ""
    if t in (3, 6) and layout == "TC":
        hint = " It looks channel-first: pass IMURecording(data, sample_rate, layout='CT') or transpose it."
    got = [t, c] if layout == "TC" else [c, t]
    expected = EXPECTED_TC if layout == "TC" else "[6, T] (accel xyz + gyro xyz, time)"
    raise InputError(
        f"{where}: got shape {got} with layout={layout!r}, i.e. {c} channels; expected {expected}, "
        f"or 3 accelerometer channels when missing_gyro='zeros'.{hint}"
    )


def read_imu_file(path: str | os.PathLike) -> np.ndarray:
    """Reads a ``.npy`` (no pickles) or ``.csv`` file into an array; ``InputError`` names the file on failure."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FILE_SUFFIXES:
        raise InputError(f"IMU file {path}: unsupported extension {path.suffix!r}; expected .npy or .csv")
    if not path.is_file():
        raise InputError(f"IMU file {path}: no such file")
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False)
        return _read_csv(path)
    except InputError:
        raise
    except (OSError, ValueError, EOFError) as exc:
        reader = "numpy.load" if suffix == ".npy" else "numpy.loadtxt (comma-separated)"
        raise InputError(f"IMU file {path}: cannot be read by {reader}: {exc}") from None


def _read_csv(path: Path) -> np.ndarray:
    with path.open("r", encoding="utf-8") as handle:
        first = handle.readline()
    fields = [field.strip() for field in first.split(",")]
    try:
        [float(field) for field in fields]
        skip = 0
    except ValueError:
        skip = 1  # a header row of channel names
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # numpy warns on an empty file; the size check below says it
        array = np.loadtxt(path, delimiter=",", skiprows=skip, dtype=np.float32, ndmin=2)
    if array.size == 0:
        raise InputError(f"IMU file {path}: no samples")
    return array


def as_recording(raw: Any, default_sample_rate: float | None) -> IMURecording:
    """Turns one raw ``imu=`` input into an ``IMURecording`` (see the module docstring for the accepted forms)."""
    if isinstance(raw, IMURecording):
        return raw
    if is_array_rate_pair(raw):
        return IMURecording(raw[0], raw[1], "TC", source="imu")
    if isinstance(raw, (str, os.PathLike)):
        return IMURecording.from_file(raw, default_sample_rate, "TC")
    if isinstance(raw, (np.ndarray, torch.Tensor)):
        return IMURecording(raw, default_sample_rate, "TC", source="imu")
    if isinstance(raw, (tuple, list)):
        raise InputError(
            f"imu: got a {type(raw).__name__} of {len(raw)} item(s); expected (array, sample_rate) with the array "
            f"in {EXPECTED_TC}"
        )
    raise InputError(
        f"imu: got {type(raw).__name__}; expected (array, sample_rate), IMURecording, a .npy/.csv path, "
        f"or an array {EXPECTED_TC}"
    )


def is_array_rate_pair(raw: Any) -> bool:
    """Whether ``raw`` is an ``(array, sample_rate)`` pair (one input, not a batch of two)."""
    return (
        isinstance(raw, (tuple, list))
        and len(raw) == 2
        and isinstance(raw[0], (np.ndarray, torch.Tensor))
        and (raw[1] is None or _is_number(_scalar(raw[1])))
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
