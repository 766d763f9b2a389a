"""Synthetic clips of a coloured square moving left, right, up or down, written as H.264 MP4 with PyAV."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from anymal_demo.world.images import jittered_colour

FPS = 8
NUM_FRAMES = 8
STEP = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}


def make_frames(truth: dict[str, str], seed: int, size: int = 64, num_frames: int = NUM_FRAMES) -> np.ndarray:
    """``[num_frames, size, size, 3]`` uint8 frames of a ``truth["colour"]`` square moving ``truth["direction"]``.

    The square crosses about half the frame; its size, speed, start, colour and the background are jittered.
    """
    rng = np.random.default_rng(seed)
    grey = rng.integers(150, 235)
    background = np.clip(grey + rng.normal(0, 8, (size, size, 3)), 0, 255).astype(np.uint8)
    side = int(size * rng.uniform(0.2, 0.28))
    dx, dy = STEP[truth["direction"]]
    travel = size * rng.uniform(0.45, 0.55)
    centre = size / 2 + rng.uniform(-0.05, 0.05, 2) * size
    start = centre - np.array([dx, dy]) * travel / 2
    colour = np.array(jittered_colour(truth["colour"], rng), dtype=np.uint8)
    frames = np.repeat(background[None], num_frames, axis=0)
    for i in range(num_frames):
        x, y = start + np.array([dx, dy]) * travel * i / max(num_frames - 1, 1)
        x0, y0 = round(x - side / 2), round(y - side / 2)
        frames[i, max(y0, 0) : max(y0 + side, 0), max(x0, 0) : max(x0 + side, 0)] = colour
    return frames


def write_mp4(frames: np.ndarray, path: str | Path, fps: int = FPS) -> Path:
    """Encodes ``[T, H, W, 3]`` uint8 frames as an H.264 (yuv420p, near-lossless) MP4 file."""
    path = Path(path)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "10", "preset": "veryfast"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
