"""Reading one audio clip from whatever a user has: a path, bytes, ``(array, sample_rate)``, or a datasets row.

Files go through soundfile (libsndfile: wav, flac, ogg/vorbis/opus, aiff, ...) or PyAV (FFmpeg: mp3, aac, m4a, and
the audio track of video containers such as mp4/mkv/webm). Everything comes back as float32 ``[frames, channels]``
plus its sample rate; every failure is an ``InputError`` that names the input and what was expected, because a
silently half-decoded or misread clip poisons training data without anyone noticing. Sample rates, given with an
array or read from a file header, must be integers from ``MIN_SAMPLE_RATE`` (1 kHz) to ``MAX_SAMPLE_RATE``
(768 kHz); messages about a rate name the clip's length in samples.
"""

from __future__ import annotations

import io
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
import soundfile as sf
import torch

from anymal.errors import InputError

# Suffixes decoded by libsndfile first; everything else (and what libsndfile cannot open) goes to PyAV.
SOUNDFILE_SUFFIXES = frozenset(
    {".wav", ".wave", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".aifc", ".au", ".w64", ".rf64", ".caf"}
)
# Accepted sample rates in Hz: from old 4-8 kHz formats up to the 768 kHz of the fastest PCM converters. Rates
# outside are unit mistakes (kHz for Hz) or corrupt headers, and a tiny clip at a huge rate resamples to nothing.
MIN_SAMPLE_RATE = 1_000
MAX_SAMPLE_RATE = 768_000
# The most channels a 2-D array may have; above this neither axis can be the channel axis.
MAX_CHANNELS = 16
# Declared data sizes that streaming writers use when they do not know the length (not a truncation).
_UNKNOWN_SIZES = frozenset({0, 0xFFFFFFFF, 0x7FFFFFFF, 0xFFFFFFFF - 0xFFF})
_SNDFILE_TRUNCATION = re.compile(r"^(?:data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
# PyAV decoding shorter than this fraction of the container's declared duration counts as truncated.
_MIN_DECODED_FRACTION = 0.9

AudioInput = Any  # str | os.PathLike | bytes | (array, sample_rate) | {"array", "sampling_rate"} | {"path", "bytes"}


@dataclass(frozen=True)
class Waveform:
    """Decoded audio: ``samples`` is float32 ``[frames, channels]`` at ``sample_rate`` Hz; ``source`` names it."""

    samples: np.ndarray
    sample_rate: int
    source: str

    @property
    def duration_s(self) -> float:
        return self.samples.shape[0] / self.sample_rate


def _integer_to_float(array: np.ndarray) -> np.ndarray:
    """Scales integer PCM to [-1, 1) the way soundfile and FFmpeg do (unsigned 8-bit is offset by 128)."""
    if array.dtype == np.uint8:
        return (array.astype(np.float32) - 128.0) / 128.0
    info = np.iinfo(array.dtype)
    return (array.astype(np.float64) / float(-info.min)).astype(np.float32)


def _as_float32(array: np.ndarray, where: str) -> np.ndarray:
    if array.dtype == np.bool_ or array.dtype.kind not in "iuf":
        raise InputError(f"{where}: expected real-valued audio samples (float or integer PCM), got dtype {array.dtype}")
    if array.dtype.kind in "iu":
        return _integer_to_float(array)
    return array.astype(np.float32, copy=False)


def _check_sample_rate(sample_rate: Any, where: str, frames: int | None = None) -> int:
    """A sample rate as int Hz within ``[MIN_SAMPLE_RATE, MAX_SAMPLE_RATE]``, or ``InputError`` naming it.

    ``frames`` (the clip length in samples) goes into the message, since a wrong rate is often a swapped pair.
    """
    clip = f" (clip of {frames} samples)" if frames is not None else ""
    expected = f"a positive integer in Hz between {MIN_SAMPLE_RATE} and {MAX_SAMPLE_RATE}"
    if isinstance(sample_rate, torch.Tensor) and sample_rate.numel() == 1:
        sample_rate = sample_rate.item()
    if isinstance(sample_rate, np.generic):
        sample_rate = sample_rate.item()
    if isinstance(sample_rate, (str, bytes)):
        raise InputError(
            f"{where}{clip}: sample rate must be {expected}, got the string {sample_rate!r}; pass it as a number"
        )
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, float)):
        raise InputError(f"{where}{clip}: sample rate must be {expected}, got {sample_rate!r}")
    if not math.isfinite(sample_rate) or sample_rate <= 0 or not float(sample_rate).is_integer():
        raise InputError(f"{where}{clip}: sample rate must be {expected}, got {sample_rate!r}")
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise InputError(
            f"{where}{clip}: sample rate {int(sample_rate)} Hz is outside the accepted range; expected {expected}"
            + (" (was it given in kHz?)" if sample_rate < MIN_SAMPLE_RATE else "")
        )
    return int(sample_rate)


def _checked_rate(wave: Waveform) -> Waveform:
    """``wave`` if its (decoded) sample rate is within bounds; a file header can declare any rate."""
    _check_sample_rate(wave.sample_rate, wave.source, wave.samples.shape[0])
    return wave


def _frames_by_channels(array: np.ndarray, where: str) -> np.ndarray:
    """``[frames, channels]`` from a 1-D array or a 2-D ``[frames, channels]`` / ``[channels, frames]`` array.

    The shorter axis is taken as channels (audio has far more frames than channels); square arrays follow
    soundfile's ``[frames, channels]`` convention.
    """
    if array.ndim == 1:
        return array[:, None]
    if array.ndim != 2:
        raise InputError(
            f"{where}: expected a 1-D [samples] or 2-D [samples, channels] / [channels, samples] array, "
            f"got shape {tuple(array.shape)}"
        )
    if min(array.shape) > MAX_CHANNELS:
        raise InputError(
            f"{where}: array of shape {tuple(array.shape)} has no channel axis of at most {MAX_CHANNELS}; "
            "expected [samples, channels] or [channels, samples]"
        )
    return array.T if array.shape[0] < array.shape[1] else array


def from_array(array: Any, sample_rate: Any, where: str = "audio array") -> Waveform:
    """A ``Waveform`` from an in-memory numpy array or torch tensor at ``sample_rate`` Hz."""
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu()
        if array.is_complex():
            raise InputError(f"{where}: expected real-valued audio samples, got a tensor of dtype {array.dtype}")
        array = (array.float() if array.is_floating_point() else array).numpy()
    elif isinstance(array, (list, tuple)):
        array = np.asarray(array)
    if not isinstance(array, np.ndarray):
        raise InputError(f"{where}: expected a numpy array or torch tensor of samples, got {type(array).__name__}")
    samples = _frames_by_channels(_as_float32(array, where), where)
    rate = _check_sample_rate(sample_rate, where, samples.shape[0])
    return Waveform(np.ascontiguousarray(samples), rate, where)


def _check_sndfile_truncation(handle: sf.SoundFile, where: str) -> None:
    """Refuses files whose header declares more audio data than the file holds (libsndfile silently shortens)."""
    match = _SNDFILE_TRUNCATION.search(handle.extra_info or "")
    if match is None:
        return
    declared, present = int(match.group(1)), int(match.group(2))
    if declared not in _UNKNOWN_SIZES and declared > present:
        raise InputError(
            f"{where}: truncated {handle.format} file: its header declares {declared} bytes of audio data but the "
            f"file holds only {present}; re-export or re-download it"
        )


def _decode_soundfile(source: str | io.BytesIO, where: str) -> Waveform | str:
    """Decodes with libsndfile, or returns why libsndfile cannot open it (then PyAV gets a try)."""
    try:
        handle = sf.SoundFile(source)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        return str(getattr(exc, "error_string", None) or exc)
    with handle:
        if handle.format == "MP3":  # MPEG audio goes through FFmpeg, like every other compressed container
            return "MPEG audio is decoded with PyAV"
        _check_sndfile_truncation(handle, where)
        try:
            samples = handle.read(dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise InputError(f"{where}: corrupt or truncated {handle.format} audio (soundfile: {exc})") from None
        if handle.frames > 0 and samples.shape[0] < handle.frames and handle.seekable():
            raise InputError(
                f"{where}: truncated {handle.format} audio: header declares {handle.frames} frames, "
                f"only {samples.shape[0]} could be decoded"
            )
        return Waveform(samples, int(handle.samplerate), where)


def _frame_to_array(frame: av.AudioFrame) -> np.ndarray:
    """``[channels, samples]`` float32 from one decoded PyAV frame, planar or packed, float or integer."""
    array = frame.to_ndarray()
    channels = frame.layout.nb_channels
    if not frame.format.is_planar:
        array = array.reshape(-1, channels).T
    if array.dtype.kind in "iu":
        return _integer_to_float(array)
    return array.astype(np.float32, copy=False)


def _declared_duration(container: av.container.InputContainer, stream: av.AudioStream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def _decode_pyav(source: str | io.BytesIO, where: str) -> Waveform:
    """Decodes the best audio stream of any FFmpeg-readable file or container with PyAV."""
    with av.open(source, mode="r") as container:
        if not container.streams.audio:
            kinds = ", ".join(sorted({s.type for s in container.streams})) or "none"
            raise InputError(f"{where}: the {container.format.name} container has no audio stream (streams: {kinds})")
        stream = container.streams.best("audio") or container.streams.audio[0]
        chunks: list[np.ndarray] = []
        rate = 0
        for frame in container.decode(stream):
            if frame.samples == 0:
                continue
            if rate and frame.sample_rate != rate:
                raise InputError(
                    f"{where}: the audio stream changes sample rate mid-stream ({rate} -> {frame.sample_rate} Hz)"
                )
            rate = frame.sample_rate
            chunk = _frame_to_array(frame)
            if chunks and chunk.shape[0] != chunks[0].shape[0]:
                raise InputError(f"{where}: the audio stream changes channel count mid-stream")
            chunks.append(chunk)
        if not chunks:
            raise InputError(
                f"{where}: the {stream.codec_context.name} audio stream decodes to no samples; "
                "expected a non-empty clip"
            )
        samples = np.concatenate(chunks, axis=1).T
        declared = _declared_duration(container, stream)
    decoded = samples.shape[0] / rate
    if declared is not None and declared > 1.0 and decoded < _MIN_DECODED_FRACTION * declared:
        raise InputError(
            f"{where}: truncated or corrupt audio: the container declares {declared:.2f} s but only {decoded:.2f} s "
            f"decoded ({stream.codec_context.name} via PyAV)"
        )
    return Waveform(np.ascontiguousarray(samples), rate, where)


def _decode(source: str | bytes, where: str, suffix: str) -> Waveform:
    """Tries libsndfile (for its formats) then PyAV; if both fail the error names both decoders' complaints."""

    def opened() -> str | io.BytesIO:
        return io.BytesIO(source) if isinstance(source, bytes) else source

    sndfile_error = None
    if suffix in SOUNDFILE_SUFFIXES or suffix == "":
        decoded = _decode_soundfile(opened(), where)
        if isinstance(decoded, Waveform):
            return _checked_rate(decoded)
        sndfile_error = decoded
    try:
        return _checked_rate(_decode_pyav(opened(), where))
    except av.error.FFmpegError as exc:
        detail = getattr(exc, "strerror", None) or str(exc)
        tried = f"soundfile: {sndfile_error}; PyAV/FFmpeg: {detail}" if sndfile_error else f"PyAV/FFmpeg: {detail}"
        raise InputError(
            f"{where}: not a readable audio file ({tried}); expected wav/flac/ogg (soundfile) or "
            "mp3/aac/m4a or a video container with an audio track (PyAV)"
        ) from None


def decode_file(path: str | os.PathLike) -> Waveform:
    """Decodes an audio file (or the audio track of a video file) from disk."""
    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise InputError(f"{where}: audio file not found" if not path.exists() else f"{where}: not a regular file")
    if path.stat().st_size == 0:
        raise InputError(f"{where}: the file is empty (0 bytes); expected an audio file")
    return _decode(str(path), where, path.suffix.lower())


def decode_bytes(data: bytes | bytearray | memoryview, where: str | None = None) -> Waveform:
    """Decodes an in-memory encoded audio file (any format soundfile or PyAV can sniff)."""
    data = bytes(data)
    where = where or f"<{len(data)} bytes of audio>"
    if not data:
        raise InputError(f"{where}: no bytes given; expected an encoded audio file")
    return _decode(data, where, Path(where).suffix.lower() if where and not where.startswith("<") else "")


def _from_mapping(raw: dict, where: str, default_sample_rate: int | None) -> Waveform:
    """A Hugging Face ``datasets`` Audio row: ``{"array", "sampling_rate"}`` or ``{"path", "bytes"}``."""
    if "array" in raw:
        if raw.get("sampling_rate") is None:
            raise InputError(f"{where}['sampling_rate']: missing; an audio array needs its sample rate in Hz")
        return from_array(raw["array"], raw["sampling_rate"], f"{where}['array']")
    if raw.get("bytes") is not None:
        return decode_bytes(raw["bytes"], str(raw.get("path") or f"{where}['bytes']"))
    if raw.get("path") is not None:
        return decode_file(raw["path"])
    raise InputError(
        f"{where}: expected a mapping with 'array' and 'sampling_rate', or 'path' / 'bytes'; got keys {sorted(raw)}"
    )


def load_audio(raw: AudioInput, default_sample_rate: int | None = None, where: str = "audio") -> Waveform:
    """Decodes one raw audio input of any supported kind into a ``Waveform``.

    Args:
        raw: a file path, encoded bytes, an ``(array, sample_rate)`` pair, or a ``datasets`` Audio mapping. A bare
            array or tensor is accepted only when ``default_sample_rate`` says what rate it is at.
        default_sample_rate: the sample rate assumed for bare arrays; ``None`` refuses them, since a wrong rate
            silently changes pitch and duration.
        where: how errors name this input when it has no file name of its own.

    Raises:
        InputError: the input is missing, unreadable, truncated, of an unknown kind, or lacks a sample rate.
    """
    if isinstance(raw, (str, os.PathLike)):
        return decode_file(raw)
    if isinstance(raw, (bytes, bytearray, memoryview)):
        return decode_bytes(raw)
    if isinstance(raw, dict):
        return _from_mapping(raw, where, default_sample_rate)
    if isinstance(raw, (tuple, list)):
        if len(raw) != 2:
            raise InputError(
                f"{where}: expected an (array, sample_rate) pair, got a {type(raw).__name__} of {len(raw)} items"
            )
        return from_array(raw[0], raw[1], f"{where} (array, sample_rate) pair")
    if isinstance(raw, (np.ndarray, torch.Tensor)):
        if default_sample_rate is None:
            raise InputError(
                f"{where}: a bare {type(raw).__name__} has no sample rate; pass (array, sample_rate) "
                "or set the plugin's array_sample_rate"
            )
        return from_array(raw, default_sample_rate, f"{where} array")
    raise InputError(
        f"{where}: expected a path, bytes, (array, sample_rate) pair or a datasets Audio mapping, "
        f"got {type(raw).__name__}"
    )
