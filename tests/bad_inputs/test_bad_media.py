"""Bad media: every malformed image, audio clip, IMU recording or frame array is an InputError naming it.

Each case goes through the plugin's public ``preprocess`` (what ``AnyMAL.generate`` and the data pipeline call) and
checks that the message names the input (a path, a byte count, or the array's shape and dtype) and what was
expected. Where the right answer is a conversion rather than an error (16-bit images, uint16 arrays, bfloat16
tensors) a behaviour test shows that the conversion is correct.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from anymal import InputError
from anymal_audio import AudioPlugin
from anymal_image import ImagePlugin
from anymal_image.io import MAX_IMAGE_PIXELS, load_image
from anymal_imu import IMUPlugin
from anymal_imu.recording import IMURecording
from anymal_video import VideoPlugin
from bad_inputs.conftest import expect_error


@pytest.fixture(scope="module")
def image() -> ImagePlugin:
    return ImagePlugin(ImagePlugin.tiny_config())


@pytest.fixture(scope="module")
def audio() -> AudioPlugin:
    return AudioPlugin(AudioPlugin.tiny_config())


@pytest.fixture(scope="module")
def imu() -> IMUPlugin:
    return IMUPlugin(IMUPlugin.tiny_config())


@pytest.fixture(scope="module")
def video() -> VideoPlugin:
    return VideoPlugin(VideoPlugin.tiny_config())


EXPECTED_PIXELS = r"expected uint8 values 0-255, uint16 values 0-65535 \(scaled to 8 bits\), or floats in \[0, 1\]"

# --- images: files and bytes ---------------------------------------------------------------------------------------


def test_decompression_bomb_beyond_pils_limit_names_file_and_limit(image, bad_files):
    path = bad_files / "image_bomb.png"
    expect_error(lambda: image.preprocess(path), InputError, r"image_bomb\.png", "decompression bomb", r"\d+ pixels")


def test_decompression_bomb_as_bytes_names_the_byte_count(image, bad_files):
    data = (bad_files / "image_bomb.png").read_bytes()
    expect_error(lambda: image.preprocess(data), InputError, rf"\({len(data)} bytes\)", "decompression bomb")


def test_image_over_max_image_pixels_names_size_and_limit(image, bad_files):
    expect_error(
        lambda: image.preprocess(str(bad_files / "image_large_header.png")),
        InputError,
        r"image_large_header\.png",
        r"10000 x 10000 = 100000000 pixels",
        rf"limit of {MAX_IMAGE_PIXELS} pixels",
        r"anymal_image\.io\.MAX_IMAGE_PIXELS",
    )


def test_the_pixel_limit_is_configurable_per_call(bad_files):
    expect_error(
        lambda: load_image(bad_files / "image_grey8.png", max_pixels=1000),
        InputError,
        r"64 x 32 = 2048 pixels exceeds the limit of 1000",
    )
    assert load_image(bad_files / "image_grey8.png", max_pixels=None).size == (64, 32)


def test_truncated_png_names_the_file(image, bad_files):
    expect_error(lambda: image.preprocess(bad_files / "image_truncated.png"), InputError, r"image_truncated\.png")


# --- images: arrays and tensors --------------------------------------------------------------------------------------
BAD_ARRAYS = {
    "object": (np.empty((8, 8, 3), dtype=object), [r"shape \(8, 8, 3\) dtype object", "not numeric", EXPECTED_PIXELS]),
    "unicode": (np.full((8, 8, 3), "a"), [r"dtype <U1", "not numeric"]),
    "bytes": (np.full((8, 8), b"x"), [r"dtype \|S1", "not numeric"]),
    "complex": (np.zeros((8, 8, 3), np.complex128), [r"dtype complex128", "not numeric"]),
    "zero_height": (np.zeros((0, 8, 3), np.uint8), [r"shape \(0, 8, 3\)", "empty", r"at least 1 x 1"]),
    "zero_width_grey": (np.zeros((8, 0), np.float32), [r"shape \(8, 0\) dtype float32", "empty"]),
    "zero_size_chw": (np.zeros((3, 0, 0), np.float32), [r"shape \(3, 0, 0\)", "empty"]),
    "int_over_255": (np.full((4, 4), 1000, np.int32), [r"dtype int32 has values 1000\.\.1000", "0-255"]),
    "negative_int": (np.full((4, 4, 3), -5, np.int64), [r"values -5\.\.-5", "0-255"]),
    "float_0_255": (np.full((4, 4, 3), 200.0), [r"dtype float64 has values 200\.\.200", r"\[0, 1\]", "divide by 255"]),
    "float_nan": (np.full((4, 4, 3), np.nan, np.float32), [r"shape \(4, 4, 3\) dtype float32", "NaN or inf"]),
    "four_dims": (np.zeros((1, 3, 8, 8), np.uint8), [r"shape \(1, 3, 8, 8\)", r"\[H, W, C\]"]),
    "five_channels": (np.zeros((8, 8, 5), np.uint8), [r"shape \(8, 8, 5\)", "1, 3 or 4 channels"]),
    "complex_tensor": (torch.zeros(3, 8, 8, dtype=torch.complex64), [r"dtype complex64", "not numeric"]),
}


@pytest.mark.parametrize("name", sorted(BAD_ARRAYS))
def test_bad_image_array_names_shape_dtype_and_expectation(image, name):
    raw, fragments = BAD_ARRAYS[name]
    expect_error(lambda: image.preprocess(raw), InputError, r"^image: ", *fragments)


def test_pil_image_of_out_of_range_32_bit_integers(image):
    raw = Image.fromarray(np.full((4, 4), -7, np.int32))
    expect_error(lambda: image.preprocess(raw), InputError, r"PIL mode 'I'", r"values -7\.\.-7", "8- or 16-bit")


def test_pil_float_image_outside_0_1(image):
    raw = Image.fromarray(np.full((4, 4), 128.0, np.float32))
    expect_error(lambda: image.preprocess(raw), InputError, "32-bit float image", r"\[0, 1\]")


# --- images: conversions that must be right ------------------------------------------------------------------------
def _mean(picture: Image.Image) -> float:
    return float(np.asarray(picture, dtype=np.float64).mean())


def test_16_bit_png_is_scaled_not_clipped(bad_files):
    eight = load_image(bad_files / "image_grey8.png")
    sixteen = load_image(bad_files / "image_grey16.png")
    assert Image.open(bad_files / "image_grey16.png").mode.startswith("I")
    assert abs(_mean(sixteen) - _mean(eight)) <= 1.0
    white = (np.asarray(sixteen) == 255).mean()  # before the fix 99.6% of a 16-bit picture clipped to white
    assert white == (np.asarray(eight) == 255).mean() < 0.1


def test_16_bit_png_bytes_and_pil_image_and_older_pillow_mode_i(bad_files):
    eight = _mean(load_image(bad_files / "image_grey8.png"))
    data = (bad_files / "image_grey16.png").read_bytes()
    assert abs(_mean(load_image(data)) - eight) <= 1.0
    with Image.open(io.BytesIO(data)) as opened:
        assert abs(_mean(load_image(opened)) - eight) <= 1.0
        mode_i = opened.convert("I")  # how Pillow < 10.? opened 16-bit grey PNGs
    assert abs(_mean(load_image(mode_i)) - eight) <= 1.0


def test_uint16_array_is_scaled_like_a_16_bit_file(bad_files):
    eight = np.asarray(Image.open(bad_files / "image_grey8.png"))
    converted = np.asarray(load_image(eight.astype(np.uint16) * 257))
    assert np.array_equal(converted[..., 0], eight)


def test_bfloat16_tensor_is_converted_exactly(image):
    pixels = torch.rand(3, 16, 16).to(torch.bfloat16)
    assert np.array_equal(np.asarray(load_image(pixels)), np.asarray(load_image(pixels.float())))
    assert image.preprocess(pixels).dtype == torch.float32


def test_integer_arrays_in_0_255_and_bool_masks_are_read_as_8_bit():
    values = np.arange(64, dtype=np.int64).reshape(8, 8) * 4
    assert np.array_equal(np.asarray(load_image(values))[..., 0], values.astype(np.uint8))
    mask = np.eye(4, dtype=bool)
    assert np.array_equal(np.asarray(load_image(mask))[..., 0], mask.astype(np.uint8) * 255)


# --- audio: sample rates and samples --------------------------------------------------------------------------------
AUDIO_RATE_CASES = {
    "tiny_clip_huge_rate": (
        (np.zeros(3, np.float32), 10**9),
        [r"clip of 3 samples", r"1000000000 Hz", "1000 and 768000"],
    ),
    "huge_float_rate": ((np.zeros(100, np.float32), 1e12), [r"clip of 100 samples", "outside the accepted range"]),
    "rate_in_khz": ((np.zeros(100, np.float32), 16), [r"16 Hz is outside", "kHz"]),
    "nan_rate": ((np.zeros(100, np.float32), float("nan")), [r"clip of 100 samples", r"got nan", "positive integer"]),
    "inf_rate": ((np.zeros(100, np.float32), float("inf")), [r"got inf"]),
    "negative_rate": ((np.zeros(100, np.float32), -16000), [r"got -16000"]),
    "string_rate": ((np.zeros(100, np.float32), "16000"), [r"string '16000'", "as a number"]),
    "fractional_rate": ((np.zeros(100, np.float32), 44100.5), [r"got 44100\.5", "positive integer"]),
}


@pytest.mark.parametrize("name", sorted(AUDIO_RATE_CASES))
def test_bad_audio_rate_names_rate_clip_length_and_range(audio, name):
    raw, fragments = AUDIO_RATE_CASES[name]
    expect_error(lambda: audio.preprocess(raw), InputError, r"audio \(array, sample_rate\) pair", *fragments)


def test_clip_that_resamples_to_no_samples_names_its_duration(audio):
    expect_error(
        lambda: audio.preprocess((np.zeros(1, np.float32), 768_000)),
        InputError,
        r"1 sample\(s\) at 768000 Hz = 1\.3e-06 s",
        "resample to no samples",
        r"at least 2\.08e-05 s",
    )


def test_nan_and_inf_audio_samples(audio):
    for bad in (np.nan, np.inf, -np.inf):
        clip = np.zeros(1600, np.float32)
        clip[10:13] = bad
        expect_error(lambda clip=clip: audio.preprocess((clip, 16_000)), InputError, r"3 sample\(s\) are NaN or inf")


def test_audio_file_with_a_4_mhz_header(audio, bad_files):
    path = bad_files / "audio_3_samples_at_4MHz.wav"
    expect_error(
        lambda: audio.preprocess(path), InputError, r"audio_3_samples_at_4MHz\.wav", "clip of 3 samples", "4000000 Hz"
    )


def test_audio_file_with_a_2_hz_header(audio, bad_files):
    path = bad_files / "audio_at_2Hz.wav"
    expect_error(
        lambda: audio.preprocess(path), InputError, r"audio_at_2Hz\.wav", r"2 Hz is outside", "1000 and 768000"
    )


def test_audio_file_with_nan_samples(audio, bad_files):
    expect_error(lambda: audio.preprocess(bad_files / "audio_nan.wav"), InputError, r"audio_nan\.wav", "NaN or inf")


def test_complex_audio_tensor(audio):
    expect_error(lambda: audio.preprocess((torch.zeros(100, dtype=torch.complex64), 16_000)), InputError, "real-valued")


def test_string_audio_rate_is_one_input_not_a_batch(audio):
    assert audio.is_single_input((np.zeros(100, np.float32), "16000"))


# --- IMU: sample rates and samples -----------------------------------------------------------------------------------
WINDOW = np.zeros((64, 6), np.float32)
IMU_RATE_RANGE = r"from 1 to 100000"
IMU_RATE_CASES = {
    "tiny_rate": (1e-9, [r"=1e-09 \(clip of 64 samples\)", "outside the accepted range", IMU_RATE_RANGE]),
    "denormal_rate": (5e-324, [r"=5e-324", IMU_RATE_RANGE]),
    "huge_rate": (1e12, [r"=1000000000000\.0 \(clip of 64 samples\)", IMU_RATE_RANGE]),
    "nan_rate": (float("nan"), [r"=nan \(clip of 64 samples\)", "expected a positive sample rate"]),
    "inf_rate": (float("inf"), [r"=inf", "finite"]),
    "negative_inf_rate": (float("-inf"), [r"=-inf", "positive"]),
    "string_rate": ("50", [r"='50' \(clip of 64 samples\)", "a string is not a sample rate", "as a number"]),
    "bool_rate": (True, [r"=True", "expected a positive sample rate"]),
}


@pytest.mark.parametrize("name", sorted(IMU_RATE_CASES))
def test_bad_imu_rate_names_rate_clip_length_and_range(imu, name):
    rate, fragments = IMU_RATE_CASES[name]
    expect_error(lambda: imu.preprocess((WINDOW, rate)), InputError, r"^imu\.sample_rate", *fragments)


def test_string_imu_rate_is_one_input_not_two(imu):
    assert imu.is_single_input((WINDOW, "50"))
    expect_error(
        lambda: imu.preprocess(IMURecording(WINDOW.T, "50", layout="CT")), InputError, "a string is not a sample rate"
    )


def test_nan_and_inf_imu_samples(imu):
    for bad in (np.nan, np.inf):
        signal = WINDOW.copy()
        signal[5, 2] = bad
        expect_error(
            lambda signal=signal: imu.preprocess((signal, 20.0)), InputError, r"1 NaN or infinite value", "finite"
        )


def test_imu_values_beyond_float32(imu):
    signal = np.full((64, 6), 1e300)
    expect_error(lambda: imu.preprocess((signal, 20.0)), InputError, r"dtype float64", r"1e\+300", "float32")


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("imu_nan.csv", "NaN or infinite"),
        ("imu_header_only.csv", "no samples"),
        ("imu_not_utf8.csv", "cannot be read"),
        ("imu_ragged.csv", "cannot be read"),
    ],
)
def test_bad_imu_files_name_the_file(imu, bad_files, name, fragment):
    path = bad_files / name
    expect_error(lambda: imu.preprocess(IMURecording.from_file(path, sample_rate=20.0)), InputError, name, fragment)


# --- video: decoded frame arrays get the image rules -----------------------------------------------------------------
BAD_FRAMES = {
    "object": (
        np.empty((2, 8, 8, 3), dtype=object),
        [r"frames array of shape \(2, 8, 8, 3\) dtype object", "not numeric"],
    ),
    "unicode": (np.full((2, 8, 8, 3), "x"), [r"dtype <U1", "not numeric"]),
    "complex": (np.zeros((2, 8, 8, 3), np.complex64), [r"dtype complex64", "not numeric"]),
    "zero_height": (np.zeros((2, 0, 8, 3), np.uint8), [r"shape \(2, 0, 8, 3\)", "empty"]),
    "int_over_255": (np.full((2, 8, 8, 3), 300, np.int16), [r"dtype int16 has values 300\.\.300", "0-255"]),
    "complex_tensor": (torch.zeros(2, 3, 8, 8, dtype=torch.complex64), [r"dtype complex64", "not numeric"]),
}


@pytest.mark.parametrize("name", sorted(BAD_FRAMES))
def test_bad_frame_arrays_name_shape_and_dtype(video, name):
    frames, fragments = BAD_FRAMES[name]
    expect_error(lambda: video.preprocess((frames, 10.0)), InputError, r"^video: ", *fragments)


def test_bfloat16_and_uint16_frames_are_converted(video):
    from anymal_video.frames import frames_array

    frames = torch.rand(2, 3, 8, 8)
    expected = frames_array(frames)
    assert np.array_equal(frames_array(frames.to(torch.bfloat16)), frames_array(frames.to(torch.bfloat16).float()))
    assert np.array_equal(frames_array(expected.astype(np.uint16) * 257), expected)
    assert video.preprocess((frames.to(torch.bfloat16), 10.0))["pixel_values"].shape[0] == 4


@pytest.mark.parametrize(
    ("fps", "fragment"),
    [
        (5e-324, r"frame rate 4\.94066e-324 is outside the accepted range"),
        (1e300, r"frame rate 1e\+300 is outside"),
        ("10", r"frame rate '10' is a string"),
        (float("nan"), r"frame rate nan is not a positive number"),
    ],
)
def test_bad_frame_rates_name_rate_and_clip_length(video, fps, fragment):
    frames = np.zeros((12, 8, 8, 3), np.uint8)
    expect_error(
        lambda: video.preprocess((frames, fps)),
        InputError,
        r"video \(clip of 12 frames\)",
        fragment,
        "0.001 to 1e\\+06",
    )
