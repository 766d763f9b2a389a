"""Decoding selected frames with PyAV (FFmpeg): keyframe seeks between far-apart frames, exact pts matching.

Frames are converted with ``VideoFrame.to_ndarray(format="rgb24")``, which reproduces ffmpeg's own RGB reference
frames bit for bit. Only the frames asked for are converted to RGB; frames between them are decoded (codecs need
them) but skipped, and a jump past the next keyframe seeks instead of decoding the frames in between.
"""

from __future__ import annotations

import av
import numpy as np

from anymal.errors import InputError
from anymal_video.probe import StreamIndex
from anymal_video.source import FFMPEG_ERRORS, MediaSource, _reason, python_logging_off


class _PtsMismatch(Exception):
    """The decoder's frame timestamps disagree with the demuxer's packet timestamps (decode in order instead)."""


def _configure(stream: av.video.stream.VideoStream, threads: int) -> None:
    stream.thread_type = "AUTO"
    if threads:
        stream.codec_context.thread_count = threads


def _rgb(frame: av.VideoFrame) -> np.ndarray:
    return frame.to_ndarray(format="rgb24")


def _decode_error(label: str, position: int, seconds: float, decoded: int, reason: str, where: str) -> InputError:
    if decoded == 0:
        return InputError(f"{where}: {label} has no decodable frames ({reason}); expected a playable video")
    return InputError(
        f"{where}: {label} stops decoding at frame {position} ({seconds:.3f} s) after {decoded} good frames "
        f"({reason}); the file is corrupt or truncated"
    )


def _decode_by_pts(
    container: av.container.InputContainer, stream, index: StreamIndex, wanted: np.ndarray, label: str, where: str
) -> dict[int, np.ndarray]:
    out: dict[int, np.ndarray] = {}
    frames = None
    position: int | None = None  # pts of the last frame the decoder returned
    decoded = 0
    for i in wanted.tolist():
        target = int(index.pts[i])
        k = np.searchsorted(index.keyframe_pts, target, side="right") - 1
        key = int(index.keyframe_pts[k]) if k >= 0 else int(index.pts[0])
        if frames is None or position is None or key > position:
            if frames is not None or key > int(index.pts[0]):
                container.seek(target, stream=stream, backward=True, any_frame=False)
                stream.codec_context.flush_buffers()
            frames = container.decode(stream)
        found = None
        try:
            for frame in frames:
                decoded += 1
                if frame.pts is None:
                    raise _PtsMismatch
                position = frame.pts
                if frame.pts >= target:
                    found = frame
                    break
        except FFMPEG_ERRORS as exc:
            raise _decode_error(label, i, index.timestamps[i], decoded, _reason(exc), where) from None
        if found is None:
            reason = "the decoder returned no more frames"
            raise _decode_error(label, i, index.timestamps[i], decoded, reason, where)
        if found.pts != target:
            raise _PtsMismatch
        out[i] = _rgb(found)
    return out


def _decode_in_order(
    container: av.container.InputContainer, stream, index: StreamIndex, wanted: np.ndarray, label: str, where: str
) -> dict[int, np.ndarray]:
    out: dict[int, np.ndarray] = {}
    wanted_set, last = set(wanted.tolist()), int(wanted.max())
    position = decoded = 0
    try:
        for position, frame in enumerate(container.decode(stream)):
            decoded += 1
            if position in wanted_set:
                out[position] = _rgb(frame)
            if position >= last:
                break
    except FFMPEG_ERRORS as exc:
        seconds = index.timestamps[min(decoded, index.n_frames - 1)]
        raise _decode_error(label, decoded, seconds, decoded, _reason(exc), where) from None
    if len(out) < len(wanted_set):
        missing = min(wanted_set - set(out))
        reason = "the decoder returned fewer frames than the container holds"
        raise _decode_error(label, missing, index.timestamps[missing], decoded, reason, where)
    return out


@python_logging_off()  # decoders are freed before PyAV's log callback comes back (see source.py)
def decode_pyav(
    source: MediaSource, index: StreamIndex, indices: np.ndarray, threads: int = 0, where: str = "video"
) -> np.ndarray:
    """RGB frames ``[len(indices), H, W, 3]`` uint8 at the given presentation-order positions (repeats allowed).

    Args:
        source: the encoded video.
        index: its stream index from :func:`anymal_video.probe.probe_video`.
        indices: frame positions in ``[0, index.n_frames)``.
        threads: decoder threads (0: FFmpeg chooses).
        where: the input's name in error messages.
    """
    indices = np.asarray(indices, dtype=np.int64)
    wanted = np.unique(indices)
    label = f"{source.name} stream #{index.stream_index} ({index.codec})"
    out = None
    if index.pts is not None:
        with source.open(where) as container:
            stream = container.streams[index.stream_index]
            _configure(stream, threads)
            try:
                out = _decode_by_pts(container, stream, index, wanted, label, where)
            except _PtsMismatch:
                out = None  # e.g. codecs whose frames do not map 1:1 to packets: count frames from the start
    if out is None:
        with source.open(where) as container:
            stream = container.streams[index.stream_index]
            _configure(stream, threads)
            out = _decode_in_order(container, stream, index, wanted, label, where)
    return np.stack([out[i] for i in indices.tolist()])
