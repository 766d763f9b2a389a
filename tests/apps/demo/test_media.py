"""The synthetic media really have the attributes their truth says: checked by measuring the signals."""

from __future__ import annotations

import numpy as np
import pytest

from anymal_demo.world.images import RGB, make_image
from anymal_demo.world.motion import make_motion
from anymal_demo.world.sounds import PITCH_HZ, make_sound
from anymal_demo.world.videos import make_frames, write_mp4


def _shape_mask(pixels: np.ndarray, colour: str) -> np.ndarray:
    return np.abs(pixels.astype(int) - np.array(RGB[colour])).max(axis=-1) < 45


@pytest.mark.parametrize("position", ["left", "right", "top", "bottom"])
@pytest.mark.parametrize("colour", ["red", "blue"])
def test_picture_puts_the_shape_of_that_colour_at_that_place(position, colour):
    pixels = np.asarray(make_image({"colour": colour, "shape": "square", "position": position}, seed=3))
    ys, xs = np.nonzero(_shape_mask(pixels, colour))
    assert len(xs) > 100
    x, y = xs.mean() / 64, ys.mean() / 64
    expected = {"left": x < 0.4, "right": x > 0.6, "top": y < 0.4, "bottom": y > 0.6}
    assert expected[position], (x, y)


def test_shapes_differ_in_area_and_outline():
    areas = {
        shape: _shape_mask(
            np.asarray(make_image({"colour": "green", "shape": shape, "position": "left"}, 7)), "green"
        ).sum()
        for shape in ("circle", "square", "triangle")
    }
    assert areas["triangle"] < areas["circle"] < areas["square"]


def test_pictures_are_reproducible_from_their_seed():
    truth = {"colour": "yellow", "shape": "circle", "position": "top"}
    assert np.array_equal(np.asarray(make_image(truth, 5)), np.asarray(make_image(truth, 5)))
    assert not np.array_equal(np.asarray(make_image(truth, 5)), np.asarray(make_image(truth, 6)))


@pytest.mark.parametrize("pitch", sorted(PITCH_HZ))
def test_sound_pitch_is_its_fundamental(pitch):
    wave, rate = make_sound({"pitch": pitch, "rhythm": "steady", "timbre": "whistle"}, seed=1)
    spectrum = np.abs(np.fft.rfft(wave))
    peak = np.fft.rfftfreq(len(wave), 1 / rate)[spectrum.argmax()]
    assert peak == pytest.approx(PITCH_HZ[pitch], rel=0.08)


def test_buzz_has_odd_harmonics_and_whistle_does_not():
    def third_harmonic_share(timbre):
        wave, rate = make_sound({"pitch": "low", "rhythm": "steady", "timbre": timbre}, seed=2)
        spectrum = np.abs(np.fft.rfft(wave))
        freqs = np.fft.rfftfreq(len(wave), 1 / rate)
        f0 = freqs[spectrum.argmax()]
        near = lambda f: spectrum[np.abs(freqs - f) < 15].max()  # noqa: E731
        return near(3 * f0) / near(f0)

    assert third_harmonic_share("buzz") > 0.2
    assert third_harmonic_share("whistle") < 0.02


def test_pulsing_sound_switches_on_and_off():
    def quiet_share(rhythm):
        wave, _ = make_sound({"pitch": "medium", "rhythm": rhythm, "timbre": "whistle"}, seed=4)
        frames = np.abs(wave[: len(wave) // 160 * 160]).reshape(-1, 160).max(axis=1)  # 10 ms frames
        return (frames < 0.05).mean()

    assert quiet_share("pulsing") > 0.3
    assert quiet_share("steady") == 0.0


def _step_rate(window: np.ndarray, rate: float) -> float:
    magnitude = np.linalg.norm(window[:, :3], axis=1)
    spectrum = np.abs(np.fft.rfft(magnitude - magnitude.mean()))
    return np.fft.rfftfreq(len(magnitude), 1 / rate)[spectrum.argmax()]


def test_imu_windows_match_their_activity():
    windows = {a: make_motion({"activity": a}, seed=0) for a in ("still", "walking", "running", "jumping")}
    for window, rate in windows.values():
        assert window.shape == (100, 6) and window.dtype == np.float32 and rate == 50.0
    still, _ = windows["still"]
    assert np.linalg.norm(still[:, :3], axis=1).mean() == pytest.approx(9.81, abs=0.1)  # gravity only
    assert still.std(axis=0).max() < 0.1
    assert 1.4 < _step_rate(*windows["walking"]) < 2.3
    assert 2.3 < _step_rate(*windows["running"]) < 3.4
    jumping, _ = windows["jumping"]
    assert (np.linalg.norm(jumping[:, :3], axis=1) < 2.0).mean() > 0.3  # free fall between take-off and landing


def test_imu_windows_are_accepted_by_the_imu_plugin():
    from anymal_imu import IMUPlugin

    plugin = IMUPlugin(IMUPlugin.tiny_config())
    out = plugin.preprocess(make_motion({"activity": "running"}, seed=1))
    assert out.shape == (6, plugin.config.window_samples)


@pytest.mark.parametrize("direction", ["left", "right", "up", "down"])
def test_video_mp4_round_trip_shows_the_square_moving_that_way(tmp_path, direction):
    from anymal_video import VideoPlugin

    frames = make_frames({"colour": "red", "direction": direction}, seed=9)
    path = write_mp4(frames, tmp_path / "clip.mp4")
    plugin = VideoPlugin(VideoPlugin.tiny_config())
    clip = plugin.load_frames(str(path))
    assert clip.frames.shape[0] == plugin.config.num_frames
    centres = []
    for frame in (clip.frames[0], clip.frames[-1]):
        ys, xs = np.nonzero(_shape_mask(frame, "red"))
        centres.append((xs.mean(), ys.mean()))
    dx, dy = centres[1][0] - centres[0][0], centres[1][1] - centres[0][1]
    moved = {"left": dx < -10, "right": dx > 10, "up": dy < -10, "down": dy > 10}
    assert moved[direction], (dx, dy)
