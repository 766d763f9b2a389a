"""Decoding the real NASA clip: ffmpeg reference frames, pts, stream selection, every input kind, both decoders."""

import av
import numpy as np
import pytest
import torch

from anymal import ConfigError, InputError
from anymal_video import VideoFrames, load_video, uniform_indices
from anymal_video.decord_decoder import decord_available
from anymal_video.probe import probe_video
from anymal_video.source import MediaSource

needs_decord = pytest.mark.skipif(not decord_available(), reason="decord is not installed (pip install anymal[decord])")

# decord vs ffmpeg's reference frames, measured on frames 0 and 15 of stream #3 with decord 0.6.0: mean abs diff 0.0,
# max abs diff 0 (bit-exact here). decord converts YUV to RGB with its own FFmpeg filter graph, so a build with a
# different swscale may round differently: we allow one grey level, and a tiny mean.
DECORD_MAX_ABS_DIFF = 1
DECORD_MEAN_ABS_DIFF = 0.05


def _pick(*indices):
    return lambda stamps, fps: np.array(indices)


def test_pyav_frames_equal_ffmpeg_reference_frames_bit_for_bit(nasa, reference_frames):
    clip = load_video(nasa, _pick(0, 15), decoder="pyav")
    assert clip.decoder == "pyav" and clip.stream_index == 3
    assert clip.frames.dtype == np.uint8 and clip.frames.shape == (2, 270, 480, 3)
    assert np.array_equal(clip.frames[0], reference_frames[0])
    assert np.array_equal(clip.frames[1], reference_frames[15])


@needs_decord
def test_decord_frames_match_reference_frames_within_tolerance(nasa, reference_frames):
    clip = load_video(nasa, _pick(0, 15), decoder="decord")
    assert clip.decoder == "decord"
    for got, k in zip(clip.frames, (0, 15)):
        diff = np.abs(got.astype(np.int16) - reference_frames[k].astype(np.int16))
        assert diff.max() <= DECORD_MAX_ABS_DIFF and diff.mean() <= DECORD_MEAN_ABS_DIFF, (k, diff.max(), diff.mean())


def test_timestamps_match_ffprobe_pts_for_both_streams(nasa, reference_pts):
    for stream, size, fps in ((3, (270, 480), 30000 / 1001), (0, (180, 320), 25.0)):
        index = probe_video(MediaSource.from_raw(nasa), stream)
        assert index.n_frames == len(reference_pts[stream])
        assert np.abs(index.timestamps - reference_pts[stream]).max() < 1e-6  # ffprobe prints 6 decimals
        assert (index.height, index.width) == size and index.fps == pytest.approx(fps)


def test_best_stream_is_the_default_and_stream_index_selects_another(nasa, reference_pts):
    best = load_video(nasa, _pick(0, 324), decoder="pyav")
    assert best.stream_index == 3 and best.n_total == 390 and best.frames.shape[1:] == (270, 480, 3)
    first = load_video(nasa, _pick(0, 324), decoder="pyav", stream_index=0)
    assert first.stream_index == 0 and first.n_total == 325 and first.frames.shape[1:] == (180, 320, 3)
    assert first.timestamps.tolist() == pytest.approx([0.0, 12.96])
    with pytest.raises(InputError, match=r"no video stream #1 .*#1 audio aac.*one of \[0, 3\]"):
        load_video(nasa, stream_index=1)


def test_seeking_decode_equals_decoding_every_frame(nasa):
    every = load_video(nasa, decoder="pyav")  # sequential decode of all 390 frames
    assert len(every) == 390 and every.indices.tolist() == list(range(390))
    wanted = [389, 15, 250, 239, 240, 241, 15, 0]  # out of order, repeated, across the keyframe at 240
    picked = load_video(nasa, _pick(*wanted), decoder="pyav")
    assert np.array_equal(picked.frames, every.frames[wanted])
    assert np.array_equal(picked.timestamps, every.timestamps[wanted])


@needs_decord
def test_decord_and_pyav_decode_the_same_frames(nasa):
    sample = lambda stamps, fps: uniform_indices(len(stamps), 16)  # noqa: E731
    a = load_video(nasa, sample, decoder="pyav")
    b = load_video(nasa, sample, decoder="decord")
    assert np.array_equal(a.indices, b.indices) and np.array_equal(a.timestamps, b.timestamps)
    assert np.abs(a.frames.astype(np.int16) - b.frames.astype(np.int16)).max() <= DECORD_MAX_ABS_DIFF


@needs_decord
def test_auto_prefers_decord_and_falls_back_to_pyav_for_other_streams(nasa):
    assert load_video(nasa, _pick(0), decoder="auto").decoder == "decord"
    assert load_video(nasa, _pick(0), decoder="auto", stream_index=0).decoder == "pyav"
    with pytest.raises(InputError, match=r"decord can only read the best video stream.*decoder='pyav'"):
        load_video(nasa, _pick(0), decoder="decord", stream_index=0)
    with pytest.raises(ConfigError, match="decoder='ffmpeg'"):
        load_video(nasa, decoder="ffmpeg")


@pytest.mark.parametrize("decoder", ["pyav", pytest.param("decord", marks=needs_decord)])
def test_bytes_input_decodes_like_the_path(nasa, decoder):
    from_path = load_video(nasa, _pick(3, 200, 300), decoder=decoder)
    from_bytes = load_video(nasa.read_bytes(), _pick(3, 200, 300), decoder=decoder)
    assert from_bytes.source == f"<{nasa.stat().st_size} bytes>"
    assert np.array_equal(from_path.frames, from_bytes.frames)
    assert np.array_equal(from_path.timestamps, from_bytes.timestamps)


def test_decoded_frames_input_pair_mapping_tensor_and_videoframes(nasa):
    clip = load_video(nasa, _pick(*range(0, 60, 2)), decoder="pyav")  # 30 frames
    pick = _pick(0, 29)
    pair = load_video((clip.frames, 15.0), pick)
    assert pair.decoder == "array" and pair.timestamps.tolist() == [0.0, 29 / 15]
    assert np.array_equal(pair.frames, clip.frames[[0, 29]])
    mapping = load_video({"frames": torch.from_numpy(clip.frames), "fps": torch.tensor(15.0)}, pick)
    assert np.array_equal(mapping.frames, pair.frames)
    chw = load_video((torch.from_numpy(clip.frames).permute(0, 3, 1, 2), 15), pick)
    assert np.array_equal(chw.frames, pair.frames)
    floats = load_video((clip.frames.astype(np.float32) / 255, 15.0), pick)
    assert np.array_equal(floats.frames, pair.frames)
    assert load_video(clip.frames, pick, array_fps=15.0).timestamps.tolist() == pair.timestamps.tolist()
    again = load_video(clip, _pick(1))  # a VideoFrames keeps its own timestamps
    assert isinstance(again, VideoFrames) and again.timestamps.tolist() == [clip.timestamps[1]]


def _write_ramp(path, container_format: str, codec: str, n: int = 12, rate: int = 10) -> None:
    """``n`` flat grey frames, frame i at level 20 * i, encoded with ``codec`` into ``container_format``."""
    with av.open(str(path), "w", format=container_format) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 20 * i, np.uint8), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


@pytest.mark.parametrize(
    ("name", "container_format", "codec"),
    [("clip.avi", "avi", "mpeg4"), ("clip.webm", "webm", "libvpx"), ("clip.mkv", "matroska", "libx264")],
)
@pytest.mark.parametrize("decoder", ["pyav", pytest.param("decord", marks=needs_decord)])
def test_other_containers_and_codecs_decode_in_order_with_their_timestamps(
    tmp_path, name, container_format, codec, decoder
):
    path = tmp_path / name
    try:
        _write_ramp(path, container_format, codec)
    except (av.FFmpegError, ValueError) as exc:  # an FFmpeg build without this encoder
        pytest.skip(f"PyAV cannot encode {codec} here: {exc}")
    clip = load_video(path, decoder=decoder)
    assert len(clip) == 12 and clip.fps == pytest.approx(10.0)
    assert clip.timestamps.tolist() == pytest.approx([i / 10 for i in range(12)])
    levels = clip.frames.reshape(12, -1).mean(axis=1)
    assert np.abs(levels - 20 * np.arange(12)).max() < 4  # lossy codecs, but the right frame at each position


def test_a_raw_h264_stream_without_container_timestamps_decodes_in_order(tmp_path):
    path = tmp_path / "clip.h264"
    _write_ramp(path, "h264", "libx264")
    clip = load_video(path, lambda stamps, fps: uniform_indices(len(stamps), 4), decoder="auto")
    assert clip.decoder == "pyav"  # decord cannot index a bare elementary stream; auto falls back
    assert clip.indices.tolist() == [1, 4, 7, 10]
    assert np.abs(clip.frames.reshape(4, -1).mean(axis=1) - 20 * clip.indices).max() < 4
