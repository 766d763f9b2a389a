"""Bad video inputs raise InputError naming the file and what was expected, with either decoder."""

import re

import numpy as np
import pytest

from anymal import InputError
from anymal_video import VideoPlugin, load_video
from anymal_video.decord_decoder import decord_available

DECODERS = ["pyav", pytest.param("decord", marks=pytest.mark.skipif(not decord_available(), reason="no decord"))]


def _error(raw, decoder, **kwargs) -> str:
    with pytest.raises(InputError) as info:
        load_video(raw, decoder=decoder, **kwargs)
    return str(info.value)


@pytest.mark.parametrize("decoder", DECODERS)
def test_zero_decodable_frames(broken_videos, decoder):
    message = _error(broken_videos["no_decodable_frames"], decoder)
    assert str(broken_videos["no_decodable_frames"]) in message
    assert re.search(r"no decodable frames|decord cannot (open|decode)", message)


@pytest.mark.parametrize("decoder", DECODERS)
def test_non_video_files(broken_videos, nasa, decoder):
    text = _error(broken_videos["text"], decoder)
    assert str(broken_videos["text"]) in text and "not a readable media container" in text and "mp4" in text
    audio = _error(broken_videos["audio_only"], decoder)
    assert f"{broken_videos['audio_only']} has no video stream (streams: #0 audio aac)" in audio
    image = nasa.parents[1] / "images" / "grace_hopper.jpg"
    if image.is_file():
        assert f"{image} is a still image" in _error(image, decoder) and "image=" in _error(image, decoder)
    assert "<18 bytes> is not a readable media container" in _error(b"not a video at all", decoder)


@pytest.mark.parametrize("decoder", DECODERS)
def test_unknown_codec(broken_videos, decoder):
    message = _error(broken_videos["unknown_codec"], decoder)
    assert f"{broken_videos['unknown_codec']} stream #0 is video in a codec FFmpeg does not know" in message
    assert "re-encode" in message


@pytest.mark.parametrize("decoder", DECODERS)
def test_truncated_files(broken_videos, decoder):
    tail = _error(broken_videos["truncated_tail"], decoder)  # the mp4 index was at the end and is gone
    assert str(broken_videos["truncated_tail"]) in tail and "not a readable media container" in tail
    fast = _error(broken_videos["truncated_faststart"], decoder)  # the index survives, the frame data does not
    assert str(broken_videos["truncated_faststart"]) in fast
    assert re.search(r"stream #0 \(h264\) is truncated or corrupt: the container lists 390 frames but only \d+", fast)


def test_complete_faststart_remux_is_read_fine(broken_videos, reference_frames):
    clip = load_video(broken_videos["faststart"], lambda stamps, fps: np.array([15]), decoder="pyav")
    assert clip.n_total == 390 and np.array_equal(clip.frames[0], reference_frames[15])


@pytest.mark.parametrize("decoder", DECODERS)
def test_missing_file_and_wrong_types(decoder, tmp_path):
    missing = tmp_path / "nowhere.mp4"
    assert _error(missing, decoder) == f"video: video file not found: {missing}"
    assert _error(tmp_path, decoder) == f"video: video file not found: {tmp_path}"  # a folder is not a file
    assert "expected a path or bytes of an encoded video, got int" in _error(3, decoder)
    assert "got 0 bytes" in _error(b"", decoder)


def test_bad_decoded_frames():
    cases = {
        "expected decoded frames [T, H, W, 3]": (np.zeros((4, 8, 8), np.uint8), 10),
        "expected 3 RGB channels": (np.zeros((4, 8, 8, 4), np.uint8), 10),
        "is empty": (np.zeros((0, 8, 8, 3), np.uint8), 10),
        "NaN or inf": (np.full((2, 8, 8, 3), np.nan, np.float32), 10),
        "must lie in [0, 1]": (np.full((2, 8, 8, 3), 2.0, np.float32), 10),
        "integer pixels other than uint16 must lie in 0-255": (np.full((2, 8, 8, 3), 1000, np.int32), 10),
        "is not numeric pixel data": (np.zeros((2, 8, 8, 3), np.complex64), 10),
        "not a positive number of frames per second": (np.zeros((2, 8, 8, 3), np.uint8), -5),
        "a bare frames array has no frame rate": np.zeros((2, 8, 8, 3), np.uint8),
        "needs 'frames'": {"frames": np.zeros((2, 8, 8, 3), np.uint8)},
        "tuple of 3 items": (np.zeros((2, 8, 8, 3), np.uint8), 10, 3),
    }
    for expected, raw in cases.items():
        with pytest.raises(InputError, match=re.escape(expected)):
            load_video(raw)


def test_plugin_preprocess_raises_input_error_for_every_declared_bad_input():
    plugin = VideoPlugin(VideoPlugin.tiny_config())
    for bad in plugin.bad_inputs():
        with pytest.raises(InputError):
            plugin.preprocess(bad)
