"""Per-request limits on what one request may ask of the model, checked before it is queued.

Sizes are read from the media's headers (PIL for an image's size, soundfile or PyAV for a duration) without
decoding them: a request over a limit gets a 400 naming its part at once. Media a header reader cannot open pass
on, and the modality plugin's own decoder reports them (``invalid_media``).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from anymal_serve.errors import APIError


@dataclass
class Limits:
    """The server's per-request limits (``None``: no limit). The body size limit (413) is checked separately."""

    max_pixels: int | None = 4096 * 4096  # width x height of one image
    max_audio_seconds: float | None = 600.0
    max_video_seconds: float | None = 600.0
    max_imu_samples: int | None = 100_000
    max_tokens: int | None = 4096  # the largest max_tokens a request may ask for
    max_stop: int = 4  # stop sequences per request (OpenAI's limit)


def _too_big(param: str, what: str, got: str, limit: str, code: str) -> APIError:
    return APIError(f"{param}: {what} is {got}, over this server's limit of {limit}", param=param, code=code)


def image_pixels(data: bytes) -> int | None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError, ValueError):
        return None
    return int(width) * int(height)


def media_seconds(data: bytes) -> float | None:
    """The duration of an audio or video file in seconds, from its header (None when it cannot be read)."""
    try:
        import soundfile

        info = soundfile.info(io.BytesIO(data))
        return float(info.frames) / float(info.samplerate)
    except Exception:  # not a format libsndfile reads: try PyAV
        pass
    try:
        import av

        with av.open(io.BytesIO(data)) as container:
            if container.duration is not None:
                return float(container.duration) / 1_000_000
            for stream in container.streams:
                if stream.duration is not None and stream.time_base is not None:
                    return float(stream.duration * stream.time_base)
    except Exception:  # PyAV raises its own error types per failure (InvalidDataError, ...): the decoder reports
        return None
    return None


def check_media(modality: str, raw: Any, param: str, limits: Limits) -> None:
    """Raises a 400 naming ``param`` when one input is over a limit (IMU samples are counted as they are read)."""
    if modality == "image" and limits.max_pixels is not None:
        pixels = image_pixels(raw)
        if pixels is not None and pixels > limits.max_pixels:
            raise _too_big(param, "the image", f"{pixels} pixels", f"{limits.max_pixels}", "image_too_large")
    elif modality in ("audio", "video"):
        limit = limits.max_audio_seconds if modality == "audio" else limits.max_video_seconds
        if limit is None:
            return
        data = raw if isinstance(raw, bytes) else raw.data
        seconds = media_seconds(data)
        if seconds is not None and seconds > limit:
            raise _too_big(param, f"the {modality}", f"{seconds:.1f} s long", f"{limit:g} s", f"{modality}_too_long")
