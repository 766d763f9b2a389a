"""The modality plugin contract: everything modality-specific lives behind this interface.

The core (fusion, model, generation, checkpoints, training) only ever sees tensors: a plugin turns one raw input
into encoder inputs (``preprocess``), batches them (``collate``), runs its frozen encoder (``encode``) and its
trainable projector (``project``), which returns ``[n_items, num_tokens, llm_dim]`` LLM input embeddings.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from anymal.errors import ConfigError

Batch = Any  # a tensor or a dict of tensors: whatever a plugin's collate() returns

DEFAULT_CAPTION_INSTRUCTIONS = (
    "Describe this {modality} briefly.",
    "What is in this {modality}?",
    "Write a short caption for the {modality}.",
    "Give a one-sentence description of the {modality}.",
)


@dataclass
class PluginConfig:
    """Base of every modality plugin's config; ``plugin_type`` is the registry name of the plugin it configures.

    Also importable from :mod:`anymal.config`, next to the other configs.

    ``encoder_dtype`` is the frozen encoder's weight dtype on the device: ``float32``, ``bfloat16``, ``float16``
    or ``auto`` (bfloat16 on CUDA, float32 elsewhere: a frozen ViT-bigG takes 3.4 GiB in bf16 instead of 6.9).
    The encoder's inputs are cast to it; its features are cast to the projector's dtype.
    """

    plugin_type: str = ""
    num_tokens: int = 32
    encoder_dtype: str = "auto"

    def __post_init__(self) -> None:
        if self.num_tokens < 1:
            raise ConfigError(f"num_tokens={self.num_tokens}: expected a positive number of LLM tokens")
        if self.encoder_dtype not in ENCODER_DTYPES:
            raise ConfigError(f"encoder_dtype={self.encoder_dtype!r}: expected one of {', '.join(ENCODER_DTYPES)}")


ENCODER_DTYPES = ("auto", "float32", "bfloat16", "float16")


def encoder_dtype_for(value: str, device: torch.device | str) -> torch.dtype:
    """The torch dtype a frozen encoder gets on ``device`` for an ``encoder_dtype`` setting (``auto``: bfloat16 on
    CUDA, float32 elsewhere)."""
    if value == "auto":
        return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32
    if value not in ENCODER_DTYPES:
        raise ConfigError(f"encoder_dtype={value!r}: expected one of {', '.join(ENCODER_DTYPES)}")
    return getattr(torch, value)


def place_frozen_encoder(encoder: nn.Module, config: PluginConfig, device: torch.device | str) -> nn.Module:
    """Moves a frozen encoder to ``device`` in its config's ``encoder_dtype`` (floating weights and buffers only).

    ``AnyMAL._attach`` calls it in place of ``encoder.to(device)``.
    """
    return place_frozen(encoder, getattr(config, "encoder_dtype", "float32"), device)


def place_frozen(encoder: nn.Module, dtype_setting: str, device: torch.device | str) -> nn.Module:
    """Moves a frozen module to ``device`` in the dtype ``dtype_setting`` names (see :func:`encoder_dtype_for`),
    keeping the fingerprint of its weights as built so that checkpoints move between devices. Input plugins'
    encoders and output plugins' frozen modules (SAM's image encoder) go through it."""
    from anymal.fingerprint import fingerprint_module

    dtype = encoder_dtype_for(dtype_setting, device)
    floating = [t for t in (*encoder.parameters(), *encoder.buffers()) if t.is_floating_point()]
    if any(t.dtype != dtype for t in floating) and not hasattr(encoder, ENCODER_FINGERPRINT_ATTR):
        # the weights as built: a checkpoint saved on CUDA (bf16 encoder) still matches on a CPU (float32), and back
        setattr(encoder, ENCODER_FINGERPRINT_ATTR, fingerprint_module(encoder))
    return encoder.to(device=device, dtype=dtype)


# where place_frozen_encoder keeps the fingerprint of an encoder's weights before their cast (see fingerprint_module)
ENCODER_FINGERPRINT_ATTR = "anymal_fingerprint_as_built"


@dataclass(frozen=True)
class AlignmentTask:
    """The stage-1 recipe of a modality: captions predicted from modality tokens with the LLM frozen.

    ``instructions`` is the pool a training example samples its captioning instruction from; ``{modality}`` is
    replaced by the plugin's human-readable noun.
    """

    modality: str
    instructions: tuple[str, ...] = DEFAULT_CAPTION_INSTRUCTIONS
    loss: str = "next_token"
    noun: str = ""

    def instruction_pool(self) -> list[str]:
        noun = self.noun or self.modality
        return [text.format(modality=noun) for text in self.instructions]


@dataclass(frozen=True)
class PretrainingTask:
    """An encoder pretraining task a plugin declares (e.g. IMU-to-text contrastive); run by ``anymal.train``."""

    name: str
    description: str
    run: Any = field(compare=False)  # callable(plugin, config: dict) -> dict of metrics


class ModalityPlugin(abc.ABC):
    """Base class of an input modality. Subclasses set ``name`` and ``config_class`` and implement the hooks."""

    name: ClassVar[str] = ""
    config_class: ClassVar[type[PluginConfig]] = PluginConfig
    noun: ClassVar[str] = ""  # human-readable name used in instructions ("image", "audio clip", ...)

    def __init__(self, config: PluginConfig | None = None) -> None:
        if config is None:
            config = self.config_class(plugin_type=self.name)
        if not isinstance(config, self.config_class):
            raise ConfigError(
                f"plugin {self.name!r} expects a {self.config_class.__name__}, got {type(config).__name__}"
            )
        self.config = config

    @property
    def placeholder(self) -> str:
        """The prompt text that marks where this modality's tokens go, e.g. ``<image>``."""
        return f"<{self.name}>"

    @property
    def num_tokens(self) -> int:
        """How many LLM input embeddings one item of this modality becomes."""
        return self.config.num_tokens

    # --- encoder -------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def build_encoder(self) -> nn.Module:
        """The pretrained, text-aligned encoder. The core freezes it and puts it in eval mode."""

    def encoder_key(self) -> str | None:
        """Plugins whose encoders have equal keys share one encoder instance in a model (``None``: never share)."""
        return None

    @abc.abstractmethod
    def encode(self, encoder: nn.Module, batch: Batch) -> torch.Tensor | dict[str, torch.Tensor]:
        """Frozen features for a collated batch; called under ``torch.no_grad`` by the core."""

    # --- projector -----------------------------------------------------------------------------------------
    @abc.abstractmethod
    def build_projector(self, llm_dim: int) -> nn.Module:
        """The trainable module mapping encoder features to ``[n, num_tokens, llm_dim]``."""

    def project(self, projector: nn.Module, features: torch.Tensor | dict[str, torch.Tensor]) -> torch.Tensor:
        """Runs the projector on encoder features; override when features are a dict."""
        return projector(features)

    def attach_to_llm(self, llm: nn.Module, projector: nn.Module) -> list[Any]:
        """Optional: trainable parts this plugin adds to the frozen LLM (e.g. Pink's per-layer adapters), as forward
        hooks whose parameters live in ``projector`` (so they train, save and load with it). Called once the plugin
        joins a model; returns the hook handles, which the model removes with the plugin. Default: none."""
        return []

    # --- data ----------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def preprocess(self, raw: Any) -> Batch:
        """One raw input (path, bytes, array, tensor, ...) to encoder inputs; raises ``InputError`` on bad input."""

    def collate(self, items: list[Batch]) -> Batch:
        """Batches preprocessed items. The default stacks tensors (and dicts of tensors key by key)."""
        first = items[0]
        if isinstance(first, dict):
            return {key: torch.stack([item[key] for item in items]) for key in first}
        return torch.stack(items)

    def companion_inputs(self, raw: Any) -> dict[str, Any]:
        """Raw inputs for other modalities carried by ``raw`` (e.g. a video's audio track); default: none."""
        return {}

    def reseed(self, seed: int) -> None:
        """Restarts the plugin's own random preprocessing choices (e.g. random video segments) from ``seed``.

        Training calls it before preprocessing each item with a seed made from the run seed, the epoch and the
        item's index, so those choices do not depend on data-loader workers or on where a run was resumed.
        Default: nothing (deterministic preprocessing).
        """
        return None

    def companion_modalities(self, raw: Any) -> tuple[str, ...]:
        """Other modalities whose plugins read this same input file too (e.g. ``("audio",)`` for a video file with a
        sound track); training routes the file to them (:func:`anymal.routing.route_example`). Default: none."""
        return ()

    def is_single_input(self, raw: Any) -> bool:
        """Whether ``raw`` is one input (as opposed to a list of inputs). Override for tuple-shaped inputs."""
        return not isinstance(raw, list)

    # --- training ------------------------------------------------------------------------------------------
    def alignment_task(self) -> AlignmentTask:
        """The stage-1 (captioning) recipe for this modality."""
        return AlignmentTask(modality=self.name, noun=self.noun or self.name)

    def pretraining_tasks(self) -> dict[str, PretrainingTask]:
        """Encoder pretraining tasks this plugin offers (most plugins have none: their encoder is pretrained)."""
        return {}

    # --- testing -------------------------------------------------------------------------------------------
    @classmethod
    @abc.abstractmethod
    def tiny_config(cls) -> PluginConfig:
        """A config small enough for CPU tests, with no downloads."""

    @abc.abstractmethod
    def example_inputs(self) -> list[Any]:
        """At least two different valid raw inputs, used by the contract test kit."""

    def bad_inputs(self) -> list[Any]:
        """Raw inputs that ``preprocess`` must reject with ``InputError`` (contract test kit)."""
        return [object(), "/nonexistent/anymal-missing-file.bin"]
