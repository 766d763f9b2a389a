"""Video test fixtures: the real NASA clip with ffmpeg's reference frames and pts, and small broken files."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from anymal.testing import require_asset

NASA = "video/nasa_13013.mp4"
REFERENCE = "video/nasa_reference"


@pytest.fixture(scope="session")
def nasa() -> Path:
    """13 s NASA clip: stream #0 h264 320x180 25 fps (325 frames), #3 h264 480x270 29.97 fps (390), 2 aac tracks."""
    return require_asset(NASA)


@pytest.fixture(scope="session")
def reference_frames() -> dict[int, np.ndarray]:
    """ffmpeg-decoded frames 0 and 15 of stream #3 (uint8 270x480x3)."""
    return {k: np.load(require_asset(f"{REFERENCE}/nasa_13013.mp4.stream3.frame{k:06d}.npy")) for k in (0, 15)}


def _pts(stream: int) -> np.ndarray:
    info = json.loads(require_asset(f"{REFERENCE}/nasa_13013.mp4.stream{stream}.all_frames_info.json").read_text())
    return np.array([float(frame["pts_time"]) for frame in info])


@pytest.fixture(scope="session")
def reference_pts() -> dict[int, np.ndarray]:
    """ffprobe's pts_time (seconds, 6 decimals) of every frame of streams #0 and #3."""
    return {0: _pts(0), 3: _pts(3)}


@pytest.fixture(scope="session")
def broken_videos(nasa, tmp_path_factory) -> dict[str, Path]:
    """Real failure modes, made with PyAV from the NASA clip or from scratch.

    * ``truncated_tail``: the original file cut at 60% (its mp4 index, the moov atom, is at the end, so it is lost).
    * ``truncated_faststart``: stream #3 remuxed with the index first, then cut at 60% (index intact, data short).
    * ``unknown_codec``: the complete remux with its codec fourcc and codec config box renamed.
    * ``no_decodable_frames``: an mp4 whose only video stream's packets are all zero bytes.
    * ``audio_only``: an m4a file with an aac track and no video.
    * ``text``: a text file named .mp4.
    """
    folder = tmp_path_factory.mktemp("broken_videos")
    data = nasa.read_bytes()
    (folder / "truncated_tail.mp4").write_bytes(data[: int(len(data) * 0.6)])

    faststart = folder / "faststart.mp4"
    with av.open(str(nasa)) as src, av.open(str(faststart), "w", options={"movflags": "faststart"}) as dst:
        out = dst.add_stream_from_template(src.streams[3])
        for packet in src.demux(src.streams[3]):
            if packet.dts is not None:
                packet.stream = out
                dst.mux(packet)
    full = faststart.read_bytes()
    (folder / "truncated_faststart.mp4").write_bytes(full[: int(len(full) * 0.6)])
    # rename the h264 sample entry and its config box so that FFmpeg cannot tell the codec
    (folder / "unknown_codec.mp4").write_bytes(full.replace(b"avc1", b"qqqq").replace(b"avcC", b"qqqC"))

    with av.open(str(folder / "no_decodable_frames.mp4"), "w") as dst:
        stream = dst.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        frames = [av.VideoFrame.from_ndarray(np.full((48, 64, 3), 40 * i, np.uint8), format="rgb24") for i in range(5)]
        for packet in [p for f in [*frames, None] for p in stream.encode(f)]:
            zeros = av.Packet(bytes(packet.size))
            zeros.pts, zeros.dts, zeros.time_base, zeros.stream = packet.pts, packet.dts, packet.time_base, stream
            dst.mux(zeros)

    with av.open(str(folder / "audio_only.m4a"), "w") as dst:
        stream = dst.add_stream("aac", rate=16000)
        tone = np.sin(2 * np.pi * 440 * np.arange(1024 * 8) / 16000).astype(np.float32)[None]
        frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
        frame.sample_rate = 16000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            dst.mux(packet)

    (folder / "text.mp4").write_text("this is a text file, not a video\n")
    return {path.stem: path for path in folder.iterdir() if path.name != "faststart.mp4"} | {"faststart": faststart}
