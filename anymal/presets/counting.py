"""Parameter counts of a preset at real size, built on the meta device: shapes only, no memory, no weights, offline.

The LLM is built by transformers from its architecture numbers (``AutoModelForCausalLM.from_config``); each plugin
builds its encoder and projector as the model would, with weight files cleared (the memory planner's
:func:`anymal.plan.from_train.meta_device` and ``WEIGHT_FIELDS``), and hooks its LLM-side parts (Pink's adapters)
onto that LLM; output plugins build their heads. A CLAP named by hub id counts as its architecture defaults
(HTSAT-tiny, as ``laion/clap-htsat-unfused``), the planner's fallback. Towers shared between plugins (one
``encoder_key``) count once.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from anymal.config import AnyMALConfig
from anymal.errors import AnyMALError
from anymal.plan.from_train import WEIGHT_FIELDS, _architecture_defaults, meta_device


def _count(module: nn.Module | None, prefix: str, out: dict[str, int]) -> None:
    params = list(module.parameters()) if module is not None else []
    out[prefix] = sum(p.numel() for p in params)
    out[f"{prefix}:weights"] = sum(p.numel() for p in params if p.dim() >= 2)


def _weightless(config: Any) -> Any:
    names = {f.name for f in dataclasses.fields(config)}
    return dataclasses.replace(config, **{name: None for name in WEIGHT_FIELDS if name in names})


def meta_llm(arch: dict[str, Any]) -> Any:
    """A causal LM of these HF config fields (``model_type`` included) on the meta device."""
    from transformers import AutoConfig, AutoModelForCausalLM

    fields = dict(arch)
    config = AutoConfig.for_model(fields.pop("model_type"), tie_word_embeddings=False, **fields)
    with meta_device():
        return AutoModelForCausalLM.from_config(config)


def _build_plugin(name: str, plugin_config: Any, llm: nn.Module, hidden: int) -> tuple[Any, nn.Module, nn.Module, list]:
    from anymal.registry import get_plugin

    plugin = get_plugin(plugin_config.plugin_type or name)(plugin_config)
    with meta_device(), torch.random.fork_rng(devices=[]):
        encoder = plugin.build_encoder()
        projector = plugin.build_projector(hidden)
        handles = plugin.attach_to_llm(llm, projector)
    return plugin, encoder, projector, handles


def count_on_meta(config: AnyMALConfig, llm_arch: dict[str, Any] | None) -> dict[str, int]:
    """``llm``, ``<plugin>.encoder``, ``<plugin>.projector`` (and its named parts), ``<output>.head``, ``total``, each
    with a ``:weights`` twin (matrices only)."""
    from anymal.registry import get_output_plugin

    if llm_arch is None:
        raise ValueError("count_on_meta: no LLM architecture (tiny presets are counted on the built model)")
    counts: dict[str, int] = {}
    llm: Any = meta_llm(llm_arch)  # a transformers causal LM
    _count(llm, "llm", counts)
    hidden = llm.get_input_embeddings().weight.shape[1]
    seen_encoders: set[str] = set()
    modules: list[nn.Module] = [llm]
    for name, plugin_config in config.modalities.items():
        shapes_only = _weightless(plugin_config)
        try:
            plugin, encoder, projector, handles = _build_plugin(name, shapes_only, llm, hidden)
        except (AnyMALError, OSError) as exc:
            fallback = _architecture_defaults(shapes_only)  # CLAP by hub id: its architecture defaults, as the planner
            if fallback is None:
                raise exc from None
            plugin, encoder, projector, handles = _build_plugin(name, fallback, llm, hidden)
        for handle in handles:
            handle.remove()
        key = plugin.encoder_key()
        if key is not None and key in seen_encoders:
            counts[f"{name}.encoder"] = counts[f"{name}.encoder:weights"] = 0  # shared: counted with the first
        else:
            _count(encoder, f"{name}.encoder", counts)
            modules.append(encoder)
        if key is not None:
            seen_encoders.add(key)
        _count(projector, f"{name}.projector", counts)
        for part, child in projector.named_children():
            _count(child, f"{name}.projector.{part}", counts)
        modules.append(projector)
    for name, output_config in config.outputs.items():
        output = get_output_plugin(getattr(output_config, "plugin_type", "") or name)(output_config)
        with meta_device(), torch.random.fork_rng(devices=[]):
            head = output.build_head(hidden)
            frozen = output.build_frozen()
        _count(head, f"{name}.head", counts)
        modules.append(head)
        if frozen is not None:
            _count(frozen, f"{name}.frozen", counts)
            modules.append(frozen)
    total = nn.ModuleList(modules)  # parameters() counts a module reachable twice once
    _count(total, "total", counts)
    return counts
