"""Chat messages with OpenAI content parts to prompt text with modality placeholders and raw inputs.

Each media part becomes its modality's ``<name>`` placeholder at its place in the text, and its decoded input is
appended to that modality's list, so the n-th ``<image>`` of the conversation takes the n-th image.

Parts: ``text``; ``image_url`` (a data URL; a file path only with ``allow_local_files``); ``input_audio``
(``{"data": base64, "format": "wav"}``, OpenAI's shape); ``video_url`` (as vLLM names it); ``input_imu``
(``{"samples": [[ax, ay, az, gx, gy, gz], ...], "rate": 50}``: anymal's own part, rate in Hz).
"""

from __future__ import annotations

import base64
import binascii
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np

from anymal_serve.errors import APIError
from anymal_serve.limits import Limits, check_media

ROLES = ("system", "user", "assistant", "developer")
# part type -> (the modality plugin it feeds, the key of its payload)
MEDIA_PARTS = {
    "image_url": ("image", "image_url"),
    "input_audio": ("audio", "input_audio"),
    "video_url": ("video", "video_url"),
    "input_imu": ("imu", "input_imu"),
}
_DATA_URL_RE = re.compile(
    r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[^;,]*)*?)(?P<b64>;base64)?,(?P<data>.*)$", re.S
)


@dataclass
class Conversation:
    """Messages as ``{"role", "content"}`` with placeholders, and the raw inputs per modality in order."""

    messages: list[dict[str, str]] = field(default_factory=list)
    inputs: dict[str, list[Any]] = field(default_factory=dict)
    where: dict[str, list[str]] = field(default_factory=dict)  # per modality: the part each input came from


@dataclass
class MediaFile:
    """Bytes of a media file with the suffix its MIME type or name implies (for decoders that need a file)."""

    data: bytes
    suffix: str


def _decode_base64(data: str, param: str) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise APIError(f"{param}: the data is not valid base64", param=param, code="invalid_base64") from None


def _read_url(url: Any, param: str, allow_local_files: bool) -> MediaFile:
    if not isinstance(url, str) or not url:
        raise APIError(f"{param}: expected a URL string", param=param, code="invalid_url")
    if url.startswith("data:"):
        match = _DATA_URL_RE.match(url)
        if match is None:
            raise APIError(
                f"{param}: malformed data URL (expected data:<mime>;base64,<data>)", param=param, code="invalid_url"
            )
        mime = match.group("mime") or ""
        subtype = mime.partition("/")[2].split("+")[0]
        suffix = "." + {"jpeg": "jpg", "quicktime": "mov", "mpeg": "mp3", "x-wav": "wav"}.get(subtype, subtype)
        if match.group("b64"):
            return MediaFile(_decode_base64(match.group("data"), param), suffix if subtype else "")
        return MediaFile(unquote(match.group("data")).encode("latin-1", "replace"), suffix if subtype else "")
    parsed = urlparse(url)
    if parsed.scheme in ("http", "https"):
        raise APIError(
            f"{param}: this server does not fetch http(s) URLs; send the media as a data URL",
            param=param,
            code="unsupported_url",
        )
    if parsed.scheme not in ("", "file"):
        raise APIError(
            f"{param}: unsupported URL scheme {parsed.scheme!r}; send a data URL", param=param, code="unsupported_url"
        )
    if not allow_local_files:
        raise APIError(
            f"{param}: local files are refused (start the server with --allow-local-files to allow them); "
            "send a data URL",
            param=param,
            code="local_files_disabled",
        )
    path = unquote(parsed.path) if parsed.scheme == "file" else url
    if not os.path.isfile(path):
        raise APIError(f"{param}: no such file: {path}", param=param, code="file_not_found")
    with open(path, "rb") as handle:
        return MediaFile(handle.read(), os.path.splitext(path)[1])


def _url_payload(part: dict[str, Any], key: str, param: str) -> Any:
    payload = part.get(key)
    if isinstance(payload, str):  # some clients send the URL bare
        return payload
    if not isinstance(payload, dict) or "url" not in payload:
        raise APIError(f'{param}: a {key} part needs {{"{key}": {{"url": ...}}}}', param=param, code="invalid_part")
    return payload["url"]


def _imu_input(part: dict[str, Any], param: str, max_samples: int) -> tuple[np.ndarray, float]:
    payload = part.get("input_imu")
    if not isinstance(payload, dict):
        raise APIError(
            f'{param}: an input_imu part needs {{"input_imu": {{"samples": [[6 floats], ...], "rate": Hz}}}}',
            param=param,
            code="invalid_part",
        )
    rate = payload.get("rate")
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate) or rate <= 0:
        raise APIError(
            f"{param}: input_imu.rate must be a positive number (Hz), got {rate!r}", param=param, code="invalid_imu"
        )
    samples = payload.get("samples")
    if not isinstance(samples, list) or not samples:
        raise APIError(
            f"{param}: input_imu.samples must be a non-empty list of [ax, ay, az, gx, gy, gz] rows",
            param=param,
            code="invalid_imu",
        )
    if len(samples) > max_samples:
        raise APIError(
            f"{param}: {len(samples)} IMU samples is more than this server takes ({max_samples})",
            param=param,
            code="imu_too_long",
        )
    try:
        array = np.asarray(samples, dtype=np.float32)
    except (TypeError, ValueError):
        raise APIError(
            f"{param}: input_imu.samples must be rows of 6 numbers", param=param, code="invalid_imu"
        ) from None
    if array.ndim != 2 or array.shape[1] != 6:
        raise APIError(
            f"{param}: input_imu.samples must have shape [T, 6] (time-first: ax, ay, az, gx, gy, gz), "
            f"got {list(array.shape)}",
            param=param,
            code="invalid_imu",
        )
    if not np.isfinite(array).all():
        raise APIError(f"{param}: input_imu.samples hold NaN or infinite values", param=param, code="invalid_imu")
    return array, float(rate)


def _media_input(part: dict[str, Any], kind: str, param: str, allow_local_files: bool, max_imu: int) -> Any:
    if kind == "image_url":
        return _read_url(_url_payload(part, "image_url", param), param, allow_local_files).data
    if kind == "video_url":
        return _read_url(_url_payload(part, "video_url", param), param, allow_local_files)
    if kind == "input_audio":
        payload = part.get("input_audio")
        if not isinstance(payload, dict) or not isinstance(payload.get("data"), str):
            raise APIError(
                f'{param}: an input_audio part needs {{"input_audio": {{"data": base64, "format": "wav"}}}}',
                param=param,
                code="invalid_part",
            )
        return _decode_base64(payload["data"], param)
    return _imu_input(part, param, max_imu)


# screen(kind, value, param) -> value: the input safety classifiers (kind "text" or a modality name); it returns
# the value to use (redacted or not) or raises anymal_serve.safety.Refused
Screen = Callable[[str, Any, str], Any]


def parse_messages(
    messages: Any,
    modalities: list[str],
    *,
    allow_local_files: bool = False,
    limits: Limits | None = None,
    screen: Screen | None = None,
) -> Conversation:
    """Checks ``messages`` and splits them into placeholder text and raw inputs; errors name the part.

    Each input is checked against ``limits``; with ``screen``, each user text part and media input goes through the
    input safety classifiers on the way.
    """
    limits = limits or Limits()
    max_imu_samples = limits.max_imu_samples if limits.max_imu_samples is not None else 2**62
    if not isinstance(messages, list) or not messages:
        raise APIError("messages must be a non-empty list", param="messages", code="invalid_messages")
    out = Conversation()
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise APIError(f"{where}: expected an object with role and content", param=where)
        role = message.get("role")
        if role not in ROLES:
            raise APIError(f"{where}.role: expected one of {', '.join(ROLES)}, got {role!r}", param=f"{where}.role")
        content = message.get("content")
        if content is None and role == "assistant":
            content = ""
        if isinstance(content, str):
            parts: list[Any] = [{"type": "text", "text": content}]
        elif isinstance(content, list):
            parts = content
        else:
            raise APIError(f"{where}.content: expected a string or a list of parts", param=f"{where}.content")
        pieces: list[str] = []
        for j, part in enumerate(parts):
            param = f"{where}.content[{j}]"
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                raise APIError(f"{param}: expected a part object with a type", param=param, code="invalid_part")
            kind = part["type"]
            if kind == "text":
                text = part.get("text")
                if not isinstance(text, str):
                    raise APIError(f"{param}: a text part needs a string text", param=param, code="invalid_part")
                if screen is not None and role == "user" and text:
                    text = screen("text", text, param if isinstance(content, list) else f"{where}.content")
                pieces.append(text)
                continue
            if kind not in MEDIA_PARTS:
                known = ", ".join(["text", *MEDIA_PARTS])
                raise APIError(
                    f"{param}: unknown part type {kind!r}; this server takes: {known}",
                    param=param,
                    code="unknown_part_type",
                )
            modality = MEDIA_PARTS[kind][0]
            if modality not in modalities:
                raise APIError(
                    f"{param}: this model has no {modality} modality (a {kind} part); its modalities: "
                    f"{', '.join(modalities) or 'none'}",
                    param=param,
                    code="unsupported_modality",
                )
            if role != "user":
                raise APIError(
                    f"{param}: media parts are taken in user messages only", param=param, code="invalid_part"
                )
            raw = _media_input(part, kind, param, allow_local_files, max_imu_samples)
            check_media(modality, raw, param, limits)
            if screen is not None:
                raw = screen(modality, raw, param)
            out.inputs.setdefault(modality, []).append(raw)
            out.where.setdefault(modality, []).append(param)
            pieces.append(f"<{modality}>")
        out.messages.append({"role": "system" if role == "developer" else role, "content": "".join(pieces)})
    if out.messages[-1]["role"] != "user":
        raise APIError("the last message must be a user message", param=f"messages[{len(messages) - 1}]")
    return out
