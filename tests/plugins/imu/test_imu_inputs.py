"""What ``imu=`` accepts: layouts, arrays vs tensors, .npy/.csv files, batching, and the errors for bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anymal.errors import InputError
from anymal_imu import IMUPlugin, IMURecording


def _signal(seconds: float = 6.0, rate: float = 50.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return np.stack([np.sin(2 * np.pi * (0.5 + i / 3) * t + i) * (i + 1) for i in range(6)], axis=1).astype(np.float32)


def test_tc_and_ct_layouts_give_identical_windows(tiny_plugin):
    x = _signal()
    as_pair = tiny_plugin.preprocess((x, 50.0))
    as_tc = tiny_plugin.preprocess(IMURecording(x, 50.0, layout="TC"))
    as_ct = tiny_plugin.preprocess(IMURecording(np.ascontiguousarray(x.T), 50.0, layout="CT"))
    assert as_pair.shape == (6, tiny_plugin.config.window_samples)
    assert torch.equal(as_pair, as_tc)
    assert torch.equal(as_pair, as_ct)


def test_tc_and_ct_give_identical_encodings_on_real_recordings(basic_motions, bm_config):
    plugin = IMUPlugin(bm_config())
    encoder = plugin.build_encoder().eval()
    ct = [IMURecording(x, 10.0, layout="CT") for x in basic_motions["X"][:4]]
    tc = [(np.ascontiguousarray(x.T), 10.0) for x in basic_motions["X"][:4]]
    with torch.no_grad():
        a = plugin.encode(encoder, plugin.collate([plugin.preprocess(r) for r in ct]))
        b = plugin.encode(encoder, plugin.collate([plugin.preprocess(r) for r in tc]))
    assert torch.equal(a["embeds"], b["embeds"])
    assert torch.equal(a["features"], b["features"])


def test_numpy_torch_and_float64_inputs_agree(tiny_plugin):
    x = _signal()
    reference = tiny_plugin.preprocess((x, 50.0))
    assert torch.equal(tiny_plugin.preprocess((torch.from_numpy(x), 50.0)), reference)
    assert torch.allclose(tiny_plugin.preprocess((x.astype(np.float64), 50)), reference)
    assert torch.equal(tiny_plugin.preprocess((x, torch.tensor(50.0))), reference)
    assert torch.equal(tiny_plugin.preprocess((x, np.array(50))), reference)


def test_npy_and_csv_files_load_like_the_array(tmp_path):
    x = _signal()
    plugin = IMUPlugin(IMUPlugin.tiny_config())
    reference = plugin.preprocess((x, 50.0))
    np.save(tmp_path / "rec.npy", x)
    np.savetxt(tmp_path / "plain.csv", x, delimiter=",", fmt="%.9g")
    header = "acc_x,acc_y,acc_z,gyro_x,gyro_y,gyro_z"
    np.savetxt(tmp_path / "header.csv", x, delimiter=",", fmt="%.9g", header=header, comments="")
    for name in ("rec.npy", "plain.csv", "header.csv"):
        loaded = IMURecording.from_file(tmp_path / name, sample_rate=50.0)
        assert torch.allclose(plugin.preprocess(loaded), reference, atol=1e-5), name
    # a bare path is read at the config's default_sample_rate
    config = IMUPlugin.tiny_config()
    config.default_sample_rate = 50.0
    assert torch.equal(IMUPlugin(config).preprocess(str(tmp_path / "rec.npy")), reference)
    assert torch.allclose(IMUPlugin(config).preprocess(tmp_path / "header.csv"), reference, atol=1e-5)


def test_a_path_without_any_sample_rate_is_an_error(tmp_path, tiny_plugin):
    np.save(tmp_path / "rec.npy", _signal())
    with pytest.raises(InputError, match=r"rec\.npy\.sample_rate: missing sample rate"):
        tiny_plugin.preprocess(str(tmp_path / "rec.npy"))
    with pytest.raises(InputError, match="missing sample rate"):
        tiny_plugin.preprocess(_signal())  # a bare array, no default rate either


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("corrupt.npy", b"\x93NUMPY garbage", "corrupt.npy: cannot be read by numpy.load"),
        ("words.csv", b"a,b,c,d,e,f\n1,2,x,4,5,6\n", "words.csv: cannot be read by numpy.loadtxt"),
        ("empty.csv", b"", "empty.csv: no samples"),
        ("rec.txt", b"1,2,3,4,5,6\n", r"rec.txt: unsupported extension '.txt'; expected .npy or .csv"),
    ],
)
def test_unreadable_files_name_the_file(tmp_path, name, content, message):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(InputError, match=message):
        IMURecording.from_file(tmp_path / name, sample_rate=50.0)


def test_pickled_npy_is_refused(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match=r"obj\.npy: cannot be read"):
        IMURecording.from_file(tmp_path / "obj.npy", sample_rate=50.0)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ((np.full((100, 6), np.nan, np.float32), 20.0), "NaN or infinite"),
        ((np.pad(np.full((1, 6), np.inf, np.float32), ((0, 99), (0, 0))), 20.0), "6 NaN or infinite"),
        (
            (np.zeros((6, 100), np.float32), 20.0),
            r"got shape \[6, 100\].*expected \[T, 6\] \(time, accel xyz.*layout='CT'",
        ),
        ((np.zeros((100, 4), np.float32), 20.0), r"4 channels; expected \[T, 6\]"),
        ((np.zeros(100, np.float32), 20.0), r"shape \[100\]; expected a 2-D array, \[T, 6\]"),
        ((np.zeros((100, 6), np.float32), None), "imu.sample_rate: missing sample rate"),
        (
            (np.zeros((100, 6), np.float32), 0.0),
            r"imu.sample_rate=0.0 \(clip of 100 samples\): expected a positive sample rate",
        ),
        ((np.zeros((100, 6), np.float32), float("nan")), "expected a positive sample rate"),
        ((np.zeros((100, 6), np.float32), True), r"imu.sample_rate=True \(clip of 100 samples\): expected a positive"),
        ((np.zeros((20, 6), np.float32), 20.0), r"too short: 20 samples at 20 Hz = 1 s; expected at least 1.6 s"),
        ((np.zeros((100, 6), bool), 20.0), "dtype bool is not a real number type"),
        ((torch.zeros(100, 6, dtype=torch.complex64), 20.0), "not a real number type"),
        ("/nonexistent/walk.csv", r"IMU file /nonexistent/walk.csv: no such file"),
        ([np.zeros((100, 6)), np.zeros((100, 6)), 20.0], "expected \\(array, sample_rate\\)"),
        ({"data": np.zeros((100, 6))}, "got dict; expected"),
    ],
)
def test_bad_inputs_raise_input_error_naming_the_problem(tiny_plugin, raw, message):
    with pytest.raises(InputError, match=message):
        tiny_plugin.preprocess(raw)


def test_invalid_layout_is_refused():
    with pytest.raises(InputError, match="layout='NCT'; expected 'TC'"):
        IMURecording(np.zeros((10, 6)), 10.0, layout="NCT")


def test_bad_inputs_of_the_plugin_all_raise(tiny_plugin):
    for raw in tiny_plugin.bad_inputs():
        with pytest.raises(InputError):
            tiny_plugin.preprocess(raw)


def test_accelerometer_only_input_is_refused_unless_zero_filled():
    accel = _signal()[:, :3]
    with pytest.raises(InputError, match="missing_gyro='zeros'"):
        IMUPlugin(IMUPlugin.tiny_config()).preprocess((accel, 50.0))
    config = IMUPlugin.tiny_config()
    config.missing_gyro = "zeros"
    window = IMUPlugin(config).preprocess((accel, 50.0))
    full = IMUPlugin(config).preprocess((_signal(), 50.0))
    assert window.shape == (6, config.window_samples)
    assert torch.equal(window[3:], torch.zeros(3, config.window_samples))
    assert torch.equal(window[:3], full[:3])


def test_an_array_rate_pair_is_one_input_and_a_list_is_a_batch(tiny_plugin):
    x = _signal()
    assert tiny_plugin.is_single_input((x, 50.0))
    assert tiny_plugin.is_single_input((torch.from_numpy(x), 50))
    assert tiny_plugin.is_single_input((x, torch.tensor(50.0)))  # a 0-d tensor rate, as data loaders yield it
    assert tiny_plugin.is_single_input((x, np.float32(50.0)))
    assert tiny_plugin.is_single_input(IMURecording(x, 50.0))
    assert tiny_plugin.is_single_input("walk.npy")
    assert tiny_plugin.is_single_input(x)
    assert not tiny_plugin.is_single_input([(x, 50.0), (x, 50.0)])
    assert not tiny_plugin.is_single_input([x, x])
    assert not tiny_plugin.is_single_input((x, x))
