"""Evaluation data: one :class:`EvalItem` per row, from anymal's eval JSONL schema or its training-data readers.

The eval schema (JSONL, a JSON list, CSV/TSV or parquet; one row per question)::

    {"id": "q1",
     "media": {"image": "photos/cat.jpg"},          # or "image": "photos/cat.jpg" at the top level;
                                                    # a path (relative to the data file), base64, or a list
     "question": "What is the cat doing?",          # or "prompt": the full prompt, used verbatim
     "answers": ["sleeping", "sleeping", ...],      # references: "answers" | "references" | "answer" | "caption"
     "options": ["sleeping", "eating", "running"],  # multiple choice; with "answer" the right one: its index,
                                                    # its letter ("B") or its text
     "label": "walking",                            # classification: the right label
     "box": [10, 20, 200, 180]}                     # REC: the box of "expression" (pixels; "image_size": [w, h])

``question`` is put into the task's prompt template (e.g. VQAv2 adds "Answer the question using a single word or
phrase."); ``prompt`` is used as it is. Placeholders (``<image>``) may appear in either; without one, the media's
tokens go first. Rows in a training layout (``pairs``, ``llava``, ``m3it``, ``m3it_tasks``, ``conversations``; see
:mod:`anymal.data`) are read with those readers: the last user turn is the prompt and the assistant's answer the
reference. Malformed rows raise a :class:`anymal.DataError` naming file, line and field.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anymal.data import read_dataset
from anymal.data.formats import MediaOptions, check_text, get_text
from anymal.data.report import RowError
from anymal.data.rows import Row, iter_rows
from anymal.errors import DataError
from anymal.records import MediaRef

DATA_KINDS = ("eval", "pairs", "llava", "m3it", "m3it_tasks", "conversations")
REFERENCE_KEYS = ("answers", "references", "answer", "caption", "captions")


@dataclass
class EvalItem:
    """One evaluation question.

    Attributes:
        id: the row's ``id`` (else its line number), which keys its prediction.
        prompt: the prompt text used verbatim (when the row gives ``prompt``), else None.
        question: the question put into the task's template, else None.
        media: per modality the raw-input references its placeholders stand for.
        references: reference answers / captions.
        options: the choices of a multiple-choice item.
        answer: the index of the right option.
        label: the right label of a classification item.
        box: the ground-truth box of a referring expression, ``[x0, y0, x1, y1]`` in pixels of the image.
        image_size: ``(width, height)`` of that image, when the row gives it (else read from the image).
        extra: the row's other fields (kept in the predictions file).
        location: ``file:line``.
    """

    id: str
    prompt: str | None = None
    question: str | None = None
    media: dict[str, list[MediaRef]] = field(default_factory=dict)
    references: list[str] = field(default_factory=list)
    options: list[str] | None = None
    answer: int | None = None
    label: str | None = None
    box: list[float] | None = None
    image_size: tuple[float, float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    location: str = ""

    def gold_label(self) -> str | None:
        """The right label of a classification item: ``label``, else the right one of its ``options``."""
        if self.label is not None:
            return self.label
        if self.options is not None and self.answer is not None:
            return self.options[self.answer]
        return None

    def raw_media(self) -> dict[str, list[Any]]:
        """The media as the raw inputs plugins take (paths or bytes)."""
        return {name: [ref.raw() for ref in refs] for name, refs in self.media.items() if refs}


def _fail(row: Row, key: str, reason: str, problem: str) -> RowError:
    return RowError(row.source, row.line, key, reason, problem)


def _texts(row: Row, key: str, value: Any) -> list[str]:
    values = value if isinstance(value, list) else [value]
    out = []
    for i, v in enumerate(values):
        where = key if not isinstance(value, list) else f"{key}[{i}]"
        if isinstance(v, dict) and isinstance(v.get("answer"), str):  # VQA annotation layout {"answer": ...}
            v = v["answer"]
        if isinstance(v, int | float) and not isinstance(v, bool):
            v = str(v)
        if not isinstance(v, str):
            raise _fail(row, where, "wrong_type", f"expected text, got {type(v).__name__}")
        check_text(row, where, v)
        out.append(v.strip())
    return out


def _numbers(row: Row, key: str, n: int) -> list[float]:
    value = row.data[key]
    ok = isinstance(value, list) and len(value) == n
    ok = ok and all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    if not ok:
        raise _fail(row, key, "wrong_type", f"expected a list of {n} finite numbers, got {value!r}")
    return [float(v) for v in value]


def _answer_index(row: Row, value: Any, options: list[str]) -> int:
    n = len(options)
    if isinstance(value, bool):
        raise _fail(row, "answer", "wrong_type", "expected an option index, letter or text, got a boolean")
    if isinstance(value, int):
        index = value
    elif isinstance(value, str) and value.strip() in options:
        index = options.index(value.strip())
    elif isinstance(value, str) and len(value.strip()) == 1 and value.strip().isalpha():
        index = ord(value.strip().upper()) - ord("A")
    else:
        raise _fail(row, "answer", "bad_answer", f"{value!r} is neither an option's index, letter nor text")
    if not 0 <= index < n:
        raise _fail(row, "answer", "bad_answer", f"{value!r} points outside the {n} options")
    return index


class EvalFormat:
    """Turns one eval-schema row into an :class:`EvalItem` (see the module docstring)."""

    def __init__(self, modalities: Sequence[str] = (), media_root: str | os.PathLike | None = None) -> None:
        self.modalities = tuple(modalities)
        self.media = MediaOptions(media_root)

    def __call__(self, row: Row) -> EvalItem:
        data = row.data
        if not isinstance(data, dict):
            raise _fail(row, "<row>", "wrong_type", f"expected an object, got {type(data).__name__}")
        prompt = get_text(row, "prompt", required=False) or None
        question = get_text(row, "question", required=False) or get_text(row, "expression", required=False) or None
        media: dict[str, list[MediaRef]] = {}
        raw_media = data.get("media")
        if raw_media is not None and not isinstance(raw_media, dict):
            raise _fail(row, "media", "wrong_type", f"expected an object of modality -> media, got {type(raw_media)}")
        for name, value in (raw_media or {}).items():
            if value is not None:
                media[str(name)] = self.media.refs(row, f"media.{name}", value)
        for name in self.modalities:
            if name in data and data[name] is not None and name not in media:
                media[name] = self.media.refs(row, name, data[name])
        references: list[str] = []
        for key in REFERENCE_KEYS:
            if key in data and data[key] is not None and not (key == "answer" and "options" in data):
                references = _texts(row, key, data[key])
                break
        options = answer = None
        if data.get("options") is not None:
            options = _texts(row, "options", data["options"])
            if len(options) < 2:
                raise _fail(row, "options", "bad_options", f"{len(options)} option(s); expected at least 2")
            if data.get("answer") is not None:
                answer = _answer_index(row, data["answer"], options)
                references = [options[answer]]
        label = None
        if data.get("label") is not None:
            label = _texts(row, "label", data["label"])[0]
        box = _numbers(row, "box", 4) if data.get("box") is not None else None
        if box is not None and not (box[2] > box[0] and box[3] > box[1]):
            raise _fail(row, "box", "bad_box", f"{box} is not [x0, y0, x1, y1] with x1 > x0 and y1 > y0")
        size = _numbers(row, "image_size", 2) if data.get("image_size") is not None else None
        if size is not None and min(size) <= 0:
            raise _fail(row, "image_size", "bad_box", f"{size}: expected [width, height] > 0")
        used = {"id", "prompt", "question", "expression", "media", "options", "label", "box", "image_size",
                *REFERENCE_KEYS, *self.modalities}  # fmt: skip
        extra = {k: v for k, v in data.items() if k not in used and isinstance(v, str | int | float | bool | None)}
        item_id = str(data["id"]) if data.get("id") is not None else f"line{row.line}"
        return EvalItem(item_id, prompt, question, media, references, options, answer, label, box,
                        (size[0], size[1]) if size else None, extra, f"{row.source}:{row.line}")  # fmt: skip


def _from_examples(examples: Iterable[Any]) -> list[EvalItem]:
    items = []
    for example in examples:
        if len(example.turns) < 2 or example.turns[-1].role != "assistant":
            raise DataError(f"{example.location}: expected a conversation ending with the assistant's answer")
        prompt = example.turns[-2].text
        if len(example.turns) > 2:
            raise DataError(
                f"{example.location}: {len(example.turns)} turns; evaluation takes one question and one answer per "
                "row (split multi-turn conversations into rows)"
            )
        items.append(
            EvalItem(
                id=example.id or f"line{example.line}",
                prompt=prompt,
                media={k: list(v) for k, v in example.media.items()},
                references=[example.turns[-1].text],
                location=example.location,
            )
        )
    return items


def read_eval_items(
    source: str | os.PathLike | Sequence[Mapping[str, Any]],
    kind: str = "eval",
    modalities: Sequence[str] = (),
    media_root: str | os.PathLike | None = None,
    **reader_kwargs: Any,
) -> list[EvalItem]:
    """All items of an eval data file (or a list of row dicts), in file order.

    Args:
        source: the data file, or rows in memory.
        kind: ``"eval"`` (the schema above) or a training layout read by :func:`anymal.data.read_dataset`.
        modalities: the model's modality names (top-level keys like ``"image"`` are media of the eval schema).
        media_root: folder relative media paths resolve against (default: the data file's folder).
        **reader_kwargs: passed to the training-layout reader (``modality=`` for ``pairs``, ...).
    """
    if kind not in DATA_KINDS:
        raise DataError(f"unknown data kind {kind!r}; expected one of {', '.join(DATA_KINDS)}")
    if isinstance(source, str | os.PathLike) and not Path(source).exists():
        raise DataError(f"data file {str(source)!r} does not exist")
    if kind != "eval":
        if media_root is not None and kind != "m3it":
            reader_kwargs["media_root"] = media_root
        if kind == "conversations":
            reader_kwargs.setdefault("modalities", list(modalities))
        if kind == "m3it_tasks":  # an M3IT collection manifest: each instance's stored instruction, not a draw
            reader_kwargs.setdefault("resample_instructions", False)
        return _from_examples(read_dataset(kind, source, **reader_kwargs))
    row_format = EvalFormat(modalities, media_root)
    items: list[EvalItem] = []
    rows = iter_rows(source if isinstance(source, str | os.PathLike) else list(source), None, "rows", None)
    for row in rows:
        if row.error is not None:
            raise row.error
        items.append(row_format(row))
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise DataError(f"{item.location}: id {item.id!r} appears twice; ids key the predictions, so they must "
                            "be unique")  # fmt: skip
        seen.add(item.id)
    return items
