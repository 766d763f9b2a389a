"""The one typed record every training-data format is normalised into.

Whatever the file looked like (caption pairs, LLaVA conversations, M3IT rows, our multi-modality JSONL), a reader
yields :class:`Example` objects: alternating user/assistant :class:`Turn` s whose text marks where each modality
item goes with a placeholder (``<image>``, ``<audio>``, ``<imu>``, ``<video>``: ``<`` + plugin name + ``>``), and,
per modality, the list of :class:`MediaRef` s those placeholders stand for, in order of appearance. Keeping the
file and line on every example lets a training run point at the exact row that broke it.

The records live in the core, below :mod:`anymal.data` (which re-exports them): prompt processing and input
routing work on turns and examples too, and must not depend on the dataset readers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROLES = ("system", "user", "assistant")


def placeholder(modality: str) -> str:
    """The prompt text that marks one item of ``modality``, e.g. ``placeholder("image") == "<image>"``."""
    return f"<{modality}>"


@dataclass(frozen=True)
class Turn:
    """One message of a conversation.

    Attributes:
        role: ``"user"`` (prompts, may contain modality placeholders), ``"assistant"`` (the trained response) or
            ``"system"`` (a system prompt, rendered by the chat template).
        text: the message text.
    """

    role: str
    text: str

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"Turn.role={self.role!r}: expected one of {', '.join(ROLES)}")
        if not isinstance(self.text, str):
            raise TypeError(f"Turn.text: expected a str, got {type(self.text).__name__}")


@dataclass(frozen=True)
class MediaRef:
    """One media item: a local file or the bytes of an inline (base64-decoded) file, never a URL.

    Exactly one of ``path`` and ``data`` is set. ``raw()`` gives what a plugin's ``preprocess`` accepts.

    Attributes:
        path: an absolute (already resolved) path to a local file.
        data: the decoded bytes of an inline file.
    """

    path: Path | None = None
    data: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if (self.path is None) == (self.data is None):
            raise ValueError("MediaRef: set exactly one of path and data")
        if self.path is not None and not isinstance(self.path, Path):
            object.__setattr__(self, "path", Path(self.path))

    @property
    def is_inline(self) -> bool:
        """Whether the item is inline bytes rather than a file."""
        return self.data is not None

    def raw(self) -> str | bytes:
        """The path as a string, or the bytes: the raw input a modality plugin's ``preprocess`` takes."""
        return self.data if self.data is not None else str(self.path)

    def read_bytes(self) -> bytes:
        """The item's bytes (reads the file for a path)."""
        if self.data is not None:
            return self.data
        assert self.path is not None  # __post_init__ checked that exactly one of path and data is set
        return self.path.read_bytes()

    def __repr__(self) -> str:
        if self.data is not None:
            return f"MediaRef(data=<{len(self.data)} bytes>)"
        return f"MediaRef(path={str(self.path)!r})"


@dataclass
class Example:
    """One training example in the shared format.

    Attributes:
        turns: alternating user/assistant turns, starting with a user turn and ending with an assistant turn.
        media: per modality name, the items its placeholders stand for, in the order the placeholders appear
            (reading all user turns first to last).
        source: the data file (or dataset) the example came from.
        line: the 1-based line (JSONL, CSV, JSON) or row (parquet, in-memory datasets) of the example.
        id: the row's own id when it has one.
        targets: labels for output plugins (box / mask heads), per output plugin name: one entry per trigger
            token (``[LOC]``) in the assistant turns, in reading order, ``None`` where a trigger has no label.
            What an entry looks like is the plugin's business (``OutputPlugin.prepare`` checks it).
    """

    turns: list[Turn]
    media: dict[str, list[MediaRef]] = field(default_factory=dict)
    source: str = ""
    line: int = 0
    id: str | None = None
    targets: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def location(self) -> str:
        """``"file:line"``, for messages."""
        return f"{self.source}:{self.line}"

    def placeholder_counts(self, modalities: list[str] | None = None) -> dict[str, int]:
        """How many placeholders of each modality (default: those in ``media``) the user turns contain."""
        names = list(self.media) if modalities is None else modalities
        user_text = "".join(turn.text for turn in self.turns if turn.role == "user")
        return {name: user_text.count(placeholder(name)) for name in names}

    def num_items(self) -> int:
        """The total number of media items over all modalities."""
        return sum(len(items) for items in self.media.values())
