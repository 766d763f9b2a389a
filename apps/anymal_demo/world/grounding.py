"""Synthetic grounding scenes: a few coloured shapes anywhere on a noisy background, each with its box and mask.

The demo's one-shape pictures put their shape at one of four anchors, so a model could "ground" it by naming the
anchor. Grounding needs more: here each scene holds ``shapes`` objects of distinct colours and shapes, placed at
random without overlapping, of random sizes; a referring expression (``"the red circle"``) picks one of them. Boxes
are the tightest pixel boxes around the rendered masks (``[x0, y0, x1, y1]``, a pixel at column x covering
``[x, x + 1)``, as ``anymal_box.boxes_from_masks``), so box and mask labels agree exactly with the picture.

A constant box (the mean training box) matches few targets, which is what makes REC Acc@0.5 and mask IoU on these
scenes evidence of grounding rather than of a prior.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from anymal_demo.world.images import RGB, draw_shape, jittered_colour, noisy_background

SHAPES = ("circle", "square", "triangle")
COLOURS = tuple(RGB)


@dataclass(frozen=True)
class SceneObject:
    """One shape of a scene: its attributes, tight pixel box ``[x0, y0, x1, y1]`` and bool mask ``[H, W]``."""

    colour: str
    shape: str
    box: tuple[int, int, int, int]
    mask: np.ndarray

    @property
    def expression(self) -> str:
        """The referring expression that picks this object out of its scene (colours are unique per scene)."""
        return f"the {self.colour} {self.shape}"


@dataclass(frozen=True)
class Scene:
    """A picture and its objects (in drawing order; they never overlap)."""

    image: Image.Image
    objects: tuple[SceneObject, ...]


def _overlaps(a: tuple[float, ...], b: tuple[float, ...], margin: float) -> bool:
    return not (a[2] + margin <= b[0] or b[2] + margin <= a[0] or a[3] + margin <= b[1] or b[3] + margin <= a[1])


def _mask_of(shape: str, centre: tuple[float, float], radius: float, size: int) -> np.ndarray:
    canvas = Image.new("L", (size, size), 0)
    draw_shape(ImageDraw.Draw(canvas), shape, centre, radius, 255)
    return np.asarray(canvas) > 127


def _place(
    rng: random.Random, size: int, shapes: int, min_radius: float, max_radius: float
) -> list[tuple[tuple[float, float], float]]:
    """Centres and radii of ``shapes`` shapes whose outlines are at least two pixels apart (whole layouts are
    redrawn until one fits)."""
    for _ in range(1000):
        layout: list[tuple[tuple[float, float], float]] = []
        outlines: list[tuple[float, float, float, float]] = []
        for _ in range(shapes):
            radius = size * rng.uniform(min_radius, max_radius)
            centre = (rng.uniform(radius, size - radius), rng.uniform(radius, size - radius))
            outline = (centre[0] - radius, centre[1] - radius, centre[0] + radius, centre[1] + radius)
            if any(_overlaps(outline, other, 2.0) for other in outlines):
                break
            layout.append((centre, radius))
            outlines.append(outline)
        else:
            return layout
    raise ValueError(f"cannot place {shapes} shapes of radius {min_radius}-{max_radius} in a {size}px scene")


def make_scene(seed: int, size: int = 64, shapes: int = 2, min_radius: float = 0.12, max_radius: float = 0.2) -> Scene:
    """A scene of ``shapes`` objects with distinct colours and shapes, reproducible from ``seed``.

    Radii are fractions of ``size``; centres are uniform where the whole shape fits, redrawn until the objects'
    boxes are at least two pixels apart.
    """
    if not 1 <= shapes <= min(len(SHAPES), len(COLOURS)):
        raise ValueError(f"shapes={shapes}: expected 1 to {min(len(SHAPES), len(COLOURS))}")
    rng = random.Random(seed)
    nprng = np.random.default_rng(rng.getrandbits(32))
    image = noisy_background(size, nprng)
    draw = ImageDraw.Draw(image)
    colours = rng.sample(COLOURS, shapes)
    kinds = rng.sample(SHAPES, shapes)
    placed = _place(rng, size, shapes, min_radius, max_radius)
    objects = []
    for colour, kind, (centre, radius) in zip(colours, kinds, placed):
        draw_shape(draw, kind, centre, radius, jittered_colour(colour, nprng))
        mask = _mask_of(kind, centre, radius, size)
        ys, xs = np.nonzero(mask)
        box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        objects.append(SceneObject(colour, kind, box, mask))
    return Scene(image, tuple(objects))


def scenes(
    count: int, seed: int, size: int = 64, shapes: int = 2, radius: tuple[float, float] = (0.12, 0.2)
) -> list[tuple[Scene, SceneObject]]:
    """``count`` (scene, referred object) pairs; the referred object is drawn uniformly from its scene."""
    rng = random.Random(f"grounding:{seed}")
    out = []
    for _ in range(count):
        scene = make_scene(rng.getrandbits(32), size, shapes, *radius)
        out.append((scene, rng.choice(scene.objects)))
    return out


def write_trigger_rows(
    folder: Path,
    split: str,
    scene_pairs: list[tuple[Scene, SceneObject]],
    prompt: Callable[[str], str],
    answer: str,
    targets: Callable[[SceneObject], dict[str, Any]],
    extra: Callable[[SceneObject], dict[str, Any]] | None = None,
) -> Path:
    """Writes ``folder/<split>.jsonl`` training rows for an output plugin (``python -m anymal.train``'s conversation
    schema with ``targets``) and their PNGs under ``folder/media``: per (scene, referred object), the user turn
    ``prompt(expression)``, the assistant turn ``answer`` (its trigger tokens) and ``targets(object)`` as labels;
    ``extra(object)`` adds fields (e.g. the expression) for scoring."""
    media = folder / "media"
    media.mkdir(parents=True, exist_ok=True)
    path = folder / f"{split}.jsonl"
    with path.open("w") as handle:
        for n, (scene, target) in enumerate(scene_pairs):
            image = media / f"{split}-{n:04d}.png"
            scene.image.save(image)
            row: dict[str, Any] = {
                "id": f"{split}-{n}",
                "media": {"image": [str(image)]},
                "conversations": [
                    {"role": "user", "content": prompt(target.expression)},
                    {"role": "assistant", "content": answer},
                ],
                "targets": targets(target),
                **(extra(target) if extra is not None else {}),
            }
            handle.write(json.dumps(row) + "\n")
    return path
