"""Signal preprocessing: resampling keeps frequencies (and removes what cannot be represented), windowing, scaling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anymal_imu import IMUPlugin, IMUPluginConfig
from anymal_imu.preprocess import centre_crop, pad_to, resample


def _peak_hz(signal: np.ndarray, rate: float) -> float:
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    return float(np.fft.rfftfreq(len(signal), 1 / rate)[np.argmax(spectrum)])


def test_a_10hz_sine_resampled_to_the_encoder_rate_keeps_its_frequency():
    rate_in, rate_out, freq = 10.0, 50.0, 1.3
    t = np.arange(100) / rate_in
    x = np.sin(2 * np.pi * freq * t).astype(np.float32)[:, None].repeat(6, axis=1)
    y = resample(x, rate_in, rate_out)
    assert y.shape == (500, 6)
    assert _peak_hz(y[:, 0], rate_out) == pytest.approx(freq, abs=0.1)
    # away from the edges the output is the same sine sampled at 50 Hz (no delay, no amplitude change)
    t_out = np.arange(500) / rate_out
    expected = np.sin(2 * np.pi * freq * t_out)
    assert np.abs(y[25:-25, 0] - expected[25:-25]).max() < 0.02


def test_the_plugin_resamples_to_the_configured_rate():
    config = IMUPluginConfig(sample_rate=50.0, window_samples=250, width=8, embed_dim=8, conv_layers=1, heads=2)
    t = np.arange(100) / 10.0
    x = np.stack([np.sin(2 * np.pi * 1.3 * t)] * 6, axis=1).astype(np.float32)
    window = IMUPlugin(config).preprocess((x, 10.0)).numpy()
    assert window.shape == (6, 250)
    assert _peak_hz(window[0], 50.0) == pytest.approx(1.3, abs=0.1)


def test_downsampling_removes_frequencies_above_the_new_nyquist():
    rate_in, rate_out = 200.0, 20.0
    t = np.arange(2000) / rate_in
    slow, fast = np.sin(2 * np.pi * 1.0 * t), np.sin(2 * np.pi * 38.0 * t)  # 38 Hz would alias to 2 Hz at 20 Hz
    y = resample(np.stack([slow + fast] * 6, axis=1).astype(np.float32), rate_in, rate_out)[:, 0]
    reference = np.sin(2 * np.pi * 1.0 * np.arange(len(y)) / rate_out)
    assert np.abs(y[20:-20] - reference[20:-20]).max() < 0.02


def test_centre_crop_and_symmetric_padding():
    ramp = np.arange(10, dtype=np.float32)[:, None].repeat(6, axis=1)
    assert centre_crop(ramp, 4)[:, 0].tolist() == [3, 4, 5, 6]
    padded = pad_to(ramp[:3], 8)
    assert padded[:, 0].tolist() == [0, 0, 0, 1, 2, 0, 0, 0]


def test_long_input_is_centre_cropped_after_resampling():
    config = IMUPluginConfig(sample_rate=20.0, window_samples=40, width=8, embed_dim=8, conv_layers=1, heads=2)
    config.normalization = "none"
    t = np.arange(60 * 20) / 20.0  # one minute at the encoder's rate: a ramp in time on every channel
    window = IMUPlugin(config).preprocess((np.stack([t] * 6, axis=1).astype(np.float32), 20.0))
    assert window[0, 0].item() == pytest.approx(t[(len(t) - 40) // 2])
    assert window[0, -1].item() == pytest.approx(t[(len(t) - 40) // 2 + 39])


@pytest.mark.parametrize("rate", [50.0, 10.0, 99.8])
def test_long_input_at_another_rate_matches_resampling_everything_first(rate):
    config = IMUPluginConfig(sample_rate=20.0, window_samples=40, width=8, embed_dim=8, conv_layers=1, heads=2)
    rng = np.random.default_rng(0)
    x = np.cumsum(rng.standard_normal((int(60 * rate), 6)), axis=0).astype(np.float32)  # a minute of random walk
    window = IMUPlugin(config).preprocess((x, rate))
    reference = centre_crop(resample(x, rate, 20.0), 40)
    reference = (reference - reference.mean(0)) / np.maximum(reference.std(0), config.min_std)
    assert torch.allclose(window, torch.from_numpy(reference.T.copy()), atol=1e-4)


def test_zscore_normalises_each_channel_of_the_window_and_pads_with_zeros():
    config = IMUPlugin.tiny_config()  # 20 Hz, 64 samples
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((48, 6)) * [1, 2, 3, 4, 5, 6] + [10, 0, -5, 1, 2, 3]).astype(np.float32)
    window = IMUPlugin(config).preprocess((x, 20.0)).numpy()
    real = window[:, 8:56]  # 48 samples centred in 64
    assert np.allclose(real.mean(axis=1), 0, atol=1e-5)
    assert np.allclose(real.std(axis=1), 1, atol=1e-4)
    assert np.array_equal(window[:, :8], np.zeros((6, 8))) and np.array_equal(window[:, 56:], np.zeros((6, 8)))


def test_zscore_does_not_amplify_a_still_sensor():
    config = IMUPlugin.tiny_config()
    still = np.full((64, 6), 9.81, np.float32)
    still[:, 0] += np.float32(1e-4) * np.sin(np.arange(64))  # sensor noise far below min_std
    window = IMUPlugin(config).preprocess((still, 20.0))
    assert torch.isfinite(window).all()
    assert window.abs().max() < 0.05


def test_fixed_normalisation_uses_the_dataset_statistics():
    config = IMUPlugin.tiny_config()
    config.normalization, config.channel_mean, config.channel_std = "fixed", [1, 2, 3, 4, 5, 6], [2, 2, 2, 4, 4, 4]
    IMUPluginConfig.__post_init__(config)
    x = np.tile(np.arange(6, dtype=np.float32) * 3, (64, 1))
    window = IMUPlugin(config).preprocess((x, 20.0))
    expected = (np.arange(6) * 3 - np.arange(1, 7)) / np.array([2, 2, 2, 4, 4, 4])
    assert torch.allclose(window[:, 0], torch.tensor(expected, dtype=torch.float32))


def test_real_recordings_match_a_numpy_reference(basic_motions, bm_config):
    plugin = IMUPlugin(bm_config())
    x = basic_motions["X"]  # [N, C, T] at 10 Hz, already the encoder's rate and length
    ours = torch.stack([plugin.preprocess((np.ascontiguousarray(r.T), 10.0)) for r in x]).numpy()
    std = np.maximum(x.std(axis=2, keepdims=True), plugin.config.min_std)
    reference = (x - x.mean(axis=2, keepdims=True)) / std
    assert np.allclose(ours, reference, atol=1e-5)
