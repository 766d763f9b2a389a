"""``AnyMAL.generate``: prompts and raw modality inputs in, text out, on top of HF generation with a KV cache.

A batch is a list of prompts; each modality keyword then takes a list with one entry per prompt (a single input,
a list of inputs, or ``None``). Rows are left-padded, so greedy batched output equals per-row output.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from anymal.config import AnyMALConfig
from anymal.errors import InputError
from anymal.fusion import FusedInputs, as_int_rows
from anymal.plugin import ModalityPlugin
from anymal.processing import PromptEncoder, sentinel_id, unpad_rows
from anymal.registry import entry_point_names
from anymal.routing import add_companion_inputs


@dataclass
class GenerateOutput:
    """Generated token ids (new tokens only, padded with the pad id), their decoded texts and, with output
    plugins, their decoded outputs.

    ``outputs`` maps each output plugin's ``output_field`` (``"boxes"``, ``"masks"``) to one value per row (e.g. a
    ``Boxes`` with one box per ``[LOC]`` the row generated, in that row's original image pixels); each field is
    also an attribute: ``out.boxes[0]``.
    """

    sequences: torch.Tensor
    texts: list[str] = field(default_factory=list)
    outputs: dict[str, list[Any]] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        outputs = self.__dict__.get("outputs") or {}
        if name in outputs:
            return outputs[name]
        fields = ", ".join(outputs) or "none (the model has no output plugins)"
        raise AttributeError(f"GenerateOutput has no attribute {name!r}; its outputs: {fields}")

    @property
    def text(self) -> str:
        """The text of a single-prompt call."""
        if len(self.texts) != 1:
            raise InputError(f"this output holds {len(self.texts)} texts; use .texts")
        return self.texts[0]

    def __str__(self) -> str:
        return self.texts[0] if len(self.texts) == 1 else repr(self.texts)


def _row_inputs(plugin: ModalityPlugin, value: Any, n_rows: int, batched: bool, name: str) -> list[list[Any]]:
    """Normalises a modality keyword to a list (per row) of lists (per item) of raw inputs."""
    if value is None:
        return [[] for _ in range(n_rows)]
    if not batched:
        return [[value] if plugin.is_single_input(value) else list(value)]
    if not isinstance(value, (list, tuple)) or len(value) != n_rows:
        got = len(value) if isinstance(value, (list, tuple)) else type(value).__name__
        raise InputError(f"{name}=: with {n_rows} prompts, give a list of {n_rows} entries (one per prompt), got {got}")
    rows: list[list[Any]] = []
    for entry in value:
        if entry is None:
            rows.append([])
        else:
            rows.append([entry] if plugin.is_single_input(entry) else list(entry))
    return rows


class GenerationHost(Protocol):
    """What :class:`GenerationMixin` needs from the model it is mixed into (:class:`anymal.AnyMAL`).

    Generation sits on top of the model in the data flow, but the model carries ``generate`` as a method; naming
    the model's side as a protocol keeps this module from importing the model.
    """

    @property
    def config(self) -> AnyMALConfig: ...

    @property
    def llm(self) -> Any: ...  # a transformers causal LM (possibly PEFT-wrapped): has .generate and .config

    @property
    def tokenizer(self) -> Any: ...

    @property
    def plugins(self) -> Mapping[str, ModalityPlugin]: ...

    @property
    def prompt_encoder(self) -> PromptEncoder: ...

    @property
    def output_plugins(self) -> Mapping[str, Any]: ...

    def decode_outputs(
        self, fused: FusedInputs, sequences: torch.Tensor, per_row: list[dict[str, list[Any]]], where: list[str]
    ) -> dict[str, list[Any]]: ...

    def preprocess(self, name: str, raws: Sequence[Any]) -> Any: ...

    def fuse(
        self,
        rows: Sequence[Sequence[int]],
        batches: Mapping[str, Any] | None = ...,
        features: Mapping[str, Any] | None = ...,
        labels: Sequence[Sequence[int]] | None = ...,
        padding_side: str = ...,
    ) -> FusedInputs: ...


# generate() arguments that HF pops before validating model kwargs, and so appear in no signature
_HF_EXTRA_ARGUMENTS = frozenset(
    {"tokenizer", "assistant_tokenizer", "use_model_defaults", "past_key_values", "cache_position", "logits_to_keep"}
)


def _hf_generate_arguments(llm: Any) -> set[str]:
    """Keyword arguments HF ``generate`` accepts for this LLM: GenerationConfig fields, ``generate``'s own
    parameters, and the model kwargs its forward takes (the same sources HF's ``_validate_model_kwargs`` reads)."""
    from transformers import GenerationConfig

    names = set(GenerationConfig().to_dict()) | _HF_EXTRA_ARGUMENTS
    base = llm.get_base_model() if hasattr(llm, "get_base_model") else llm  # PEFT wraps the HF model
    for fn_name in ("generate", "prepare_inputs_for_generation", "forward"):
        fn = getattr(base, fn_name, None)
        try:
            names |= set(inspect.signature(fn).parameters) if fn is not None else set()
        except (TypeError, ValueError):
            continue
    try:
        from transformers.utils.generic import TransformersKwargs

        names |= set(TransformersKwargs.__optional_keys__)
    except ImportError:  # older transformers: the forward signature alone
        pass
    names.discard("kwargs")
    return names


def _unknown_keyword(model: GenerationHost, keys: Sequence[str]) -> InputError:
    modalities = ", ".join(model.plugins) or "none"
    plural = "s" if len(keys) > 1 else ""
    return InputError(
        f"generate() got unknown keyword argument{plural} {', '.join(f'{k}=' for k in keys)}: neither one of this "
        f"model's modalities ({modalities}) nor a Hugging Face generation argument"
    )


def _split_generate_kwargs(model: GenerationHost, kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Modality inputs (keys naming one of the model's plugins) apart from HF generation arguments; a keyword
    that is neither (``depth=`` to a model without a depth plugin) is an InputError naming it."""
    known = set(entry_point_names())
    modal, hf = {}, {}
    for key, value in kwargs.items():
        if key in model.plugins:
            modal[key] = value
        elif key in known:
            raise InputError(
                f"{key}= was given but this model has no {key!r} modality; it has: {', '.join(model.plugins) or 'none'}"
            )
        else:
            hf[key] = value
    if hf:
        unknown = sorted(set(hf) - _hf_generate_arguments(model.llm))
        if unknown:
            raise _unknown_keyword(model, unknown)
    return modal, hf


_UNUSED_KWARGS_RE = re.compile(r"model_kwargs` are not used by the model: \[([^\]]*)\]")


def _llm_generate(model: GenerationHost, **kwargs: Any) -> Any:
    """``model.llm.generate``; HF's 'model_kwargs are not used' ValueError (a keyword our pre-check let through)
    becomes the same InputError as an unknown keyword caught up front."""
    try:
        return model.llm.generate(**kwargs)
    except ValueError as exc:
        found = _UNUSED_KWARGS_RE.search(str(exc))
        if found is None:
            raise
        raise _unknown_keyword(model, [k.strip(" '\"") for k in found.group(1).split(",")]) from None


def _as_id_rows(input_ids: Any) -> torch.Tensor | list[Any]:
    """``input_ids`` as a 2-D integer tensor or a list of rows; a float/bool tensor or a shape that is not
    ``[batch, length]`` (or ``[length]``) is an InputError. List elements are checked by ``as_int_rows``."""
    if isinstance(input_ids, (list, tuple)):
        if not input_ids:
            raise InputError("input_ids is empty: nothing to generate")
        if all(not isinstance(row, (list, tuple, torch.Tensor)) for row in input_ids):
            return [list(input_ids)]  # one flat row
        return [row if isinstance(row, (list, tuple, torch.Tensor)) else [row] for row in input_ids]
    if not isinstance(input_ids, torch.Tensor):
        try:
            input_ids = torch.as_tensor(input_ids)
        except (TypeError, ValueError, RuntimeError):
            raise InputError(
                f"input_ids: expected a tensor or a list of rows of integer token ids, got {type(input_ids).__name__}"
            ) from None
    if input_ids.is_floating_point() or input_ids.is_complex() or input_ids.dtype == torch.bool:
        raise InputError(f"input_ids: expected integer token ids, got a {input_ids.dtype} tensor")
    if input_ids.dim() == 1:
        input_ids = input_ids.unsqueeze(0)
    if input_ids.dim() != 2:
        raise InputError(f"input_ids: expected shape [batch, length] or [length], got {list(input_ids.shape)}")
    return input_ids


def _rows_from_input_ids(
    model: GenerationHost,
    input_ids: torch.Tensor | Sequence[Sequence[int]],
    attention_mask: torch.Tensor | None,
    items: list[dict[str, list[Any]]],
) -> list[list[int]]:
    rows = as_int_rows(unpad_rows(input_ids if not isinstance(input_ids, tuple) else list(input_ids), attention_mask))
    bos = getattr(model.tokenizer, "bos_token_id", None) if model.tokenizer is not None else None
    if bos is None:
        bos = getattr(model.llm.config, "bos_token_id", None)
    out = []
    for row, row_items in zip(rows, items):
        sentinels = [sentinel_id(k) for k, name in enumerate(model.plugins) for _ in row_items.get(name, [])]
        present = [t for t in row if t <= -1000]
        if present and sentinels and len(present) != len(sentinels):
            raise InputError("input_ids carry a different number of modality sentinels than inputs given")
        if present or not sentinels:
            out.append(list(row))
        else:  # no sentinels: modality tokens go first (after BOS), in the model's modality order
            head = 1 if row and row[0] == bos else 0
            out.append(list(row[:head]) + sentinels + list(row[head:]))
    return out


def _pad_token_id(model: GenerationHost) -> int | None:
    if model.tokenizer is not None and model.tokenizer.pad_token_id is not None:
        return model.tokenizer.pad_token_id
    config = model.llm.generation_config
    eos = config.eos_token_id
    return config.pad_token_id if config.pad_token_id is not None else (eos[0] if isinstance(eos, list) else eos)


class GenerationMixin:
    """Adds ``generate`` to :class:`anymal.AnyMAL` (any class that is a :class:`GenerationHost`)."""

    @torch.no_grad()
    def generate(
        self: GenerationHost,
        prompt: str | Sequence[str] | None = None,
        *,
        input_ids: torch.Tensor | Sequence[Sequence[int]] | None = None,
        attention_mask: torch.Tensor | None = None,
        chat: bool | None = None,
        skip_special_tokens: bool = True,
        **kwargs: Any,
    ) -> GenerateOutput:
        """Generates text conditioned on a prompt (or token ids) and any of the model's modality inputs.

        Args:
            prompt: one prompt or a list (a batch). Placeholders like ``<image>`` fix where each input's tokens go;
                without them, a modality's tokens go before the text, in the model's modality order.
            input_ids: token ids instead of a prompt (as in HF ``generate``); modality tokens go after BOS.
            attention_mask: with padded ``input_ids``.
            chat: wrap the prompt in the tokenizer's chat template (default: ``config.llm.apply_chat_template``).
            **kwargs: modality inputs by plugin name (``image=...``, ``audio=...``), then any HF generation
                argument (``max_new_tokens``, ``do_sample``, ``temperature``, ``top_p``, ``streamer``, ...).
        """
        modal_kwargs, hf_kwargs = _split_generate_kwargs(self, kwargs)
        if (prompt is None) == (input_ids is None):
            raise InputError("give exactly one of prompt= or input_ids=")
        if input_ids is not None:
            input_ids = _as_id_rows(input_ids)
        # with input_ids, a batch of one takes its modality inputs unwrapped, as a single prompt would
        batched = isinstance(prompt, (list, tuple)) or (input_ids is not None and len(input_ids) > 1)
        prompts: list[Any] | None = None  # checked to be strings below
        if prompt is not None:
            prompts = list(prompt) if isinstance(prompt, (list, tuple)) else [prompt]
            for i, text in enumerate(prompts):
                if not isinstance(text, str):
                    raise InputError(f"prompt[{i}]: expected a string, got {type(text).__name__}")
            n_rows = len(prompts)
        else:
            assert input_ids is not None  # exactly one of prompt and input_ids, checked above
            n_rows = len(input_ids)
        if n_rows == 0:
            raise InputError("prompt is an empty list: nothing to generate")

        per_row: list[dict[str, list[Any]]] = [{} for _ in range(n_rows)]
        for name, value in modal_kwargs.items():
            for r, items in enumerate(_row_inputs(self.plugins[name], value, n_rows, batched, name)):
                per_row[r][name] = items

        # inputs a plugin derives for another (a video's audio track when route_audio is set)
        prompts, per_row = add_companion_inputs(self.plugins, prompts, per_row)

        use_chat = self.config.llm.apply_chat_template if chat is None else chat
        if prompts is not None:
            rows = [
                self.prompt_encoder.encode_prompt(
                    text,
                    {k: len(v) for k, v in row.items()},
                    chat=use_chat,
                    where=f"prompt[{r}]" if batched else "prompt",
                )
                for r, (text, row) in enumerate(zip(prompts, per_row))
            ]
        else:
            assert input_ids is not None
            rows = _rows_from_input_ids(self, input_ids, attention_mask, per_row)

        batches: dict[str, Any] = {}
        for name in self.plugins:
            raws = [raw for row in per_row for raw in row.get(name, [])]
            if raws:
                batches[name] = self.preprocess(name, raws)
        fused = self.fuse(rows, batches, padding_side="left")  # also checks lengths against the LLM's context
        hf_kwargs.setdefault("pad_token_id", _pad_token_id(self))
        if batches or hf_kwargs.get("streamer") is not None:  # a streamer would see the prompt ids on the other path
            sequences = _llm_generate(
                self, inputs_embeds=fused.inputs_embeds, attention_mask=fused.attention_mask, **hf_kwargs
            )
        else:  # text only: the LLM's own input_ids path, exactly bare HF generate (its embeds path costs more)
            ids = _left_padded(rows, hf_kwargs["pad_token_id"] or 0, fused.attention_mask)
            sequences = _llm_generate(self, input_ids=ids, attention_mask=fused.attention_mask, **hf_kwargs)
            sequences = sequences[:, ids.shape[1] :]  # new tokens only, as the embeds path returns them
        texts: list[str] = []
        if self.tokenizer is not None:
            texts = self.tokenizer.batch_decode(sequences, skip_special_tokens=skip_special_tokens)
        outputs: dict[str, list[Any]] = {}
        if self.output_plugins:
            where = [f"prompt[{r}]" if batched else "prompt" for r in range(n_rows)]
            outputs = self.decode_outputs(fused, sequences, per_row, where)
        return GenerateOutput(sequences=sequences, texts=texts, outputs=outputs)


def _left_padded(rows: list[list[int]], pad_id: int, attention_mask: torch.Tensor) -> torch.Tensor:
    """Token rows as one left-padded id tensor laid out like ``attention_mask``."""
    ids = torch.full(attention_mask.shape, pad_id, dtype=torch.long, device=attention_mask.device)
    for i, row in enumerate(rows):
        if row:
            ids[i, attention_mask.shape[1] - len(row) :] = torch.tensor(row, dtype=torch.long)
    return ids
