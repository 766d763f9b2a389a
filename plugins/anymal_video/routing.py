"""Feeding a video's audio track to the audio plugin: inputs one plugin derives for another.

A plugin may define ``companion_inputs(raw) -> {modality: raw_input}`` (the video plugin returns the audio track
when ``route_audio`` is set). :func:`add_companion_inputs` applies it to the per-row inputs ``AnyMAL.generate``
builds (a list, one dict per prompt, of modality name -> raw inputs): each companion input joins its row's inputs
of that modality, and in a prompt that places ``<video>`` but no ``<audio>``, the audio goes right after its video.
Nothing here is video-specific: it is meant to move into the core's ``generate`` as is. Until then,
:func:`routed_inputs` does the same on ``generate``'s own arguments::

    prompt, inputs = routed_inputs(model, "<video> what is said?", video="clip.mp4")
    model.generate(prompt, **inputs, max_new_tokens=32)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any


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


def add_companion_inputs(
    plugins: Mapping[str, Any], prompts: list[str] | None, per_row: list[dict[str, list[Any]]]
) -> tuple[list[str] | None, list[dict[str, list[Any]]]]:
    """Adds every plugin's companion inputs to each row; a row with explicit inputs of a modality keeps them.

    Args:
        plugins: the model's plugins by name (``AnyMAL.plugins``).
        prompts: one prompt per row, or ``None`` (``input_ids`` given: sentinels then follow modality order).
        per_row: per row, modality name -> list of raw inputs (as ``generate`` builds it); not modified.

    Returns:
        The prompts with ``<audio>`` placed after each ``<video>`` that brought one (when the prompt places videos
        but no audio), and the completed per-row inputs.
    """
    prompts = list(prompts) if prompts is not None else None
    rows = [{name: list(items) for name, items in row.items()} for row in per_row]
    for r, row in enumerate(per_row):
        explicit = {name for name, items in row.items() if items}
        for name, items in row.items():
            derive = getattr(plugins.get(name), "companion_inputs", None)
            if derive is None:
                continue
            flags: dict[str, list[bool]] = {}
            for i, raw in enumerate(items):
                companions = {k: v for k, v in derive(raw).items() if k in plugins and k not in explicit}
                for other in {*flags, *companions}:
                    flags.setdefault(other, [False] * i).append(other in companions)
                for other, value in companions.items():
                    rows[r].setdefault(other, []).append(value)
            if prompts is not None:
                for other, other_flags in flags.items():
                    prompts[r] = _place_after(prompts[r], name, other, other_flags)
    return prompts, rows


def routed_inputs(model: Any, prompt: str | list[str], **inputs: Any) -> tuple[str | list[str], dict[str, Any]]:
    """``(prompt, inputs)`` for ``model.generate`` with every plugin's companion inputs added.

    Args:
        model: an :class:`anymal.AnyMAL` (only ``plugins`` is used).
        prompt: one prompt or a batch, as ``generate`` takes it.
        **inputs: modality inputs by plugin name, as ``generate`` takes them (one entry per row when batched).
    """
    plugins = model.plugins
    batched = isinstance(prompt, (list, tuple))
    prompts = list(prompt) if batched else [prompt]
    per_row: list[dict[str, list[Any]]] = [{} for _ in prompts]
    for name, value in inputs.items():
        if name not in plugins or value is None:
            continue
        for r, entry in enumerate(list(value) if batched else [value]):
            single = entry is not None and plugins[name].is_single_input(entry)
            per_row[r][name] = [] if entry is None else ([entry] if single else list(entry))
    prompts, rows = add_companion_inputs(plugins, prompts, per_row)
    out = dict(inputs)
    for name in {k for row in rows for k in row}:
        per = [row.get(name, []) for row in rows]
        if [len(items) for items in per] != [len(row.get(name, [])) for row in per_row]:  # companions were added
            out[name] = [items or None for items in per] if batched else per[0]
    return (prompts if batched else prompts[0]), out
