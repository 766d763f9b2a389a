"""The AnyMAL model: a frozen LLM plus, per modality plugin, a frozen encoder and a trainable projector."""

from __future__ import annotations

import copy
import os
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from anymal.checkpoint import save_pretrained
from anymal.config import AnyMALConfig, PluginConfig
from anymal.errors import ConfigError, InputError
from anymal.fusion import FusedInputs, pad_to_multiple, splice
from anymal.generation import GenerationMixin
from anymal.llm import freeze, keep_quantized_layout, llm_context_length, llm_hidden_size, load_llm, load_tokenizer
from anymal.lora import has_lora
from anymal.plugin import ModalityPlugin, place_frozen_encoder
from anymal.pretrained import build_from_checkpoint, load_plugin
from anymal.processing import IGNORE_INDEX, PromptEncoder, unpad_rows
from anymal.registry import get_plugin


@dataclass
class AnyMALOutput:
    """``forward`` output: the LLM's causal-LM output plus, with ``return_labels``, the spliced labels.

    A plain dataclass of our own, not a subclass of transformers' ``ModelOutput``: transformers 5.24 renamed
    ``ModelOutput.past_key_values`` to ``cache`` and rewrote the keyword arguments of every subclass, which broke
    ours. ``past_key_values`` here is the LLM's KV cache under whichever name the installed transformers uses.
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    labels: torch.Tensor | None = None
    past_key_values: Any = None
    hidden_states: Any = None
    attentions: Any = None


def move_to(batch: Any, device: torch.device, dtype: torch.dtype | None = None) -> Any:
    """Moves tensors (also inside dicts/lists) to ``device``; floating tensors are cast to ``dtype`` if given."""
    if isinstance(batch, torch.Tensor):
        if dtype is not None and batch.is_floating_point():
            return batch.to(device=device, dtype=dtype)
        return batch.to(device)
    if isinstance(batch, Mapping):
        return {k: move_to(v, device, dtype) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to(v, device, dtype) for v in batch)
    return batch


def _module_device_dtype(module: nn.Module) -> tuple[torch.device, torch.dtype]:
    for tensor in (*module.parameters(), *module.buffers()):
        if tensor.is_floating_point():
            return tensor.device, tensor.dtype
    return torch.device("cpu"), torch.float32


class AnyMAL(GenerationMixin, nn.Module):
    """A frozen causal LM that reads modality tokens produced by per-plugin encoders and projectors.

    Build it from a config (the LLM is loaded by reference), or pass an already loaded ``llm``/``tokenizer``.
    Only the projectors are trainable unless LoRA is added; ``trainable_summary()`` shows the split.
    """

    def __init__(self, config: AnyMALConfig, llm: nn.Module | None = None, tokenizer: Any = None) -> None:
        super().__init__()
        self.config = copy.deepcopy(config)  # add_plugin/remove_plugin edit the model's config, not the caller's
        if llm is not None:
            keep_quantized_layout(llm)  # a user-loaded 4-bit LLM stays as quantised, as load_llm's does
        # a transformers causal LM (or its PEFT wrapper): typed Any, its methods are not nn.Module's
        self.llm: Any = freeze(llm) if llm is not None else load_llm(config.llm)
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(config.llm)
        self.plugins: dict[str, ModalityPlugin] = {}
        self.encoders = nn.ModuleDict()
        self.projectors = nn.ModuleDict()
        self._shared_encoders: dict[str, nn.Module] = {}
        self._llm_hooks: dict[str, list[Any]] = {}  # per plugin: hooks it put on the LLM (ModalityPlugin.attach_to_llm)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)  # projector init is reproducible from the config alone
            for name, plugin_config in config.modalities.items():
                self._attach(name, plugin_config)
        self.prompt_encoder = PromptEncoder(self.tokenizer, list(self.plugins))

    def _attach(self, name: str, plugin_config: Any) -> None:
        """Builds plugin ``name``: a frozen encoder (shared by plugins of one ``encoder_key``) and a projector."""
        plugin = get_plugin(plugin_config.plugin_type or name)(plugin_config)
        key = plugin.encoder_key()
        if key is not None and key in self._shared_encoders:
            encoder = self._shared_encoders[key]  # e.g. video reuses the image encoder: one copy in memory
        else:
            encoder = freeze(plugin.build_encoder())
            if key is not None:
                self._shared_encoders[key] = encoder
        device = self.device
        self.plugins[name] = plugin
        self.encoders[name] = place_frozen_encoder(encoder, plugin_config, device)  # in its encoder_dtype
        self.projectors[name] = plugin.build_projector(llm_hidden_size(self.llm)).to(device)
        self._llm_hooks[name] = list(plugin.attach_to_llm(self.llm, self.projectors[name]))
        self.config.modalities[name] = plugin_config

    # --- composing plugins -------------------------------------------------------------------------------------
    def add_plugin(self, name: str, config: PluginConfig | Mapping[str, Any], replace: bool = False) -> AnyMAL:
        """Adds modality ``name`` (a fresh, untrained projector) built from a plugin config or its dict form.

        The projector's init is seeded from the model's seed and ``name``. ``replace=True`` swaps out an existing
        plugin of that name. Returns the model, so calls chain.
        """
        if name in self.plugins and not replace:
            raise ConfigError(f"the model already has a {name!r} plugin; pass replace=True to swap it")
        if not isinstance(config, PluginConfig):
            config = AnyMALConfig.from_dict({"modalities": {name: dict(config)}}).modalities[name]
        if name in self.plugins:
            self.remove_plugin(name)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.seed + zlib.crc32(name.encode()))
            self._attach(name, config)
        self.prompt_encoder = PromptEncoder(self.tokenizer, list(self.plugins))
        return self

    def load_plugin(
        self,
        name: str,
        path: str | os.PathLike,
        source_name: str | None = None,
        replace: bool = False,
        check_fingerprints: bool = True,
    ) -> AnyMAL:
        """Adds modality ``name`` with its trained projector from a checkpoint (or one plugin folder inside one).

        The checkpoint must be trained on this model's base LLM: a mismatch is refused naming both fingerprints.
        ``source_name`` is the plugin's name in that checkpoint when it differs. Returns the model.
        """
        if name in self.plugins and not replace:
            raise ConfigError(f"the model already has a {name!r} plugin; pass replace=True to swap it")
        return load_plugin(
            self, name, path, source_name=source_name, check_fingerprints=check_fingerprints, replace=replace
        )

    def remove_plugin(self, name: str) -> AnyMAL:
        """Drops modality ``name``: its plugin, projector and (unless shared) encoder. Returns the model."""
        self._plugin(name)
        for handle in self._llm_hooks.pop(name, []):
            handle.remove()
        del self.plugins[name], self.encoders[name], self.projectors[name], self.config.modalities[name]
        live = {id(encoder) for encoder in self.encoders.values()}
        self._shared_encoders = {k: e for k, e in self._shared_encoders.items() if id(e) in live}
        self.prompt_encoder = PromptEncoder(self.tokenizer, list(self.plugins))
        return self

    # --- parameters ----------------------------------------------------------------------------------------
    @property
    def modality_names(self) -> list[str]:
        return list(self.plugins)

    @property
    def device(self) -> torch.device:
        return self.llm.get_input_embeddings().weight.device

    def train(self, mode: bool = True) -> AnyMAL:
        """Switches projectors (and adapters) to training mode; frozen encoders stay in eval mode."""
        super().train(mode)
        self.encoders.eval()
        return self

    @property
    def _no_split_modules(self) -> list[str]:
        """Layer classes that must stay whole: the LLM's decoder layers. accelerate's FSDP ``transformer_based_wrap``
        reads this to shard layer by layer without the user naming the LLM's layer class."""
        return list(getattr(self.llm, "_no_split_modules", None) or [])

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """The weights a checkpoint stores: every parameter that requires grad plus projector buffers."""
        trainable = {name for name, p in self.named_parameters() if p.requires_grad}
        state = self.state_dict()
        keep = {k for k in state if k in trainable or k.startswith("projectors.")}
        return {k: state[k] for k in sorted(keep)}

    def trainable_summary(self) -> dict[str, dict[str, int]]:
        """Trainable and frozen parameter counts by part: ``llm``, ``encoder``, ``projector`` (shared counted once)."""
        summary = {part: {"trainable": 0, "frozen": 0} for part in ("llm", "encoder", "projector")}
        seen: set[int] = set()
        for name, param in self.named_parameters(remove_duplicate=False):
            if id(param) in seen:
                continue
            seen.add(id(param))
            part = {"llm": "llm", "encoders": "encoder", "projectors": "projector"}[name.split(".", 1)[0]]
            summary[part]["trainable" if param.requires_grad else "frozen"] += param.numel()
        return summary

    def print_trainable_parameters(self) -> None:
        """Prints the trainable/frozen split (the PEFT-style one-liner, per part)."""
        for part, counts in self.trainable_summary().items():
            total = counts["trainable"] + counts["frozen"]
            share = 100 * counts["trainable"] / total if total else 0.0
            print(f"{part:9s} trainable {counts['trainable']:>13,d} / {total:>14,d} ({share:.2f}%)")

    # --- trainable policy --------------------------------------------------------------------------------------
    def set_trainable(self, projectors: Iterable[str] | None = None, lora: bool = True) -> AnyMAL:
        """Makes trainable the projectors named (all when ``None``) and, with ``lora``, the LoRA adapter weights.

        Everything else is frozen: the encoders always, the base LLM always (only adapter weights ever train).
        This is the whole trainable policy; the training loop only builds the optimiser from :meth:`param_groups`.
        """
        names = list(self.plugins) if projectors is None else list(projectors)
        unknown = sorted(set(names) - set(self.plugins))
        if unknown:
            raise ConfigError(f"train_modalities: unknown {unknown}; this model has: {', '.join(self.plugins)}")
        for name, projector in self.projectors.items():
            projector.requires_grad_(name in names)
        for encoder in self.encoders.values():
            encoder.requires_grad_(False)
        for param_name, param in self.llm.named_parameters():
            param.requires_grad_(lora and has_lora(self.llm) and ".lora_" in param_name)
        return self

    def param_groups(self, lr: float, module_lr: Mapping[str, float] | None = None) -> list[dict[str, Any]]:
        """Optimiser parameter groups of what is trainable: one per projector (named after it) and ``lora``.

        ``module_lr`` overrides ``lr`` per group name; an unknown name is a ConfigError. Empty groups are left out.
        """
        module_lr = dict(module_lr or {})
        unknown = set(module_lr) - set(self.projectors) - {"lora"}
        if unknown:
            raise ConfigError(f"module_lr: unknown modules {sorted(unknown)}; expected projector names or 'lora'")
        groups: list[dict[str, Any]] = [
            {"params": [p for p in projector.parameters() if p.requires_grad], "name": name}
            for name, projector in self.projectors.items()
        ]
        groups.append({"params": [p for p in self.llm.parameters() if p.requires_grad], "name": "lora"})
        for group in groups:
            group["lr"] = module_lr.get(group["name"], lr)
        return [g for g in groups if g["params"]]

    # --- modality encoding ---------------------------------------------------------------------------------
    def preprocess(self, name: str, raws: Sequence[Any]) -> Any:
        """Preprocesses and collates raw inputs of one modality (what a data loader worker does)."""
        plugin = self._plugin(name)
        return plugin.collate([plugin.preprocess(raw) for raw in raws])

    @torch.no_grad()
    def encode_features(self, name: str, batch: Any) -> Any:
        """Frozen encoder features of a collated batch (cacheable: they never change during training)."""
        encoder = self.encoders[name]
        device, dtype = _module_device_dtype(encoder)
        return self.plugins[name].encode(encoder, move_to(batch, device, dtype))

    def project_features(self, name: str, features: Any) -> torch.Tensor:
        """Projector output ``[n, num_tokens, llm_dim]`` for encoder features (the trainable part)."""
        projector = self.projectors[name]
        device, dtype = _module_device_dtype(projector)
        tokens = self.plugins[name].project(projector, move_to(features, device, dtype))
        expected = self.plugins[name].num_tokens
        if tokens.dim() != 3 or tokens.shape[1] != expected:
            raise InputError(
                f"plugin {name!r} projected to shape {tuple(tokens.shape)}; expected [n, {expected}, llm_dim]"
            )
        return tokens

    def _plugin(self, name: str) -> ModalityPlugin:
        if name not in self.plugins:
            raise InputError(f"this model has no {name!r} modality; it has: {', '.join(self.plugins) or 'none'}")
        return self.plugins[name]

    def modality_tokens(
        self,
        batches: Mapping[str, Any] | None = None,
        features: Mapping[str, Any] | None = None,
    ) -> list[torch.Tensor | None]:
        """Projected tokens per modality index, from collated batches or from precomputed encoder features."""
        batches, features = dict(batches or {}), dict(features or {})
        for name in (*batches, *features):
            self._plugin(name)
        out: list[torch.Tensor | None] = []
        for name in self.plugins:
            if name in features:
                out.append(self.project_features(name, features[name]))
            elif name in batches and batches[name] is not None:
                out.append(self.project_features(name, self.encode_features(name, batches[name])))
            else:
                out.append(None)
        return out

    def fuse(
        self,
        rows: Sequence[Sequence[int]],
        batches: Mapping[str, Any] | None = None,
        features: Mapping[str, Any] | None = None,
        labels: Sequence[Sequence[int]] | None = None,
        padding_side: str = "right",
    ) -> FusedInputs:
        """LLM inputs for sentinel rows: encode and project each modality, then splice into text embeddings."""
        return splice(
            rows,
            self.llm.get_input_embeddings(),
            self.modality_tokens(batches, features),
            self.modality_names,
            labels=labels,
            padding_side=padding_side,
            max_length=llm_context_length(self.llm),
        )

    # --- training forward --------------------------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.Tensor | Sequence[Sequence[int]],
        labels: torch.Tensor | Sequence[Sequence[int]] | None = None,
        attention_mask: torch.Tensor | None = None,
        modality_inputs: Mapping[str, Any] | None = None,
        modality_features: Mapping[str, Any] | None = None,
        return_labels: bool = False,
        **llm_kwargs: Any,
    ):
        """Next-token loss on target tokens only (prompt, modality and pad positions are ignored).

        ``input_ids`` rows carry one sentinel id per modality item (see ``anymal.processing``); padded tensors
        are unpadded with ``attention_mask`` first. ``modality_inputs`` are collated batches per modality, or
        ``modality_features`` precomputed encoder features (the feature cache). With ``return_labels`` no loss is
        computed: ``out.logits`` holds only the positions that predict a target token and ``out.labels`` the
        targets aligned with them (``cross_entropy(out.logits, out.labels)`` needs no shift).
        """
        rows = unpad_rows(input_ids, attention_mask)
        label_rows = unpad_rows(labels, attention_mask) if labels is not None else None
        fused = self.fuse(rows, modality_inputs, modality_features, labels=label_rows, padding_side="right")
        if labels is not None:  # training: a few padded lengths instead of one per batch (each new one stalls CUDA)
            fused = pad_to_multiple(fused, self.config.llm.pad_to_multiple_of)
        aligned_labels = None
        if return_labels:
            # logits only where some row has a target next token: the LM head over a 32k vocabulary at every
            # prompt and modality position is a large share of a training step, and is not needed for the loss
            assert fused.labels is not None  # splice returns labels when given label rows
            shifted = fused.labels[:, 1:]
            keep = (shifted != IGNORE_INDEX).any(dim=0).nonzero().squeeze(1)
            llm_kwargs["logits_to_keep"] = keep
            aligned_labels = shifted[:, keep]
        out = self.llm(
            inputs_embeds=fused.inputs_embeds,
            attention_mask=fused.attention_mask,
            labels=None if return_labels else fused.labels,
            **llm_kwargs,
        )
        return AnyMALOutput(
            loss=out.loss,
            logits=out.logits,
            labels=aligned_labels,
            past_key_values=_llm_cache(out),
            hidden_states=out.get("hidden_states"),
            attentions=out.get("attentions"),
        )

    # --- checkpoints -------------------------------------------------------------------------------------------
    def save_pretrained(self, path: str | os.PathLike, **kwargs: Any) -> None:
        """Writes the config, one folder per plugin, the tokenizer and base-model fingerprints, atomically.

        See :mod:`anymal.checkpoint` for the layout and :func:`anymal.checkpoint.save_pretrained` for the options.
        """
        save_pretrained(self, path, **kwargs)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, **kwargs: Any) -> AnyMAL:
        """Rebuilds a saved model; see :func:`anymal.pretrained.build_from_checkpoint` for the options."""
        return build_from_checkpoint(cls, path, **kwargs)


def load_pretrained(path: str | os.PathLike, **kwargs: Any) -> AnyMAL:
    """``AnyMAL.from_pretrained(path, **kwargs)``, as a function."""
    return AnyMAL.from_pretrained(path, **kwargs)


def _llm_cache(out: Mapping[str, Any]) -> Any:
    """The KV cache of an HF causal-LM output: ``cache`` from transformers 5.24 on, ``past_key_values`` before."""
    return out["cache"] if "cache" in out else out.get("past_key_values")
