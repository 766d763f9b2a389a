"""Feeding a video's audio track to the audio plugin: inputs one plugin derives for another.

A plugin may define ``companion_inputs(raw) -> {modality: raw_input}`` (the video plugin returns the audio track
when ``route_audio`` is set). :func:`add_companion_inputs` applies it to the per-row inputs ``AnyMAL.generate``
builds (a list, one dict per prompt, of modality name -> raw inputs): each companion input joins its row's inputs
of that modality, and in a prompt that places ``<video>`` but no ``<audio>``, the audio goes right after its video.
``AnyMAL.generate`` applies it itself (``anymal.routing``); :func:`routed_inputs` does the same on
``generate``'s arguments, to inspect or edit the routed inputs first::

    prompt, inputs = routed_inputs(model, "<video> what is said?", video="clip.mp4")
    model.generate(prompt, **inputs, max_new_tokens=32)
"""

from __future__ import annotations

from typing import Any

from anymal.routing import add_companion_inputs


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
