"""Row formats: how one raw row of each supported dataset layout becomes an :class:`Example`.

* :class:`PairFormat`: alignment pairs (one media item + a caption). The user turn is ``"<image>\\n{instruction}"``
  with the instruction drawn from a pool (``AlignmentTask.instruction_pool()``); the assistant turn is the caption.
* :class:`LlavaFormat`: LLaVA conversations, ``{"id", "image": "x.jpg", "conversations": [{"from": "human",
  "value": "<image>\\nWhat ...?"}, {"from": "gpt", "value": "..."}]}``. Rows without the media key are text-only.
* :class:`M3ITFormat`: M3IT rows, ``{"instruction", "inputs", "outputs", "image_base64_str": [...]}``.
* :class:`ConversationFormat`: anymal's own multi-modality JSONL schema::

      {"id": "ex1",
       "media": {"image": ["a.jpg"], "imu": ["walk.npy", "run.npy"]},
       "conversations": [{"role": "user", "content": "<image>\\n<imu> then <imu>: what happened?"},
                         {"role": "assistant", "content": "..."}]}

  ``role``/``content`` or LLaVA's ``from``/``value`` are both accepted; a media value is one string or a list.
  The i-th ``<name>`` placeholder (user turns read in order) stands for ``media[name][i]``.

Rules common to all: turns alternate user/assistant, start with a user turn and end with an assistant turn, and no
turn is empty. No text field (caption, turn, instruction) is longer than :data:`MAX_TEXT_CHARS` characters or holds
a lone surrogate (a ``\\ud800`` JSON escape): either is a bad row naming the file, line and field. A modality
with items but no placeholder gets its placeholders prepended to the first user turn, one per line (LLaVA's
convention); otherwise the placeholder count must equal the item count, and placeholders may not appear in
assistant turns.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anymal.config import check_choice
from anymal.data.media_refs import MEDIA_ENCODINGS, media_ref
from anymal.data.report import RowError
from anymal.data.rows import Row
from anymal.records import Example, MediaRef, Turn, placeholder

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")

# The longest text field a row may hold, in characters: 100k characters are about 25k LLaMA tokens, six times
# LLaMA-2's 4096-token context, so a longer caption or turn can never be trained on whole. Rows over it are bad rows
# (reason "text_too_long") instead of a tokeniser grinding through megabytes and the batch failing far from its row.
MAX_TEXT_CHARS = 100_000
_ROLE_NAMES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "model": "assistant"}


def _fail(row: Row, field_name: str, reason: str, problem: str) -> RowError:
    return RowError(row.source, row.line, field_name, reason, problem)


def check_text(row: Row, field_name: str, text: str) -> None:
    """A text field's length (at most :data:`MAX_TEXT_CHARS`) and Unicode validity, as row errors."""
    if len(text) > MAX_TEXT_CHARS:
        problem = f"{len(text)} characters long; expected at most {MAX_TEXT_CHARS} (anymal.data.formats.MAX_TEXT_CHARS)"
        raise _fail(row, field_name, "text_too_long", problem)
    found = _SURROGATE_RE.search(text)
    if found is not None:
        problem = f"lone surrogate U+{ord(found.group()):04X} at position {found.start()}; expected valid Unicode text"
        raise _fail(row, field_name, "bad_text", problem)


def get_text(row: Row, key: str, required: bool = True, what: str = "text") -> str:
    """A string field of a row, stripped; missing/None, non-string and (if required) empty values are errors."""
    value = row.data.get(key)
    if value is None:
        if required:
            raise _fail(row, key, "missing_field", f"missing; expected {what}")
        return ""
    if not isinstance(value, str):
        raise _fail(row, key, "wrong_type", f"expected {what} (a string), got {type(value).__name__}")
    check_text(row, key, value)
    value = value.strip()
    if required and not value:
        raise _fail(row, key, "empty_field", f"empty; expected non-empty {what}")
    return value


def _as_list(row: Row, key: str, value: Any) -> list[Any]:
    if isinstance(value, list | tuple):
        return list(value)
    if isinstance(value, str | bytes | dict):
        return [value]
    raise _fail(row, key, "wrong_type", f"expected a media value or a list of them, got {type(value).__name__}")


@dataclass(frozen=True)
class MediaOptions:
    """How media values of a row are read.

    Attributes:
        media_root: folder relative paths resolve against (default: the data file's folder).
        encoding: ``"auto"``, ``"path"`` or ``"base64"`` (see ``anymal.data.media_refs.looks_like_base64``).
        check_files: check at read time that files exist, are readable and non-empty.
    """

    media_root: str | os.PathLike | None = None
    encoding: str = "auto"
    check_files: bool = True

    def __post_init__(self) -> None:
        check_choice(self.encoding, MEDIA_ENCODINGS, "media_encoding")

    def refs(self, row: Row, key: str, value: Any) -> list[MediaRef]:
        values = _as_list(row, key, value)
        single = len(values) == 1 and not isinstance(value, list | tuple)
        return [
            media_ref(v, row, key if single else f"{key}[{i}]", self.media_root, self.encoding, self.check_files)
            for i, v in enumerate(values)
        ]


def parse_conversation(row: Row, key: str = "conversations") -> list[Turn]:
    """LLaVA-style (``from``/``value``) or chat-style (``role``/``content``) turns of a row."""
    turns_raw = row.data.get(key)
    if turns_raw is None:
        raise _fail(row, key, "missing_field", "missing; expected a list of turns")
    if not isinstance(turns_raw, list):
        raise _fail(row, key, "wrong_type", f"expected a list of turns, got {type(turns_raw).__name__}")
    turns = []
    for i, turn in enumerate(turns_raw):
        where = f"{key}[{i}]"
        if not isinstance(turn, dict):
            raise _fail(row, where, "wrong_type", f"expected an object with from/value, got {type(turn).__name__}")
        role_key = "from" if "from" in turn else "role"
        text_key = "value" if "value" in turn else "content"
        role = turn.get(role_key)
        if role is None:
            raise _fail(row, f"{where}.from", "missing_field", "missing; expected the speaker (human/gpt)")
        if not isinstance(role, str) or role not in _ROLE_NAMES:
            choices = ", ".join(sorted(_ROLE_NAMES))
            raise _fail(row, f"{where}.{role_key}", "bad_conversation", f"unknown role {role!r}; expected {choices}")
        text = turn.get(text_key)
        if text is None:
            raise _fail(row, f"{where}.value", "missing_field", "missing; expected the turn's text")
        if not isinstance(text, str):
            raise _fail(row, f"{where}.{text_key}", "wrong_type", f"expected a string, got {type(text).__name__}")
        check_text(row, f"{where}.{text_key}", text)
        if not text.strip():
            raise _fail(row, f"{where}.{text_key}", "empty_field", "empty turn text")
        turns.append(Turn(_ROLE_NAMES[role], text.strip()))
    return turns


def finish_example(
    row: Row,
    turns: list[Turn],
    media: dict[str, list[MediaRef]],
    field_name: str = "conversations",
    modalities: Sequence[str] = (),
    example_id: str | None = None,
) -> Example:
    """Checks turn order and placeholder counts (prepending missing placeholders) and builds the Example."""
    if not turns:
        raise _fail(row, field_name, "bad_conversation", "no turns; expected at least a user and an assistant turn")
    for i, turn in enumerate(turns):
        expected = "user" if i % 2 == 0 else "assistant"
        if turn.role != expected:
            problem = f"turn {i} is from the {turn.role}; expected alternating turns starting with the user"
            raise _fail(row, field_name, "bad_conversation", problem)
    if turns[-1].role != "assistant":
        raise _fail(row, field_name, "bad_conversation", "the last turn is from the user; expected an answer last")
    media = {name: items for name, items in media.items() if items}
    prefix = []
    for name in dict.fromkeys([*media, *modalities]):
        tag = placeholder(name)
        if any(tag in t.text for t in turns if t.role == "assistant"):
            raise _fail(row, field_name, "placeholder_mismatch", f"{tag} appears in an assistant turn")
        count = sum(t.text.count(tag) for t in turns if t.role == "user")
        items = len(media.get(name, ()))
        if count == 0 and items:
            prefix += [tag] * items
        elif count != items:
            problem = f"has {count} {tag} placeholder(s) but {items} {name} item(s)"
            raise _fail(row, field_name, "placeholder_mismatch", problem)
    if prefix:
        turns[0] = Turn("user", "\n".join([*prefix, turns[0].text]))
    targets = _targets(row)
    return Example(turns=turns, media=media, source=row.source, line=row.line, id=example_id, targets=targets)


def _targets(row: Row) -> dict[str, list[Any]]:
    """The row's ``targets`` (labels of output plugins: ``{"loc": [[x0, y0, x1, y1], null, ...]}``), shape-checked;
    each label is checked by its plugin when the example is prepared."""
    raw = row.data.get("targets")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problem = f"expected a mapping {{output plugin: [label, ...]}}, got {type(raw).__name__}"
        raise _fail(row, "targets", "wrong_type", problem)
    targets = {}
    for name, labels in raw.items():
        if not isinstance(labels, list):
            problem = f"expected a list with one label per trigger token, got {type(labels).__name__}"
            raise _fail(row, f"targets.{name}", "wrong_type", problem)
        targets[str(name)] = labels
    return targets


def _row_id(row: Row, key: str | None) -> str | None:
    if key is None or row.data.get(key) is None:
        return None
    return str(row.data[key])


@dataclass(frozen=True)
class PairFormat:
    """Alignment pairs: ``{media_key: path-or-base64, caption_key: "..."}`` (JSONL/JSON/CSV/parquet).

    The instruction of example ``line`` in pass ``epoch`` is drawn with ``random.Random(f"{seed}:{epoch}:{name}:
    {line}")`` where ``name`` is the data file's name: reproducible, independent of which other rows were skipped
    and of the order examples are consumed in, and different from one epoch to the next.
    """

    modality: str
    media_key: str
    caption_key: str = "caption"
    instructions: tuple[str, ...] = ()
    seed: int = 0
    media: MediaOptions = field(default_factory=MediaOptions)
    id_key: str | None = "id"

    def __post_init__(self) -> None:
        if not self.instructions:
            raise ValueError("PairFormat: the instruction pool is empty")

    def instruction_for(self, row: Row, epoch: int = 0) -> str:
        rng = random.Random(f"{self.seed}:{epoch}:{Path(row.source).name}:{row.line}")
        return self.instructions[rng.randrange(len(self.instructions))]

    def __call__(self, row: Row, epoch: int = 0) -> Example:
        caption = get_text(row, self.caption_key, what="caption text")
        value = row.data.get(self.media_key)
        if value is None:
            raise _fail(row, self.media_key, "missing_field", f"missing; expected the {self.modality} (path or base64)")
        refs = self.media.refs(row, self.media_key, value)
        if not refs:
            raise _fail(row, self.media_key, "empty_field", f"no {self.modality} given")
        tags = "\n".join([placeholder(self.modality)] * len(refs))
        turns = [Turn("user", f"{tags}\n{self.instruction_for(row, epoch)}"), Turn("assistant", caption)]
        return Example(turns, {self.modality: refs}, row.source, row.line, _row_id(row, self.id_key))


@dataclass(frozen=True)
class LlavaFormat:
    """LLaVA instruction data; rows without ``media_key`` are text-only conversations."""

    modality: str = "image"
    media_key: str = "image"
    conversations_key: str = "conversations"
    media: MediaOptions = field(default_factory=MediaOptions)
    id_key: str | None = "id"

    def __call__(self, row: Row, epoch: int = 0) -> Example:
        turns = parse_conversation(row, self.conversations_key)
        value = row.data.get(self.media_key)
        refs = [] if value is None else self.media.refs(row, self.media_key, value)
        media = {self.modality: refs}
        return finish_example(row, turns, media, self.conversations_key, (self.modality,), _row_id(row, self.id_key))


@dataclass(frozen=True)
class M3ITFormat:
    """M3IT rows: the user turn is the images' placeholders, the instruction and the inputs; the answer ``outputs``."""

    modality: str = "image"
    media_key: str = "image_base64_str"
    media: MediaOptions = field(default_factory=lambda: MediaOptions(encoding="base64"))
    id_key: str | None = None

    def __call__(self, row: Row, epoch: int = 0) -> Example:
        instruction = get_text(row, "instruction", what="instruction text")
        inputs = get_text(row, "inputs", required=False)
        outputs = get_text(row, "outputs", what="answer text")
        value = row.data.get(self.media_key)
        refs = [] if value is None else self.media.refs(row, self.media_key, value)
        prompt = "\n".join([placeholder(self.modality)] * len(refs) + [instruction] + ([inputs] if inputs else []))
        turns = [Turn("user", prompt), Turn("assistant", outputs)]
        return Example(turns, {self.modality: refs} if refs else {}, row.source, row.line, _row_id(row, self.id_key))


@dataclass(frozen=True)
class ConversationFormat:
    """anymal's multi-modality conversation rows (schema in the module docstring).

    ``modalities`` lists extra modality names whose placeholders must match (zero) items even when a row's
    ``media`` omits them, catching ``<audio>`` written in a prompt whose row forgot the audio.
    """

    modalities: tuple[str, ...] = ()
    media_key: str = "media"
    conversations_key: str = "conversations"
    media: MediaOptions = field(default_factory=MediaOptions)
    id_key: str | None = "id"

    def __call__(self, row: Row, epoch: int = 0) -> Example:
        turns = parse_conversation(row, self.conversations_key)
        raw = row.data.get(self.media_key)
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            problem = f"expected an object mapping modality names to media, got {type(raw).__name__}"
            raise _fail(row, self.media_key, "wrong_type", problem)
        media = {}
        for name, value in raw.items():
            if not _NAME_RE.match(str(name)):
                problem = f"modality name {name!r} is not a plugin name (a lowercase identifier like 'image')"
                raise _fail(row, self.media_key, "wrong_type", problem)
            if value is None:
                continue
            media[name] = self.media.refs(row, f"{self.media_key}.{name}", value)
        return finish_example(row, turns, media, self.conversations_key, self.modalities, _row_id(row, self.id_key))
