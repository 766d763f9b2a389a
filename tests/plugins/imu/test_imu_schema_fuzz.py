"""Property-based fuzzing of the IMU input schema (``anymal_imu.recording``) with hypothesis.

Whatever array, rate and form a user passes (``(array, rate)`` pairs and lists, ``IMURecording`` in either layout,
``.npy``/``.csv`` paths, bare arrays, ``IMURecording.from_file``), ``IMUPlugin.preprocess`` either returns a finite
float32 ``[6, window_samples]`` tensor or raises ``InputError``; any other exception is a bug.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from anymal.errors import InputError
from anymal_imu import IMUPlugin
from anymal_imu.recording import IMURecording

FUZZ = settings(
    max_examples=150,
    deadline=None,
    database=None,  # nothing written into the checkout
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

DTYPES = st.sampled_from(
    [
        np.float16,
        np.float32,
        np.float64,
        np.int8,
        np.int16,
        np.int32,
        np.int64,
        np.uint8,
        np.uint16,
        np.bool_,
        np.complex64,
    ]
)


def _plugin(normalization: str, missing_gyro: str, default_rate: float | None) -> IMUPlugin:
    config = IMUPlugin.tiny_config()
    config.normalization = normalization
    config.missing_gyro = missing_gyro
    config.default_sample_rate = default_rate
    return IMUPlugin(config)


PLUGINS = {
    (norm, gyro, rate): _plugin(norm, gyro, rate)
    for norm in ("zscore", "none")
    for gyro in ("error", "zeros")
    for rate in (None, 20.0)
}
plugins = st.sampled_from(sorted(PLUGINS, key=str)).map(PLUGINS.__getitem__)


@st.composite
def plausible_signals(draw) -> np.ndarray:
    """Recordings that should mostly get through: [T, 3 or 6], T long enough at ~20 Hz, bounded values."""
    dtype = np.dtype(draw(st.sampled_from([np.float32, np.float64, np.int16, np.float16])))
    shape = (draw(st.integers(32, 300)), draw(st.sampled_from([3, 6])))
    limit = 1e3 if dtype.kind == "f" else 100
    elements = st.floats(-limit, limit, width=16) if dtype.kind == "f" else st.integers(-limit, limit)
    return draw(hnp.arrays(dtype, shape, elements=elements))


@st.composite
def wild_signals(draw) -> np.ndarray:
    """Arrays of any numeric dtype, mostly 2-D with 3 or 6 channels (either axis), with NaN/inf/extreme values."""
    dtype = np.dtype(draw(DTYPES))
    shape = draw(
        st.one_of(
            st.tuples(st.integers(0, 300), st.sampled_from([3, 6])),
            st.tuples(st.sampled_from([3, 6]), st.integers(0, 300)),
            hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=12),
        )
    )
    elements = hnp.from_dtype(dtype, allow_nan=True, allow_infinity=True) if dtype.kind in "fc" else None
    return draw(hnp.arrays(dtype, shape, elements=elements))


def signals() -> st.SearchStrategy[np.ndarray]:
    return st.one_of(plausible_signals(), wild_signals())


def _as_tensor(array: np.ndarray, dtype: torch.dtype | None) -> torch.Tensor:
    tensor = torch.from_numpy(np.array(array))
    return tensor.to(dtype) if dtype is not None and not (tensor.dtype == torch.bool or tensor.is_complex()) else tensor


arrays_or_tensors = st.one_of(
    signals(),
    st.builds(_as_tensor, signals(), st.sampled_from([None, torch.bfloat16, torch.float16, torch.float64])),
)

plausible_rates = st.one_of(
    st.floats(min_value=5.0, max_value=40.0), st.sampled_from([10, 20, 20.0]), st.just(np.float32(20.0))
)
rates = plausible_rates | st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=0.5, max_value=500.0),
    st.integers(-(10**12), 10**12),
    st.none(),
    st.booleans(),
    st.text(max_size=6),
    st.sampled_from(["50", "20.0", "nan", b"50"]),
    st.floats(min_value=1.0, max_value=200.0).map(np.float64),
    st.floats(min_value=1.0, max_value=200.0).map(lambda r: np.array(r, dtype=np.float32)),
    st.integers(1, 200).map(torch.tensor),
)


def _check(plugin: IMUPlugin, raw) -> None:
    """``raw`` (or ``raw()``, to include building the input) preprocesses to a finite window, or ``InputError``."""
    try:
        out = plugin.preprocess(raw() if callable(raw) else raw)
    except InputError:
        event("InputError")  # the split shows with pytest --hypothesis-show-statistics
        return
    event("preprocessed")
    assert isinstance(out, torch.Tensor)
    assert out.dtype == torch.float32
    assert tuple(out.shape) == (6, plugin.config.window_samples)
    assert torch.isfinite(out).all()


@FUZZ
@given(plugin=plugins, data=arrays_or_tensors, rate=rates, as_list=st.booleans())
def test_array_rate_pairs_preprocess_or_raise_input_error(plugin, data, rate, as_list):
    _check(plugin, [data, rate] if as_list else (data, rate))


@FUZZ
@given(plugin=plugins, data=arrays_or_tensors, rate=rates, layout=st.sampled_from(["TC", "CT"]))
def test_recordings_preprocess_or_raise_input_error(plugin, data, rate, layout):
    _check(plugin, IMURecording(data, rate, layout=layout))


@FUZZ
@given(plugin=plugins, data=arrays_or_tensors)
def test_bare_arrays_preprocess_or_raise_input_error(plugin, data):
    _check(plugin, data)


def _table(array: np.ndarray) -> np.ndarray:
    """``array`` as the 2-D table ``np.savetxt`` writes: one row per first-axis entry."""
    if array.ndim < 2:
        return array.reshape(1, array.size)
    return array.reshape(array.shape[0], math.prod(array.shape[1:]))


@FUZZ
@given(
    plugin=plugins,
    array=signals(),
    rate=st.one_of(st.none(), rates),
    suffix=st.sampled_from([".npy", ".csv"]),
    explicit=st.booleans(),
)
def test_files_preprocess_or_raise_input_error(plugin, array, rate, suffix, explicit):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"walk{suffix}"
        if suffix == ".npy":
            np.save(path, array, allow_pickle=False)
        else:
            np.savetxt(path, _table(array), delimiter=",")
        _check(plugin, (lambda: IMURecording.from_file(path, sample_rate=rate)) if explicit else str(path))


@FUZZ
@given(plugin=plugins, content=st.one_of(st.binary(max_size=200), st.text(max_size=200)))
def test_arbitrary_csv_files_preprocess_or_raise_input_error(plugin, content):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "walk.csv"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8", errors="surrogatepass")
        _check(plugin, lambda: IMURecording.from_file(path, sample_rate=20.0))
        _check(plugin, str(path))


@pytest.mark.parametrize("rate", [0.5, 1e-9, 5e-324, 1e6, math.inf, -math.inf, math.nan, "50", True])
def test_rates_outside_bounds_are_input_errors_naming_rate_and_length(tiny_plugin, rate):
    with pytest.raises(InputError, match=r"imu\.sample_rate=.*\(clip of 64 samples\).*Hz"):
        tiny_plugin.preprocess((np.zeros((64, 6), np.float32), rate))


def test_a_string_rate_is_one_input_not_a_batch(tiny_plugin):
    assert tiny_plugin.is_single_input((np.zeros((64, 6), np.float32), "50"))
    assert not tiny_plugin.is_single_input((np.zeros((64, 6), np.float32), "walk.npy"))
