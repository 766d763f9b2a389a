"""The AnyMAL model: a frozen LLM plus, per modality plugin, a frozen encoder and a trainable projector, and per
output plugin (box, mask heads) its trigger tokens' trainable rows and a trainable head over the LLM's hidden states."""

from __future__ import annotations

import copy
import os
import zlib
from collections.abc import Iterable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from torch import nn

from anymal.checkpoint import save_pretrained
from anymal.config import AnyMALConfig, PluginConfig
from anymal.errors import ConfigError, InputError
from anymal.fusion import FusedInputs, pad_to_multiple, splice
from anymal.generation import GenerationMixin
from anymal.llm import freeze, keep_quantized_layout, llm_context_length, llm_hidden_size, load_llm, load_tokenizer
from anymal.lora import has_lora
from anymal.output_plugin import OutputPlugin, RowInputs
from anymal.plugin import ModalityPlugin, place_frozen, place_frozen_encoder
from anymal.pretrained import build_from_checkpoint, load_plugin
from anymal.processing import IGNORE_INDEX, PromptEncoder, unpad_rows
from anymal.registry import get_output_plugin, get_plugin
from anymal.special_tokens import TokenRows, add_to_tokenizer, base_modules, base_vocab_size, install, weight_of
from anymal.triggers import capture_last_hidden, trigger_states


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
    # per output plugin loss term ("loc/l1", ...), weighted; included in ``loss`` unless return_labels
    output_losses: dict[str, torch.Tensor] = field(default_factory=dict)
    # per output plugin name, (TriggerStates, what its forward() returned) for the batch's trigger occurrences
    outputs: dict[str, Any] = field(default_factory=dict)


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
        self.output_plugins: dict[str, OutputPlugin] = {}
        self.heads = nn.ModuleDict()  # trainable, per output plugin
        self.output_frozen = nn.ModuleDict()  # an output plugin's frozen pretrained module, when it has one
        self.token_rows = nn.ModuleDict()  # its trigger tokens' trainable embedding / LM-head rows
        self.trigger_ids: dict[str, list[int]] = {}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)  # projector init is reproducible from the config alone
            for name, plugin_config in config.modalities.items():
                self._attach(name, plugin_config)
            for name, output_config in config.outputs.items():
                self._attach_output(name, output_config)
        self._install_tokens()
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

    def _attach_output(self, name: str, output_config: Any) -> None:
        """Builds output plugin ``name``: its head, its optional frozen module and its trigger tokens' rows."""
        plugin = get_output_plugin(output_config.plugin_type or name)(output_config)
        if not plugin.tokens:
            raise ConfigError(f"outputs.{name}: the plugin declares no trigger tokens; set tokens:")
        taken = {t: other for other, p in self.output_plugins.items() for t in p.tokens}
        for token in plugin.tokens:
            if token in taken:
                raise ConfigError(f"outputs.{name}: token {token!r} is already the trigger of {taken[token]!r}")
        device = self.device
        frozen = plugin.build_frozen()
        if frozen is not None:
            self.output_frozen[name] = place_frozen(freeze(frozen), output_config.frozen_dtype, device)
        self.heads[name] = plugin.build_head(llm_hidden_size(self.llm)).to(device)
        embed, head = base_modules(self.llm)
        # the new tokens get separate input and output rows even when the LLM ties its embeddings: a tied row is
        # pushed large to predict its own token and then, as the next position's input, swamps the residual stream,
        # so what follows a trigger (e.g. the end of the answer) stays unlearnable (measured on stories260K: EOS
        # NLL after [LOC] 15.4 tied vs 5.5 untied after 200 steps; [LOC] itself 0.27 vs 0.02)
        rows = TokenRows(plugin.tokens, weight_of(embed), weight_of(head))
        self.token_rows[name] = rows.to(device)
        self.output_plugins[name] = plugin
        self.config.outputs[name] = output_config

    def _install_tokens(self) -> None:
        """(Re)wires the LLM's embedding and LM head for the output plugins' tokens, in plugin order, and adds them
        to the tokenizer (their ids follow the base vocabulary)."""
        names = list(self.output_plugins)
        count = sum(len(self.rows_of(n).tokens) for n in names)

        def embed_rows() -> torch.Tensor:
            return torch.cat([self.rows_of(n).embed for n in names])

        def head_rows() -> torch.Tensor:
            return torch.cat([self.rows_of(n).head_rows() for n in names])

        first = base_vocab_size(self.llm)
        install(self.llm, embed_rows, head_rows, count)
        self.trigger_ids = {}
        for n in names:
            tokens = self.rows_of(n).tokens
            if self.tokenizer is not None:
                self.trigger_ids[n] = add_to_tokenizer(self.tokenizer, tokens, first)
            else:
                self.trigger_ids[n] = list(range(first, first + len(tokens)))
            first += len(tokens)

    def rows_of(self, name: str) -> TokenRows:
        """Output plugin ``name``'s trigger-token rows."""
        return cast(TokenRows, self.token_rows[name])

    def add_output(self, name: str, config: Any) -> AnyMAL:
        """Adds output plugin ``name`` (a fresh head and fresh token rows) from its config or the dict form of it.
        Returns the model, so calls chain."""
        if name in self.output_plugins or name in self.plugins:
            raise ConfigError(f"the model already has a plugin named {name!r}")
        if not hasattr(config, "plugin_type"):
            config = AnyMALConfig.from_dict({"outputs": {name: dict(config)}}).outputs[name]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.seed + zlib.crc32(f"output:{name}".encode()))
            self._attach_output(name, config)
        self._install_tokens()
        return self

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
        """The weights a checkpoint stores: every parameter that requires grad plus projector, head and
        token-row tensors (trained or not: a checkpoint always holds a whole plugin)."""
        trainable = {name for name, p in self.named_parameters() if p.requires_grad}
        state = self.state_dict()
        owned = ("projectors.", "heads.", "token_rows.")
        keep = {k for k in state if k in trainable or k.startswith(owned)}
        return {k: state[k] for k in sorted(keep)}

    def trainable_summary(self) -> dict[str, dict[str, int]]:
        """Trainable and frozen parameter counts by part: ``llm``, ``encoder``, ``projector`` and, with output
        plugins, ``output`` (heads and new token rows; their frozen modules count as ``encoder``)."""
        parts = ("llm", "encoder", "projector", "output") if self.output_plugins else ("llm", "encoder", "projector")
        summary = {part: {"trainable": 0, "frozen": 0} for part in parts}
        which = {
            "llm": "llm",
            "encoders": "encoder",
            "projectors": "projector",
            "heads": "output",
            "token_rows": "output",
            "output_frozen": "encoder",
        }
        seen: set[int] = set()
        for name, param in self.named_parameters(remove_duplicate=False):
            if id(param) in seen:
                continue
            seen.add(id(param))
            part = which[name.split(".", 1)[0]]
            summary[part]["trainable" if param.requires_grad else "frozen"] += param.numel()
        return summary

    def print_trainable_parameters(self) -> None:
        """Prints the trainable/frozen split (the PEFT-style one-liner, per part)."""
        for part, counts in self.trainable_summary().items():
            total = counts["trainable"] + counts["frozen"]
            share = 100 * counts["trainable"] / total if total else 0.0
            print(f"{part:9s} trainable {counts['trainable']:>13,d} / {total:>14,d} ({share:.2f}%)")

    # --- trainable policy --------------------------------------------------------------------------------------
    def set_trainable(
        self, projectors: Iterable[str] | None = None, lora: bool = True, outputs: Iterable[str] | None = None
    ) -> AnyMAL:
        """Makes trainable the projectors named (all when ``None``), the output plugins named (their heads and
        token rows; all when ``None``) and, with ``lora``, the LoRA adapter weights.

        Everything else is frozen: the encoders always, the base LLM always (only adapter weights ever train; the
        new tokens' rows sit beside its frozen embedding matrix). This is the whole trainable policy; the training
        loop only builds the optimiser from :meth:`param_groups`.
        """
        names = list(self.plugins) if projectors is None else list(projectors)
        unknown = sorted(set(names) - set(self.plugins))
        if unknown:
            raise ConfigError(f"train_modalities: unknown {unknown}; this model has: {', '.join(self.plugins)}")
        heads = list(self.output_plugins) if outputs is None else list(outputs)
        unknown = sorted(set(heads) - set(self.output_plugins))
        if unknown:
            raise ConfigError(f"outputs: unknown {unknown}; this model has: {', '.join(self.output_plugins) or 'none'}")
        for name, projector in self.projectors.items():
            projector.requires_grad_(name in names)
        for name in self.output_plugins:
            self.heads[name].requires_grad_(name in heads)
            self.token_rows[name].requires_grad_(name in heads)
        for encoder in self.encoders.values():
            encoder.requires_grad_(False)
        for frozen in self.output_frozen.values():
            frozen.requires_grad_(False)
        for param_name, param in self.llm.named_parameters():
            param.requires_grad_(lora and has_lora(self.llm) and ".lora_" in param_name)
        return self

    def param_groups(self, lr: float, module_lr: Mapping[str, float] | None = None) -> list[dict[str, Any]]:
        """Optimiser parameter groups of what is trainable: one per projector and per output plugin (named after
        it: head and token rows) and ``lora``.

        ``module_lr`` overrides ``lr`` per group name; an unknown name is a ConfigError. Empty groups are left out.
        """
        module_lr = dict(module_lr or {})
        unknown = set(module_lr) - set(self.projectors) - set(self.output_plugins) - {"lora"}
        if unknown:
            raise ConfigError(
                f"module_lr: unknown modules {sorted(unknown)}; expected projector or output plugin names or 'lora'"
            )
        groups: list[dict[str, Any]] = [
            {"params": [p for p in projector.parameters() if p.requires_grad], "name": name}
            for name, projector in self.projectors.items()
        ]
        for name in self.output_plugins:
            params = [*self.heads[name].parameters(), *self.token_rows[name].parameters()]
            groups.append({"params": [p for p in params if p.requires_grad], "name": name})
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
        output_batches: Mapping[str, Any] | None = None,
        **llm_kwargs: Any,
    ):
        """Next-token loss on target tokens only (prompt, modality and pad positions are ignored).

        ``input_ids`` rows carry one sentinel id per modality item (see ``anymal.processing``); padded tensors
        are unpadded with ``attention_mask`` first. ``modality_inputs`` are collated batches per modality, or
        ``modality_features`` precomputed encoder features (the feature cache). With ``return_labels`` no loss is
        computed: ``out.logits`` holds only the positions that predict a target token and ``out.labels`` the
        targets aligned with them (``cross_entropy(out.logits, out.labels)`` needs no shift).

        ``output_batches`` (with ``labels``): per output plugin, its collated rows (``OutputPlugin.collate``). The
        plugin then reads the hidden states at its trigger tokens in the targets; its weighted loss terms are in
        ``out.output_losses`` (added to ``out.loss`` unless ``return_labels``) and its outputs in ``out.outputs``.
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
        heads = bool(self.output_plugins) and output_batches is not None and fused.labels is not None
        with capture_last_hidden(self.llm) if heads else nullcontext() as captured:
            out = self.llm(
                inputs_embeds=fused.inputs_embeds,
                attention_mask=fused.attention_mask,
                labels=None if return_labels else fused.labels,
                **llm_kwargs,
            )
        output_losses: dict[str, torch.Tensor] = {}
        outputs: dict[str, Any] = {}
        if heads:
            assert captured is not None and captured.value is not None and fused.labels is not None
            outputs, output_losses = self.run_outputs(captured.value, fused.labels, dict(output_batches or {}))
        loss = out.loss
        if loss is not None and output_losses:
            loss = loss + sum(output_losses.values())
        return AnyMALOutput(
            loss=loss,
            output_losses=output_losses,
            outputs=outputs,
            logits=out.logits,
            labels=aligned_labels,
            past_key_values=_llm_cache(out),
            hidden_states=out.get("hidden_states"),
            attentions=out.get("attentions"),
        )

    # --- output plugins ----------------------------------------------------------------------------------------
    def run_outputs(
        self, hidden: torch.Tensor, token_ids: torch.Tensor, batches: Mapping[str, Any], with_loss: bool = True
    ) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """Runs every output plugin on its trigger occurrences in ``token_ids`` (``[batch, length]``, aligned with
        the last hidden state ``hidden``; in training the targets, so only answer tokens count). Returns per plugin
        ``(states, outputs)`` and the weighted loss terms keyed ``"<plugin>/<term>"``."""
        results: dict[str, Any] = {}
        losses: dict[str, torch.Tensor] = {}
        for name, plugin in self.output_plugins.items():
            if name not in batches:
                continue
            states = trigger_states(hidden, token_ids, self.trigger_ids[name], plugin.config.tap)
            head = self.heads[name]
            device, dtype = _module_device_dtype(head)
            states.states = states.states.to(device=device, dtype=dtype)
            frozen = self.output_frozen[name] if name in self.output_frozen else None  # noqa: SIM401 (no .get)
            outputs = plugin.forward(head, frozen, states, batches[name])
            results[name] = (states, outputs)
            if with_loss and len(states):
                weight = plugin.config.loss_weight
                for term, value in plugin.loss(outputs, states, batches[name]).items():
                    losses[f"{name}/{term}"] = value * weight
        return results, losses

    @torch.no_grad()
    def decode_outputs(
        self, fused: FusedInputs, sequences: torch.Tensor, per_row: list[dict[str, list[Any]]], where: list[str]
    ) -> dict[str, list[Any]]:
        """``generate``'s decoded outputs: per output plugin field, one value per row, from the hidden states of the
        trigger tokens in the generated ``sequences`` (new tokens only; the prompt's ``fused`` inputs before them).

        The hidden states come from one more forward pass over prompt and answer (positions from the attention
        mask, as generation computed them), which works for any sampling and either ``tap`` and costs one pass.
        """
        batches = {}
        for name, plugin in self.output_plugins.items():
            rows = [plugin.prepare(RowInputs(per_row[r], self.plugins, where[r]), None) for r in range(len(per_row))]
            batches[name] = plugin.collate(rows)
        every = [i for ids in self.trigger_ids.values() for i in ids]
        device = fused.inputs_embeds.device
        sequences = sequences.to(device)
        n_rows, prompt = fused.attention_mask.shape
        if bool(torch.isin(sequences, torch.tensor(every, device=device)).any()):
            answer = self.llm.get_input_embeddings()(sequences).to(fused.inputs_embeds.dtype)
            embeds = torch.cat([fused.inputs_embeds, answer], dim=1)
            mask = torch.cat([fused.attention_mask, torch.ones_like(sequences, dtype=fused.attention_mask.dtype)], 1)
            positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
            with capture_last_hidden(self.llm) as captured:
                self.llm(
                    inputs_embeds=embeds, attention_mask=mask, position_ids=positions, use_cache=False, logits_to_keep=1
                )
            assert captured.value is not None  # the decoder ran
            hidden = captured.value
            token_ids = torch.cat([torch.full((n_rows, prompt), -1, device=device), sequences], dim=1)
        else:  # nothing to decode: every row gets its plugin's empty value
            hidden = torch.zeros(n_rows, 1, llm_hidden_size(self.llm), device=device)
            token_ids = torch.full((n_rows, 1), -1, device=device)
        results, _ = self.run_outputs(hidden, token_ids, batches, with_loss=False)
        return {
            (self.output_plugins[name].output_field or name): self.output_plugins[name].decode(
                outputs, states, batches[name]
            )
            for name, (states, outputs) in results.items()
        }

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
