"""Feeding a video's audio track to the audio plugin: inputs one plugin derives for another.

A plugin may define ``companion_inputs(raw) -> {modality: raw_input}`` (the video plugin returns the audio track
when ``route_audio`` is set). :func:`routed_inputs` applies it to ``generate``-style arguments: each companion
input joins its row's inputs of that modality, and in a prompt that places ``<video>`` but no ``<audio>``, the
audio goes right after its video. Nothing here is video-specific; it is the piece ``AnyMAL.generate`` calls once
the core supports companion inputs, and until then users call it themselves::

    prompt, inputs = routed_inputs(model, "<video> what is said?", video="clip.mp4")
    model.generate(prompt, **inputs, max_new_tokens=32)
"""

from __future__ import annotations

import re
from typing import Any


def _rows(plugin, value: Any, n_rows: int, batched: bool) -> list[list[Any]]:
    if value is None:
        return [[] for _ in range(n_rows)]
    entries = list(value) if batched else [value]
    return [[] if e is None else ([e] if plugin.is_single_input(e) else list(e)) for e in entries]


def _place_after(prompt: str, source: str, target: str, flags: list[bool]) -> str:
    """Appends ``<target>`` after the k-th ``<source>`` placeholder for each k with ``flags[k]``."""
    if f"<{target}>" in prompt or f"<{source}>" not in prompt:
        return prompt  # explicit placement, or none at all: the core's default order applies
    pieces = re.split(f"(<{re.escape(source)}>)", prompt)
    k = 0
    for i, piece in enumerate(pieces):
        if piece == f"<{source}>":
            if k < len(flags) and flags[k]:
                pieces[i] = piece + f"<{target}>"
            k += 1
    return "".join(pieces)


def routed_inputs(model: Any, prompt: str | list[str], **inputs: Any) -> tuple[str | list[str], dict[str, Any]]:
    """``(prompt, inputs)`` for ``model.generate`` with every plugin's companion inputs added.

    A row that already has explicit inputs of a modality keeps them and gets no companions of it.

    Args:
        model: an :class:`anymal.AnyMAL` (only ``plugins`` is used).
        prompt: one prompt or a batch, as ``generate`` takes it.
        **inputs: modality inputs by plugin name, as ``generate`` takes them (per row when batched).
    """
    plugins = model.plugins
    batched = isinstance(prompt, (list, tuple))
    prompts = list(prompt) if batched else [prompt]
    n_rows = len(prompts)
    rows = {name: _rows(plugins[name], value, n_rows, batched) for name, value in inputs.items() if name in plugins}
    added: dict[str, list[list[Any]]] = {}
    for name, per_row in rows.items():
        derive = getattr(plugins[name], "companion_inputs", None)
        if derive is None:
            continue
        for r, items in enumerate(per_row):
            flags: dict[str, list[bool]] = {}
            for i, raw in enumerate(items):
                explicit = {k for k, per in rows.items() if per[r]}
                companions = {k: v for k, v in derive(raw).items() if k in plugins and k not in explicit}
                for other in {*flags, *companions}:
                    flags.setdefault(other, [False] * i).append(other in companions)
                for other, value in companions.items():
                    added.setdefault(other, [[] for _ in range(n_rows)])[r].append(value)
            for other, other_flags in flags.items():
                prompts[r] = _place_after(prompts[r], name, other, other_flags)
    out = dict(inputs)
    for other, per_row in added.items():
        merged = [rows.get(other, [[]] * n_rows)[r] + per_row[r] for r in range(n_rows)]
        out[other] = [m or None for m in merged] if batched else merged[0]
    return (prompts if batched else prompts[0]), out
