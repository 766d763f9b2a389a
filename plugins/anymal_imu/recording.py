"""IMU input schema: what ``imu=`` accepts, and its conversion to one validated ``[T, C]`` float32 array plus a rate.

Accepted raw inputs (channels are accelerometer x, y, z then gyroscope x, y, z, in that order):

* ``(array, sample_rate)``: a numpy array or torch tensor in ``[T, 6]`` layout (time first), rate in Hz;
* ``IMURecording(data, sample_rate, layout="TC" | "CT")``: the explicit form, for channel-first data;
* a ``.npy`` or ``.csv`` path (``str`` or ``pathlib.Path``) in ``[T, 6]`` layout, read with the config's
  ``default_sample_rate``; ``IMURecording.from_file(path, sample_rate=..., layout=...)`` gives the rate explicitly;
* a bare array or tensor in ``[T, 6]`` layout, also read with ``default_sample_rate``.

A CSV file holds one sample per row and one channel per column, comma-separated, with an optional header row.
Three-channel (accelerometer-only) input is accepted only when the config says ``missing_gyro="zeros"``.
Sample rates are numbers (int, float, or a 0-d array/tensor) from ``MIN_SAMPLE_RATE`` (1 Hz) to
``MAX_SAMPLE_RATE`` (100 kHz); a rate given as a string (``(array, "50")``) is one input with a bad rate, not a
batch of two. Samples must be finite. Everything else raises ``anymal.errors.InputError`` naming the input, the
clip length and the expected layout or range.
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
# Accepted sample rates in Hz. IMUs log at ~10 Hz (activity trackers) to a few kHz (vibration sensors); rates
# outside these bounds are unit mistakes (kHz for Hz, a period for a rate) and would resample to nonsense.
MIN_SAMPLE_RATE = 1.0
MAX_SAMPLE_RATE = 100_000.0


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
        return check_sample_rate(self.sample_rate, f"{self.source}.sample_rate", self.num_samples())

    def num_samples(self) -> int | None:
        """T, the clip length in samples, when the data is a 2-D array (for messages); else ``None``."""
        shape = getattr(self.data, "shape", None)
        if shape is None or len(shape) != 2:
            return None
        return int(shape[0] if self.layout == "TC" else shape[1])


def _scalar(value: Any) -> Any:
    """A 0-d tensor/array as a Python number (rates often come out of data loaders that way); else unchanged."""
    if isinstance(value, (torch.Tensor, np.ndarray)) and value.ndim == 0 and value.dtype != bool:
        return value.item()
    return value


def check_sample_rate(rate: Any, where: str, num_samples: int | None = None) -> float:
    """A sample rate in ``[MIN_SAMPLE_RATE, MAX_SAMPLE_RATE]`` Hz as float, or ``InputError`` naming ``where``.

    ``num_samples`` (the clip length) goes into the message when known.
    """
    rate = _scalar(rate)
    clip = f" (clip of {num_samples} samples)" if num_samples is not None else ""
    expected = f"a positive, finite sample rate in Hz, from {MIN_SAMPLE_RATE:g} to {MAX_SAMPLE_RATE:g}"
    if rate is None:
        raise InputError(
            f"{where}: missing sample rate{clip}; pass (array, sample_rate), IMURecording(data, sample_rate=...), "
            "IMURecording.from_file(path, sample_rate=...) or set default_sample_rate in the imu config"
        )
    if isinstance(rate, (str, bytes)):
        raise InputError(f"{where}={rate!r}{clip}: a string is not a sample rate; expected {expected}, as a number")
    if not _is_number(rate) or not math.isfinite(rate) or rate <= 0:
        raise InputError(
            f"{where}={rate!r}{clip}: expected a positive sample rate in Hz, finite, from "
            f"{MIN_SAMPLE_RATE:g} to {MAX_SAMPLE_RATE:g}"
        )
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise InputError(f"{where}={rate!r}{clip}: outside the accepted range; expected {expected}")
    return float(rate)


def _to_numpy(data: Any, where: str) -> np.ndarray:
    if isinstance(data, torch.Tensor):
        if data.is_complex() or data.dtype == torch.bool:
            raise InputError(f"{where}: tensor dtype {data.dtype} is not a real number type")
        data = data.detach().cpu()
        data = data.numpy() if data.dtype == torch.float64 else data.to(torch.float32).numpy()
    if isinstance(data, np.ndarray):
        if data.dtype.kind not in "fiu":
            raise InputError(f"{where}: array dtype {data.dtype} is not a real number type")
        if data.dtype.kind == "f" and data.dtype.itemsize > 4 and data.size:
            finite = np.abs(data[np.isfinite(data)])
            if finite.size and finite.max() > np.finfo(np.float32).max:
                raise InputError(
                    f"{where}: array of shape {list(data.shape)} dtype {data.dtype} holds values up to "
                    f"{float(finite.max()):.3g}, beyond float32's range; expected sensor readings in physical units"
                )
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
    """Whether ``raw`` is an ``(array, sample_rate)`` pair (one input, not a batch of two).

    The second item counts as a rate (to be validated) unless it is itself an input: an array with at least one
    dimension, a recording, a nested list, or a path to a ``.npy``/``.csv`` file. So ``(array, "50")`` or
    ``(array, True)`` is one input with a bad rate rather than two inputs.
    """
    if not (isinstance(raw, (tuple, list)) and len(raw) == 2 and isinstance(raw[0], (np.ndarray, torch.Tensor))):
        return False
    second = raw[1]
    if isinstance(second, (np.ndarray, torch.Tensor)):
        return second.ndim == 0
    if isinstance(second, (str, os.PathLike)):
        return isinstance(second, str) and not second.lower().endswith(FILE_SUFFIXES)
    return not isinstance(second, (IMURecording, tuple, list, dict))


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
