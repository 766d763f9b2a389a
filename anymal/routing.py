"""Companion inputs: raw inputs one plugin derives for another (e.g. a video's audio track for the audio plugin).

A plugin may return ``{modality: raw_input}`` from ``companion_inputs(raw)``. :func:`add_companion_inputs` applies
it to ``generate``'s per-row inputs: each companion input joins its row's inputs of that modality (a row with
explicit inputs of that modality keeps them), and in a prompt that places ``<video>`` but no ``<audio>``, the
audio goes right after its video. Nothing here is modality-specific.

Training data holds files, not decoded inputs, so there a plugin says which other modalities read the *same file*
(``companion_modalities(raw)``, e.g. the audio plugin decodes a video file's audio track itself), and
:func:`route_example` adds that file to those modalities with the same placement rule. The file is then one more
ordinary media item: the feature cache, batching and error handling need nothing special.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from anymal.errors import InputError
from anymal.records import Example, Turn


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


def route_example(plugins: Mapping[str, Any], example: Example, memo: dict | None = None) -> Example:
    """``example`` with each file that a plugin's ``companion_modalities`` names added to those modalities.

    An example with explicit items of a modality gets no companions for it. In the user turns, ``<audio>`` goes
    right after the ``<video>`` it came from, unless the example places ``<audio>`` itself (like ``generate``). A
    file that cannot be probed routes nothing: its own plugin reports it when the example is loaded. ``memo``
    (a dict kept by the caller) remembers each file's answer, so a file is probed once, not once per epoch.
    """
    explicit = {name for name, refs in example.media.items() if refs}
    media = {name: list(refs) for name, refs in example.media.items()}
    flags: dict[tuple[str, str], list[bool]] = {}
    for name, refs in example.media.items():
        companions_of = getattr(plugins.get(name), "companion_modalities", None)
        if companions_of is None:
            continue
        for i, ref in enumerate(refs):
            key = (name, ref)
            if memo is None or key not in memo:
                try:
                    found = tuple(companions_of(ref.raw()))
                except InputError:
                    found = ()
                if memo is not None:
                    memo[key] = found
            else:
                found = memo[key]
            others = [m for m in found if m in plugins and m not in explicit]
            for other in others:
                media.setdefault(other, []).append(ref)
            for other in {*(o for (n, o) in flags if n == name), *others}:
                flags.setdefault((name, other), [False] * i).append(other in others)
    if not flags or not any(any(f) for f in flags.values()):
        return example
    turns = list(example.turns)
    for (source, target), source_flags in flags.items():
        seen = 0
        for t, turn in enumerate(turns):
            if turn.role != "user":
                continue
            count = turn.text.count(f"<{source}>")
            turns[t] = Turn(turn.role, _place_after(turn.text, source, target, source_flags[seen : seen + count]))
            seen += count
    return dataclasses.replace(example, turns=turns, media=media)
