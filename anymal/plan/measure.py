"""Measures the real peak memory of CPU training steps of small LLaMA models, to check the planner against.

A step is what AnyMAL trains: projector tokens spliced in front of the text embeddings of a frozen (optionally
4-bit, optionally LoRA-wrapped) ``LlamaForCausalLM`` built from a config with transformers, forward with labels,
backward, AdamW step. Memory is the process's resident set, which is what a CPU "device" has:

* the model's resident size is the growth of anonymous memory (``RssAnon``) while it is built; a 4-bit model is
  loaded from a random checkpoint, and the tensors it would keep mapped from that file are copied into memory,
  as loading onto a GPU does;
* the training steps' peak is the kernel's high-water mark (``VmHWM``), reset with ``/proc/self/clear_refs``
  just before the steps, minus the resident size at that moment.

Their sum is the measured peak. Each measurement runs in a fresh interpreter with glibc's ``mmap`` threshold
pinned at 64 KiB, so that freed tensors go back to the kernel instead of staying in malloc's heap (which would
hide reuse and make the numbers depend on history); a tiny warm-up step first pages in the code. Several
measurements may share one process (everything is freed in between). Linux only.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from anymal.errors import ConfigError
from anymal.hf_compat import enable_activation_checkpointing, peft_internal_deprecations_silenced
from anymal.plan.config import LLMArchConfig, ModalityLoad, PlanConfig, plan_config_from_dict

MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "131072", "MALLOC_ARENA_MAX": "2"}


def proc_status_bytes() -> dict[str, int]:
    """This process's peak (``VmHWM``), resident (``VmRSS``), anonymous and file-backed sizes, in bytes."""
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
                out[key] = int(value.split()[0]) * 1024
    return out


def reset_peak() -> None:
    """Resets ``VmHWM`` to the present resident size (Linux ``clear_refs``), so the next peak is measured afresh."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def measurable(cfg: PlanConfig) -> None:
    """Raises ``ConfigError`` unless ``measure`` can run ``cfg`` (CPU, no 8-bit, projectors as linear maps)."""
    if cfg.device != "cpu":
        raise ConfigError("measure: device must be cpu (the planner's CUDA overheads cannot be measured here)")
    if cfg.quantization == "8bit":
        raise ConfigError("measure: 8-bit LLM.int8 training runs a different code path on CPU; not measured")
    if cfg.use_cache:
        raise ConfigError("measure: training runs with use_cache=false")
    for name, m in cfg.modalities.items():
        if m.encoder_params:
            raise ConfigError(f"measure: modalities.{name}.encoder_params must be 0 (features are given)")
        if m.feature_tokens != m.tokens_per_item or not m.feature_dim:
            raise ConfigError(f"measure: modalities.{name} needs feature_tokens == tokens_per_item and a feature_dim")


def projector_params(feature_dim: int, hidden: int) -> int:
    """Parameters of the per-token linear projector ``measure`` trains: ``Linear(feature_dim, hidden)``."""
    return feature_dim * hidden + hidden


def cpu_case(
    *,
    hidden: int,
    layers: int,
    heads: int,
    kv_heads: int,
    intermediate: int,
    vocab: int,
    batch: int,
    text: int,
    image_tokens: int,
    feature_dim: int,
    **overrides: Any,
) -> dict[str, Any]:
    """A plan-config dict that ``measure`` can run on CPU: a LLaMA of the given shape and (``feature_dim`` > 0) one
    image modality fed by the linear projector ``measure`` trains. ``overrides`` set any other plan field."""
    data: dict[str, Any] = {
        "llm": {
            "n_layers": layers,
            "hidden": hidden,
            "intermediate": intermediate,
            "heads": heads,
            "kv_heads": kv_heads,
            "vocab": vocab,
        },
        "device": "cpu",
        "compute_dtype": "float32",
        "micro_batch": batch,
        "text_tokens": text,
        "modalities": {},
    }
    if feature_dim:
        data["modalities"]["image"] = {
            "tokens_per_item": image_tokens,
            "feature_tokens": image_tokens,
            "feature_dim": feature_dim,
            "projector_params": projector_params(feature_dim, hidden),
        }
    data.update(overrides)
    return data


def tiny_variant(cfg: PlanConfig) -> PlanConfig:
    """The same setup on a tiny model and batch, for the warm-up step."""
    heads = 4
    kv = heads if cfg.arch().kv_heads == cfg.arch().heads else 2
    mods = {
        name: ModalityLoad(tokens_per_item=2, feature_tokens=2, feature_dim=8, projector_params=projector_params(8, 64))
        for name in cfg.modalities
    }
    llm = LLMArchConfig(n_layers=1, hidden=64, intermediate=128, heads=heads, kv_heads=kv, vocab=128)
    return replace(cfg, llm=llm, modalities=mods, micro_batch=2, text_tokens=8)


def build_training_setup(cfg: PlanConfig, seed: int, workdir: str | os.PathLike) -> tuple[Any, Any, Any]:
    """The LLM (quantised / LoRA-wrapped as configured), the projectors and the optimizer (``None`` if nothing trains).

    A 4-bit LLM is loaded from the random checkpoint :func:`save_random_llm` wrote into ``workdir``.
    """
    import torch
    from transformers import BitsAndBytesConfig, LlamaForCausalLM

    arch = cfg.arch()
    dtype = getattr(torch, cfg.compute_dtype)
    torch.manual_seed(seed)
    if cfg.quantization == "4bit":
        folder = _llm_folder(cfg, workdir)
        if not folder.exists():
            raise RuntimeError(f"{folder} should have been saved before the measurement started")
        bnb = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=cfg.quant_type,
            bnb_4bit_use_double_quant=cfg.double_quant,
            bnb_4bit_compute_dtype=dtype,
        )
        # a plain module from here on: PEFT wraps it below
        model: torch.nn.Module = LlamaForCausalLM.from_pretrained(
            folder, quantization_config=bnb, dtype=dtype, device_map="cpu"
        )
        _own_memory(model)
    else:
        model = LlamaForCausalLM(llama_config(cfg)).to(dtype)
    model.requires_grad_(cfg.full_finetune)
    if cfg.lora_rank:
        from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

        lora = LoraConfig(r=cfg.lora_rank, target_modules=list(cfg.lora_targets), lora_dropout=cfg.lora_dropout)
        with peft_internal_deprecations_silenced():
            if cfg.quantization != "none" and cfg.kbit_prepare:
                model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
            model = get_peft_model(model, lora)
    if cfg.gradient_checkpointing:
        enable_activation_checkpointing(model)
    model.train()
    tdtype = getattr(torch, cfg.trainable_dtype)
    projectors = torch.nn.ModuleDict(
        {name: torch.nn.Linear(m.feature_dim, arch.hidden, dtype=tdtype) for name, m in cfg.modalities.items()}
    )
    params = [p for p in model.parameters() if p.requires_grad] + list(projectors.parameters())
    optimizer: torch.optim.Optimizer | None
    if not params:
        optimizer = None
    elif cfg.optimizer == "adamw":
        optimizer = torch.optim.AdamW(params, lr=1e-4)
    else:
        import bitsandbytes as bnb_lib

        optimizer = bnb_lib.optim.AdamW8bit(params, lr=1e-4)
    return model, projectors, optimizer


def llama_config(cfg: PlanConfig) -> Any:
    """The transformers ``LlamaConfig`` of the plan's architecture (SDPA attention)."""
    from transformers import LlamaConfig

    arch = cfg.arch()
    return LlamaConfig(
        hidden_size=arch.hidden,
        intermediate_size=arch.intermediate,
        num_hidden_layers=arch.n_layers,
        num_attention_heads=arch.heads,
        num_key_value_heads=arch.kv_heads,
        head_dim=arch.head_dim,
        vocab_size=arch.vocab,
        tie_word_embeddings=arch.tie_embeddings,
        max_position_embeddings=max(cfg.seq_len, 128),
        # a PretrainedConfig keyword that LlamaConfig's typed signature (transformers 5) leaves out; accepted
        attn_implementation="sdpa",  # type: ignore[call-arg]
    )


def _llm_folder(cfg: PlanConfig, workdir: str | os.PathLike) -> Path:
    a = cfg.arch()
    return Path(workdir) / f"llm_{a.n_layers}x{a.hidden}_{a.intermediate}_{a.heads}_{a.kv_heads}_{a.vocab}"


def _own_memory(model: Any) -> None:
    """Copies tensors that still live in the mapped checkpoint file into process memory, as a GPU load would."""
    import torch

    copies: dict[int, torch.Tensor] = {}
    with torch.no_grad():
        for t in [*model.parameters(), *model.buffers()]:
            if type(t).__name__ == "Params4bit":
                continue  # quantised on load: already in process memory
            key = t.untyped_storage().data_ptr()
            if key not in copies:
                copies[key] = t.data.clone()
            t.data = copies[key]
    gc.collect()


def save_random_llm(cfg: PlanConfig, workdir: str | os.PathLike, seed: int) -> None:
    """Writes the random fp32 LLM that a 4-bit case loads (before the measurement starts)."""
    import torch
    from transformers import LlamaForCausalLM

    folder = _llm_folder(cfg, workdir)
    if folder.exists():
        return
    torch.manual_seed(seed)
    LlamaForCausalLM(llama_config(cfg)).save_pretrained(folder)
    gc.collect()


def training_batch(cfg: PlanConfig, model: Any, projectors: Any, generator: Any) -> dict[str, Any]:
    """One random micro-batch as model inputs: projector tokens spliced before text embeddings, with labels.

    With ``cfg.padded`` the first example's last eighth is padding (masked and ignored by the loss).
    """
    import torch

    arch = cfg.arch()
    b = cfg.micro_batch
    dtype = model.get_input_embeddings().weight.dtype
    ids = torch.randint(0, arch.vocab, (b, cfg.text_tokens), generator=generator)
    mod_tokens = []
    for name, m in cfg.modalities.items():
        feats = torch.randn(b * m.items_per_example, m.tokens_per_item, m.feature_dim, generator=generator)
        tokens = projectors[name](feats.to(projectors[name].weight.dtype))
        mod_tokens.append(tokens.reshape(b, m.items_per_example * m.tokens_per_item, arch.hidden).to(dtype))
    with torch.set_grad_enabled(cfg.full_finetune):  # the embedding table trains only in full fine-tuning
        text = model.get_input_embeddings()(ids)
    embeds = torch.cat([*mod_tokens, text], dim=1)
    n_mod = embeds.shape[1] - cfg.text_tokens
    labels = torch.cat([torch.full((b, n_mod), -100), ids], dim=1)
    mask = torch.ones(b, embeds.shape[1], dtype=torch.long)
    if cfg.padded:
        pad = max(1, cfg.text_tokens // 8)
        mask[0, -pad:] = 0
        labels[0, -pad:] = -100
    return {"inputs_embeds": embeds, "attention_mask": mask, "labels": labels, "use_cache": False}


def _steps(cfg: PlanConfig, model: Any, projectors: Any, optimizer: Any, steps: int, seed: int) -> float:
    import torch

    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    for _ in range(steps):
        out = model(**training_batch(cfg, model, projectors, generator))
        out.loss.backward()
        del out
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def _tensor_bytes(*modules_or_optim: Any) -> int:
    """Bytes of the unique tensor storages of modules (parameters, buffers, 4-bit quant states) and optimizers."""
    import torch

    seen: dict[int, int] = {}

    def add(t: Any) -> None:
        if isinstance(t, torch.Tensor):
            st = t.untyped_storage()
            seen[st.data_ptr()] = st.nbytes()

    for obj in modules_or_optim:
        if isinstance(obj, torch.nn.Module):
            for t in [*obj.parameters(), *obj.buffers()]:
                add(t)
                qs = getattr(t, "quant_state", None)
                while qs is not None:
                    for name in ("absmax", "code", "offset"):
                        add(getattr(qs, name, None))
                    qs = getattr(qs, "state2", None)
        else:
            for state in obj.state.values():
                for t in state.values():
                    add(t)
    return sum(seen.values())


def measure(
    cfg: PlanConfig, steps: int = 2, seed: int = 0, workdir: str | os.PathLike | None = None, threads: int = 1
) -> dict:
    """Runs ``steps`` training steps of ``cfg`` in this process and returns the measured memory.

    Call it through :func:`measure_in_subprocess` for clean numbers (fresh process, pinned malloc settings).
    One intra-op thread by default: memory does not depend on it, and on a shared machine several OpenMP threads
    per process slow the steps down by an order of magnitude.

    Returns:
        ``peak_bytes`` (model resident size + training peak above it), ``model_bytes``, ``steps_peak_bytes``,
        ``tensor_bytes`` (parameters, buffers, quantisation states and optimizer states counted tensor by tensor)
        and ``seconds``.
    """
    import torch

    measurable(cfg)
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(workdir) if workdir is not None else Path(tmp)
        tiny = tiny_variant(cfg)
        if cfg.quantization == "4bit":
            save_random_llm(tiny, work, seed)
            save_random_llm(cfg, work, seed)
        parts = build_training_setup(tiny, seed, work)
        _steps(tiny, *parts, steps=1, seed=seed)
        del parts
        gc.collect()

        before = proc_status_bytes()
        model, projectors, optimizer = build_training_setup(cfg, seed, work)
        gc.collect()
        built = proc_status_bytes()
        reset_peak()
        ready = proc_status_bytes()
        seconds = _steps(cfg, model, projectors, optimizer, steps, seed)
        after = proc_status_bytes()
        tensors = _tensor_bytes(model, projectors, optimizer)
    model_bytes = built["RssAnon"] - before["RssAnon"]
    steps_peak = after["VmHWM"] - ready["VmRSS"]
    return {
        "peak_bytes": model_bytes + steps_peak,
        "model_bytes": model_bytes,
        "steps_peak_bytes": steps_peak,
        "tensor_bytes": tensors,
        "seconds": seconds,
        "status": {"before": before, "built": built, "ready": ready, "after": after},
    }


def measure_in_subprocess(cfg: PlanConfig, steps: int = 2, seed: int = 0, timeout: float = 900) -> dict:
    """:func:`measure` in a fresh Python process with glibc's malloc pinned (see the module docstring)."""
    return measure_many_in_subprocess([cfg], steps, seed, timeout)[0]


def measure_many_in_subprocess(
    cfgs: list[PlanConfig], steps: int = 2, seed: int = 0, timeout: float = 900
) -> list[dict]:
    """Measures several configs one after the other in one fresh process (saves the interpreter start-up).

    Everything a measurement allocates is freed before the next one starts, and the pinned ``mmap`` threshold
    returns it to the kernel, so each baseline is clean.
    """
    for cfg in cfgs:
        measurable(cfg)
    env = {**os.environ, **MALLOC_ENV, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    payload = json.dumps({"configs": [cfg.to_dict() for cfg in cfgs], "steps": steps, "seed": seed})
    proc = subprocess.run(
        [sys.executable, "-m", "anymal.plan.measure"],
        input=payload,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"measurement failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    """Reads ``{"configs": [{...}, ...], "steps": n, "seed": s}`` on stdin; prints the results as one JSON line."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.parse_args(argv)
    request = json.loads(sys.stdin.read())
    configs = request.get("configs") or [request["config"]]
    results = []
    for data in configs:
        cfg = plan_config_from_dict(data)
        results.append(measure(cfg, steps=request.get("steps", 2), seed=request.get("seed", 0)))
        gc.collect()
    print(json.dumps(results if "configs" in request else results[0]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
