"""The audio track of a video file, decoded to mono float32 for the audio plugin.

An :class:`AudioTrack` is a ``(samples, sample_rate)`` named tuple, which is exactly the ``(array, sample_rate)``
pair the audio plugin takes as one input; the audio plugin resamples it to its encoder's rate itself.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import av
import numpy as np

from anymal.errors import InputError
from anymal_video.probe import select_stream
from anymal_video.source import FFMPEG_ERRORS, MediaSource, _reason, python_logging_off


class AudioTrack(NamedTuple):
    """Mono audio: ``samples`` float32 ``[n]`` in [-1, 1] at ``sample_rate`` Hz."""

    samples: np.ndarray
    sample_rate: int

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate


@python_logging_off()  # decoders are freed before PyAV's log callback comes back (see source.py)
def has_audio_track(raw: Any, where: str = "video") -> bool:
    """Whether a video file (path or bytes) has at least one audio stream; unreadable input raises ``InputError``."""
    source = MediaSource.from_raw(raw, where)
    with source.open(where) as container:
        return len(container.streams.audio) > 0


@python_logging_off()  # decoders are freed before PyAV's log callback comes back (see source.py)
def extract_audio_track(raw: Any, stream_index: int | None = None, where: str = "video") -> AudioTrack:
    """Decodes a video's audio track (``stream_index``, default the best audio stream) to mono float32.

    Channels are averaged. Samples keep the track's own rate; nothing is resampled here.

    Args:
        raw: a video file path or its bytes.
        stream_index: the container stream number of the audio track; ``None`` picks FFmpeg's best one.
        where: the input's name in error messages.

    Returns:
        ``AudioTrack(samples, sample_rate)``, unpackable as ``samples, rate = extract_audio_track(path)``.
    """
    source = MediaSource.from_raw(raw, where)
    with source.open(where) as container:
        stream = select_stream(container, "audio", stream_index, source.name, where, "audio_stream_index")
        if stream.codec_context is None:
            raise InputError(f"{where}: {source.name} audio stream #{stream.index} is in a codec FFmpeg does not know")
        label = f"{source.name} audio stream #{stream.index} ({stream.codec_context.name})"
        to_float = av.AudioResampler(format="fltp")  # planar float; keeps the layout and the rate
        chunks: list[np.ndarray] = []
        try:
            for frame in container.decode(stream):
                for converted in to_float.resample(frame):
                    chunks.append(converted.to_ndarray())
            for converted in to_float.resample(None):
                chunks.append(converted.to_ndarray())
        except FFMPEG_ERRORS as exc:
            raise InputError(
                f"{where}: {label} cannot be decoded ({_reason(exc)}); the file is corrupt or truncated"
            ) from None
        rate = stream.codec_context.sample_rate or stream.sample_rate
    if not chunks:
        raise InputError(f"{where}: {label} has no decodable audio samples")
    samples = np.concatenate(chunks, axis=1).astype(np.float32, copy=False)
    return AudioTrack(samples=samples.mean(axis=0, dtype=np.float32), sample_rate=int(rate))
