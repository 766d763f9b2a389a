"""Choosing a video stream and indexing its frames (timestamps, keyframes) without decoding any pixels.

The index comes from demuxing packets only, which is cheap, and it is what makes sampling exact: frame positions
are presentation-order ranks of packet pts, and their times are ``pts * time_base`` as ffprobe reports them.
Demuxing also catches truncated files early: FFmpeg flags a packet cut short by the end of the file as corrupt,
and an mp4 whose sample table lists more frames than the file holds is short.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

from anymal.errors import InputError
from anymal_video.source import FFMPEG_ERRORS, MediaSource, _reason, python_logging_off


@dataclass(frozen=True)
class StreamIndex:
    """One video stream's frames in presentation order.

    Attributes:
        stream_index: the container's stream number.
        codec: the codec name (``h264``, ``vp9``, ...).
        width: frame width in pixels.
        height: frame height in pixels.
        fps: the average frame rate.
        time_base: seconds per pts unit.
        pts: int64 ``[n]`` presentation timestamps in ``time_base`` units, ascending (``None``: the stream has
            no usable timestamps; frames are then addressed by decode order only).
        keyframe_pts: int64 pts of the keyframes, ascending (seek targets).
        timestamps: float64 ``[n]`` presentation times in seconds.
        is_best: whether this is the container's best video stream (the only one decord can read).
    """

    stream_index: int
    codec: str
    width: int
    height: int
    fps: float
    time_base: Fraction
    pts: np.ndarray | None
    keyframe_pts: np.ndarray
    timestamps: np.ndarray
    is_best: bool = True

    @property
    def n_frames(self) -> int:
        return len(self.timestamps)


def describe_streams(container: av.container.InputContainer) -> str:
    """A one-line listing of the container's streams, e.g. ``#0 video h264 320x180, #1 audio aac``."""
    parts = []
    for stream in container.streams:
        context = stream.codec_context
        codec = context.name if context is not None else "unknown codec"
        size = f" {context.width}x{context.height}" if stream.type == "video" and context is not None else ""
        parts.append(f"#{stream.index} {stream.type} {codec}{size}")
    return ", ".join(parts) or "no streams"


def select_stream(
    container: av.container.InputContainer,
    kind: str,
    stream_index: int | None,
    name: str,
    where: str,
    index_field: str,
):
    """The requested ``kind`` ("video" or "audio") stream, or FFmpeg's best one (``av_find_best_stream``) when
    ``stream_index`` is None. InputError naming the file, its streams and the config field ``index_field`` to set."""
    if stream_index is None:
        try:
            stream = container.streams.best(kind)
        except FFMPEG_ERRORS:
            stream = None
        if stream is None:
            raise InputError(
                f"{where}: {name} has no {kind} {'stream' if kind == 'video' else 'track'} "
                f"(streams: {describe_streams(container)}); expected a file with {kind} in it"
            )
        return stream
    if stream_index >= len(container.streams) or container.streams[stream_index].type != kind:
        candidates = [s.index for s in getattr(container.streams, kind)]
        raise InputError(
            f"{where}: {name} has no {kind} stream #{stream_index} (streams: {describe_streams(container)}); "
            f"set {index_field} to one of {candidates} or None for the best one"
        )
    return container.streams[stream_index]


def select_video_stream(
    container: av.container.InputContainer, stream_index: int | None, name: str, where: str = "video"
) -> av.video.stream.VideoStream:
    """The requested video stream, or FFmpeg's best one when ``stream_index`` is None (see :func:`select_stream`)."""
    return select_stream(container, "video", stream_index, name, where, "stream_index")


def is_still_image_format(format_name: str) -> bool:
    """FFmpeg's still-image demuxers (``image2``, ``png_pipe``, ``jpeg_pipe``, ...); animated GIF is not one."""
    return format_name == "image2" or format_name.endswith("_pipe")


def _stream_fps(stream: av.video.stream.VideoStream, timestamps: np.ndarray) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            return float(rate)
    span = timestamps[-1] - timestamps[0] if len(timestamps) > 1 else 0.0
    return (len(timestamps) - 1) / span if span > 0 else 1.0


@python_logging_off()  # decoders are freed before PyAV's log callback comes back (see source.py)
def probe_video(source: MediaSource, stream_index: int | None = None, where: str = "video") -> StreamIndex:
    """Indexes the frames of one video stream; unreadable, empty or truncated input raises ``InputError``."""
    with source.open(where) as container:
        if is_still_image_format(container.format.name):
            raise InputError(
                f"{where}: {source.name} is a still image ({container.format.name}), not a video; pass it as "
                "image=, or give decoded frames as (frames, fps)"
            )
        stream = select_video_stream(container, stream_index, source.name, where)
        best = container.streams.best("video")
        if stream.codec_context is None:
            raise InputError(
                f"{where}: {source.name} stream #{stream.index} is video in a codec FFmpeg does not know; expected "
                "a decodable video codec (h264, hevc, vp9, av1, mpeg4, ...): re-encode the file"
            )
        codec = stream.codec_context.name
        label = f"{source.name} stream #{stream.index} ({codec})"
        stamps: list[int | None] = []
        keys: list[int | None] = []
        corrupt = 0
        try:
            for packet in container.demux(stream):
                if packet.size == 0:  # the demuxer's end-of-stream marker
                    continue
                corrupt += bool(packet.is_corrupt)
                stamp = packet.pts if packet.pts is not None else packet.dts
                stamps.append(stamp)
                if packet.is_keyframe:
                    keys.append(stamp)
        except FFMPEG_ERRORS as exc:
            raise InputError(
                f"{where}: {label} cannot be demuxed after {len(stamps)} frames "
                f"(PyAV/FFmpeg: {_reason(exc)}); the file is corrupt or truncated"
            ) from None
        declared = stream.frames
        if not stamps:
            raise InputError(f"{where}: {label} has no frames; expected a video with at least one decodable frame")
        if corrupt or (declared and len(stamps) < declared):
            raise InputError(
                f"{where}: {label} is truncated or corrupt: the container lists {declared or 'more'} frames but "
                f"only {len(stamps) - corrupt} could be read; re-download or re-encode the file"
            )
        time_base = stream.time_base or Fraction(1, 1)
        if any(stamp is None for stamp in stamps):
            fps = _stream_fps(stream, np.zeros(0))
            timestamps = np.arange(len(stamps), dtype=np.float64) / fps
            pts, key_pts = None, np.zeros(0, dtype=np.int64)
        else:
            pts = np.sort(np.asarray(stamps, dtype=np.int64))
            key_pts = np.sort(np.asarray([k for k in keys if k is not None], dtype=np.int64))
            timestamps = np.array([float(Fraction(int(p)) * time_base) for p in pts], dtype=np.float64)
            fps = _stream_fps(stream, timestamps)
        return StreamIndex(
            stream_index=stream.index,
            codec=codec,
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            fps=fps,
            time_base=time_base,
            pts=pts,
            keyframe_pts=key_pts,
            timestamps=timestamps,
            is_best=best is not None and best.index == stream.index,
        )
