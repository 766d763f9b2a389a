"""Builds the bad-input suite's fixture files into a folder: ``python -m tests.bad_inputs.build_fixtures DIR``.

Each file is named after what is wrong with it. Suites add builders here (one small function each) and read the
files through the ``bad_files`` fixture.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

BUILDERS: dict[str, Callable[[Path], None]] = {}


def builder(name: str):
    """Registers a function that writes the fixture file ``name`` (given its full path)."""

    def register(function: Callable[[Path], None]) -> Callable[[Path], None]:
        BUILDERS[name] = function
        return function

    return register


@builder("config_not_utf8.json")
def _not_utf8(path: Path) -> None:
    path.write_bytes(b'{"format": "anymal", "name": "caf\xe9"}')


@builder("config_list.json")
def _list_json(path: Path) -> None:
    path.write_text(json.dumps([1, 2, 3]))


# --- media (tests/bad_inputs/test_bad_media.py) ----------------------------------------------------------------


def _png(width: int, height: int, bit_depth: int, rows: bytes) -> bytes:
    """A greyscale PNG with the given header and (zlib-compressed) scanlines, written by hand."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, bit_depth, 0, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


@builder("image_bomb.png")
def _image_bomb(path: Path) -> None:
    """A 200-byte PNG declaring 20000 x 20000 pixels (beyond PIL's own bomb limit): decoding would need 400 MB."""
    path.write_bytes(_png(20_000, 20_000, 8, b"\x00" * 20_001))


@builder("image_large_header.png")
def _image_large_header(path: Path) -> None:
    """10000 x 10000 = 1e8 pixels: over anymal's MAX_IMAGE_PIXELS, under twice PIL's limit."""
    path.write_bytes(_png(10_000, 10_000, 8, b"\x00" * 10_001))


def _gradient() -> list[list[int]]:
    """A 32 x 64 8-bit grey picture: a horizontal ramp 0..252 plus a vertical ramp, mean well away from white."""
    return [[min(255, 4 * x + y) for x in range(64)] for y in range(32)]


@builder("image_grey8.png")
def _image_grey8(path: Path) -> None:
    rows = b"".join(b"\x00" + bytes(row) for row in _gradient())
    path.write_bytes(_png(64, 32, 8, rows))


@builder("image_grey16.png")
def _image_grey16(path: Path) -> None:
    """The same picture as image_grey8.png at 16 bits (each value times 257), which PIL opens as mode I;16."""
    rows = b"".join(b"\x00" + b"".join((v * 257).to_bytes(2, "big") for v in row) for row in _gradient())
    path.write_bytes(_png(64, 32, 16, rows))


@builder("image_truncated.png")
def _image_truncated(path: Path) -> None:
    rows = b"".join(b"\x00" + bytes(row) for row in _gradient())
    whole = _png(64, 32, 8, rows)
    path.write_bytes(whole[: len(whole) // 2])


def _wav(sample_rate: int, samples: list[float]) -> bytes:
    """A 32-bit float mono WAV at ``sample_rate`` Hz (any rate the header can hold), written by hand."""
    import struct

    data = struct.pack(f"<{len(samples)}f", *samples)
    fmt = struct.pack("<HHIIHH", 3, 1, sample_rate, sample_rate * 4, 4, 32)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


@builder("audio_3_samples_at_4MHz.wav")
def _audio_huge_rate(path: Path) -> None:
    path.write_bytes(_wav(4_000_000, [0.0, 0.1, -0.1]))


@builder("audio_at_2Hz.wav")
def _audio_tiny_rate(path: Path) -> None:
    path.write_bytes(_wav(2, [0.0] * 16))


@builder("audio_nan.wav")
def _audio_nan(path: Path) -> None:
    path.write_bytes(_wav(16_000, [0.0] * 100 + [float("nan")] * 3 + [0.0] * 100))


@builder("imu_nan.csv")
def _imu_nan(path: Path) -> None:
    rows = [",".join(["0.1"] * 6)] * 40 + [",".join(["nan"] + ["0.1"] * 5)] + [",".join(["0.1"] * 6)] * 40
    path.write_text("ax,ay,az,gx,gy,gz\n" + "\n".join(rows) + "\n")


@builder("imu_header_only.csv")
def _imu_header_only(path: Path) -> None:
    path.write_text("ax,ay,az,gx,gy,gz\n")


@builder("imu_not_utf8.csv")
def _imu_not_utf8(path: Path) -> None:
    path.write_bytes(b"ax,ay,az,gx,gy,gz\n0.1,0.2,0.3,0.4,0.5,\xff\xfe\n")


@builder("imu_ragged.csv")
def _imu_ragged(path: Path) -> None:
    path.write_text("0.1,0.2,0.3,0.4,0.5,0.6\n0.1,0.2,0.3\n")


# --- data rows (test_bad_rows.py) --------------------------------------------------------------------------------
TOY_INPUT = "1 2 3 4 5 6 7 8\n"  # one valid input of the toy plugin (8 numbers)


@builder("toy_input.txt")
def _toy_input(path: Path) -> None:
    path.write_text(TOY_INPUT)


@builder("rows_caption_10mb.jsonl")
def _caption_10mb(path: Path) -> None:
    """Line 2 holds a 10 MB caption between two good pair rows (media: toy_input.txt beside it)."""
    good = json.dumps({"toy": "toy_input.txt", "caption": "a toy signal"})
    huge = json.dumps({"toy": "toy_input.txt", "caption": "word " * 2_000_000})
    path.write_text(f"{good}\n{huge}\n{good}\n")


@builder("rows_undecodable_base64.jsonl")
def _undecodable_base64(path: Path) -> None:
    """Line 2's media is valid base64 of bytes no decoder reads (a truncated PNG header and noise)."""
    import base64

    padded = TOY_INPUT.encode() + b" " * 48  # 64+ base64 characters: read as inline media, not a file name
    good = json.dumps({"toy": base64.b64encode(padded).decode(), "caption": "a toy signal"})
    noise = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 2).decode()
    bad = json.dumps({"toy": noise, "caption": "broken bytes"})
    path.write_text(f"{good}\n{bad}\n")


def build(folder: str | Path) -> Path:
    """Writes every registered fixture into ``folder`` (created if needed) and returns it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, function in BUILDERS.items():
        function(folder / name)
    return folder


if __name__ == "__main__":
    out = build(sys.argv[1] if len(sys.argv) > 1 else "bad_inputs")
    print(f"{len(BUILDERS)} fixture files in {out}")
