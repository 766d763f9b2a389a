"""Synthetic pictures: one coloured shape (circle, square or triangle) on a noisy background, at a known place."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

# Base RGB of each colour name; every picture jitters it so that no two shapes have exactly the same colour.
RGB = {"red": (215, 40, 40), "green": (40, 170, 60), "blue": (40, 70, 215), "yellow": (230, 210, 40)}

# Where the shape's centre lies, as fractions of the picture (x, y), before jitter.
ANCHORS = {"left": (0.25, 0.5), "right": (0.75, 0.5), "top": (0.5, 0.25), "bottom": (0.5, 0.75)}


def jittered_colour(name: str, rng: np.random.Generator, spread: int = 25) -> tuple[int, int, int]:
    """The base colour of ``name`` with each channel moved by up to ``spread``."""
    return tuple(int(np.clip(c + rng.integers(-spread, spread + 1), 0, 255)) for c in RGB[name])


def noisy_background(size: int, rng: np.random.Generator) -> Image.Image:
    """A light grey background of random brightness with per-pixel noise."""
    grey = rng.integers(150, 235)
    pixels = np.clip(grey + rng.normal(0, 8, (size, size, 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels)


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, centre: tuple[float, float], radius: float, fill) -> None:
    """Draws a filled circle, square or (upward) triangle of half-size ``radius`` around ``centre``."""
    x, y = centre
    box = (x - radius, y - radius, x + radius, y + radius)
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    elif shape == "triangle":
        draw.polygon([(x, y - radius), (x + radius, y + radius), (x - radius, y + radius)], fill=fill)
    else:
        raise ValueError(f"unknown shape {shape!r}; expected circle, square or triangle")


def make_image(truth: dict[str, str], seed: int, size: int = 64) -> Image.Image:
    """The picture of ``truth`` (``colour``, ``shape``, ``position``), reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    image = noisy_background(size, rng)
    fx, fy = ANCHORS[truth["position"]]
    radius = size * rng.uniform(0.17, 0.19)
    centre = (size * (fx + rng.uniform(-0.06, 0.06)), size * (fy + rng.uniform(-0.06, 0.06)))
    draw_shape(ImageDraw.Draw(image), truth["shape"], centre, radius, jittered_colour(truth["colour"], rng))
    return image
