"""The output plugin contract: decoders that read the LLM's hidden states at their trigger tokens.

An input plugin (:class:`anymal.plugin.ModalityPlugin`) turns media into LLM input embeddings; an output plugin goes
the other way. It declares trigger tokens (``[LOC]``, ``[SEG]``) that the model adds to the vocabulary (a trainable
embedding row and LM-head row each, beside the frozen LLM: :mod:`anymal.special_tokens`), and a trainable head that
turns the last-layer hidden state at each trigger occurrence into a structured result (a box, a mask). The core
finds the occurrences, taps the hidden states and hands them over as :class:`TriggerStates`; everything else (what
the labels look like, the losses, mapping results back to the original photo) belongs to the plugin.

The hooks, in the order the core calls them:

- data side (a data-loader worker in training, ``generate`` at inference): :meth:`OutputPlugin.prepare` turns one
  row's raw inputs and labels into whatever the plugin needs later; :meth:`OutputPlugin.collate` batches rows;
- model side: :meth:`OutputPlugin.forward` runs the head on the trigger states; :meth:`OutputPlugin.loss` returns
  named, already weighted loss terms (only where labels exist); :meth:`OutputPlugin.decode` turns outputs into one
  user-facing value per row (``generate`` exposes them as ``out.<output_field>``).

Third-party output plugins register under the ``anymal.outputs`` entry-point group (or with
:func:`anymal.register_plugin`), exactly as input plugins do under ``anymal.plugins``.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from anymal.errors import ConfigError
from anymal.plugin import ENCODER_DTYPES

TAPS = ("before", "at")


@dataclass
class OutputPluginConfig:
    """Base of every output plugin's config; ``plugin_type`` is the registry name of the plugin it configures.

    Attributes:
        tokens: the trigger tokens, added to the vocabulary in this order (empty: the plugin's ``default_tokens``).
        tap: which hidden state a trigger occurrence reads: ``"before"``, the state at the position that predicts
            the token (u-LLaVA's and LISA's convention), or ``"at"``, the state at the token itself.
        loss_weight: a factor on all of this plugin's loss terms (each term has its own weight in the plugin's
            config too).
        frozen_dtype: the dtype of the plugin's frozen module (:meth:`OutputPlugin.build_frozen`) on the device,
            as input plugins' ``encoder_dtype``: ``auto`` (bfloat16 on CUDA, float32 elsewhere), ``float32``,
            ``bfloat16`` or ``float16``. Ignored by a plugin without a frozen module.
    """

    plugin_type: str = ""
    tokens: list[str] = field(default_factory=list)
    tap: str = "before"
    loss_weight: float = 1.0
    frozen_dtype: str = "auto"

    def __post_init__(self) -> None:
        if self.tap not in TAPS:
            raise ConfigError(f"tap={self.tap!r}: expected one of {', '.join(TAPS)}")
        for token in self.tokens:
            if not isinstance(token, str) or not token.strip() or token != token.strip():
                raise ConfigError(f"tokens: {token!r} is not a usable token (a non-empty string without spaces)")
        if len(set(self.tokens)) != len(self.tokens):
            raise ConfigError(f"tokens: {self.tokens} lists a token twice")
        if not self.loss_weight >= 0:
            raise ConfigError(f"loss_weight={self.loss_weight}: expected a number >= 0")
        if self.frozen_dtype not in ENCODER_DTYPES:
            raise ConfigError(f"frozen_dtype={self.frozen_dtype!r}: expected one of {', '.join(ENCODER_DTYPES)}")


@dataclass(frozen=True)
class RowInputs:
    """What an output plugin may read of one row besides its labels: the row's raw modality inputs.

    Attributes:
        inputs: per modality name, the row's raw inputs in order (a path or bytes in training, whatever the user
            passed to ``generate`` at inference).
        plugins: the model's input plugins by name, e.g. to ask the image plugin where the photo's pixels land
            (``ImagePlugin.geometry``).
        where: the row's location for messages (``file:line`` in training, ``prompt[i]`` at inference).
    """

    inputs: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    plugins: Mapping[str, Any] = field(default_factory=dict)
    where: str = ""


@dataclass
class TriggerStates:
    """The hidden states at one output plugin's trigger occurrences in a batch, in row-major reading order.

    Attributes:
        states: ``[N, llm_dim]`` last-layer hidden states (with grad in training).
        rows: ``[N]`` the batch row of each occurrence.
        token: ``[N]`` which of the plugin's trigger tokens it is (an index into ``plugin.tokens``).
        counts: occurrences per row (``len(counts)`` is the batch size).
    """

    states: torch.Tensor
    rows: torch.Tensor
    token: torch.Tensor
    counts: list[int]

    def __len__(self) -> int:
        return int(self.states.shape[0])

    def split(self, values: torch.Tensor) -> list[torch.Tensor]:
        """``values`` (one per occurrence, first dimension ``N``) split into per-row pieces."""
        return list(torch.split(values, self.counts))


class OutputPlugin(abc.ABC):
    """Base class of an output plugin. Subclasses set ``name``, ``config_class``, ``default_tokens`` and
    ``output_field`` and implement :meth:`build_head`, :meth:`forward`, :meth:`decode` and the test hooks."""

    name: ClassVar[str] = ""
    config_class: ClassVar[type[OutputPluginConfig]] = OutputPluginConfig
    default_tokens: ClassVar[tuple[str, ...]] = ()
    output_field: ClassVar[str] = ""  # the GenerateOutput attribute of the decoded values, e.g. "boxes"

    def __init__(self, config: OutputPluginConfig | None = None) -> None:
        if config is None:
            config = self.config_class(plugin_type=self.name)
        if not isinstance(config, self.config_class):
            raise ConfigError(
                f"output plugin {self.name!r} expects a {self.config_class.__name__}, got {type(config).__name__}"
            )
        self.config = config

    @property
    def tokens(self) -> tuple[str, ...]:
        """The trigger tokens: the config's, else the plugin's defaults."""
        return tuple(self.config.tokens) or tuple(self.default_tokens)

    # --- modules -------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def build_head(self, llm_dim: int) -> nn.Module:
        """The trainable module (saved in ``plugins/<name>/head.safetensors``)."""

    def build_frozen(self) -> nn.Module | None:
        """An optional frozen pretrained module (e.g. SAM's image encoder): frozen by the core, never saved, its
        fingerprint checked on load like an input plugin's encoder. Default: none."""
        return None

    # --- memory planning (:mod:`anymal.plan`) -------------------------------------------------------------
    def architecture_config(self) -> OutputPluginConfig:
        """This plugin's config with every pointer at weights replaced by the architecture it names, so that
        :meth:`build_head` and :meth:`build_frozen` can run on the meta device (shapes only, nothing read but
        small config files). The memory planner builds output plugins this way. Default: the config itself (a
        plugin whose modules are built from numbers in its config). Raise :class:`ConfigError` naming the field
        when the architecture cannot be known offline."""
        return self.config

    def planned_workspace_bytes(self, rows: int, dtype_bytes: int) -> int:
        """Peak transient memory, in bytes, of :meth:`forward` over ``rows`` batch rows (each with a trigger) on
        top of what it keeps for backward, for the memory planner: e.g. a frozen image encoder's attention
        blocks. ``dtype_bytes``: the activations' element size (2 under bf16/fp16 autocast). Default 0: a small
        head whose transients are negligible next to the LLM's."""
        return 0

    # --- data ----------------------------------------------------------------------------------------------
    def prepare(self, row: RowInputs, labels: Sequence[Any] | None) -> Any:
        """One row's data for this plugin: ``labels`` has one entry per trigger occurrence in the row's answer
        (``None`` for an occurrence without a label) in training, and is ``None`` at inference. Raise
        :class:`anymal.errors.DataError` naming the label on a bad one. Default: the labels as given."""
        return {"labels": None if labels is None else list(labels)}

    def collate(self, rows: list[Any]) -> Any:
        """Batches prepared rows. Default: the list itself."""
        return rows

    # --- model ---------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def forward(self, head: nn.Module, frozen: nn.Module | None, states: TriggerStates, batch: Any) -> Any:
        """The head's outputs for the trigger states (``batch`` is what :meth:`collate` returned)."""

    def loss(self, outputs: Any, states: TriggerStates, batch: Any) -> dict[str, torch.Tensor]:
        """Named loss terms, already weighted, over the occurrences that have labels (none: an empty dict).
        The core multiplies them by ``config.loss_weight`` and adds them to the next-token loss."""
        return {}

    @abc.abstractmethod
    def decode(self, outputs: Any, states: TriggerStates, batch: Any) -> list[Any]:
        """One user-facing value per batch row (e.g. a ``Boxes`` with one box per trigger occurrence)."""

    # --- testing -------------------------------------------------------------------------------------------
    @classmethod
    @abc.abstractmethod
    def tiny_config(cls) -> OutputPluginConfig:
        """A config small enough for CPU tests, with no downloads."""

    @abc.abstractmethod
    def example_rows(self) -> list[tuple[RowInputs, list[Any]]]:
        """At least two rows with labels (one list per row, one label per occurrence) for the contract kit."""

    def bad_labels(self) -> list[Any]:
        """Single labels that :meth:`prepare` must reject with an ``AnyMALError`` (contract kit)."""
        return [object()]
