"""anymal on a CUDA GPU: the table of ``../shared/measurements/gpu_2026-11-30/README.md``, re-measured, plus the
planner against each measured peak, the epoch-boundary steps, HF LLaVA at the same 4-bit 7B, and the 70B paper case
in anymal's own dtypes.

No weights and no network are needed: the LLMs are LLaMA-2-*shaped* with random weights (small values so bf16
activations stay finite), built from a config; the vision towers are transformers ``CLIPVisionModel`` s of
ViT-L/14-336 and ViT-bigG/14 shape (``backend="hf"``, random init: open_clip need not be installed); the
tokenizer is the real LLaMA-2 one (``--tokenizer``); images are random 336x336 PNGs.

Phases (each guarded: a failure is recorded with its traceback and the others go on; the JSON is rewritten after
every phase):

1. ``load_4bit``: a 7B-shaped LLM saved as an HF folder, loaded through ``AnyMAL(config)`` in 4-bit NF4 + double
   quant (bf16 compute): load time, bytes per parameter, the encoder's dtype as anymal placed it.
2. ``generate``: image prompt, greedy, 64 forced tokens at batch 1 and 8; text-only through the wrapper vs bare HF
   ``generate`` (best of 3).
3. ``train_align``: ``anymal.train.loop.train`` on 16 image-caption pairs, batch 4, bf16 autocast: step times
   (every step: the first step of each epoch is the epoch-start row), nvml / torch peaks, and the planner's
   estimate of the same ``TrainConfig`` (text tokens counted from the data with the real tokenizer).
4. ``instruct_qlora``: the same with stage ``instruct`` and LoRA r=64 on q/k/v/o (QLoRA).
5. ``llava_ratio``: one alignment step of AnyMAL vs HF ``LlavaForConditionalGeneration`` sharing the very same
   4-bit LLM object, the same vision tower, batch and token count (AnyMAL's resampler emits as many tokens as
   LLaVA's MLP: one per patch); alternating rounds, median of per-round ratios.
6. ``align_70b``: LLaMA-2-70B's shape built in 4-bit directly on the GPU layer by layer (no checkpoint fits the
   disk), its embeddings/norms/LM head in ``--llm-dtype`` (bf16, as ``load_llm`` loads them; the 2026-11-30
   measurement had float32 ones), a ViT-bigG-shaped tower in ``--encoder-dtype``, the 6x1024 resampler of
   ``configs/align/image_llama2_70b.yaml``, batch 4 with ~210 text tokens, without and with gradient
   checkpointing: does it fit 80 GB, and the planner's estimate.

Usage::

    python bench/bench_gpu.py --quick --out gpu_bench.json                  # one H200: about 4 minutes
    python bench/bench_gpu.py --device cpu --tiny --out /tmp/gpu_bench.json # the script's own CPU test, seconds
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import shutil
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
for extra in (ROOT, ROOT / "plugins"):  # runs from a checkout without installing anymal
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

LLAMA = {
    "7b": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
               num_key_value_heads=32),
    "70b": dict(hidden_size=8192, intermediate_size=28672, num_hidden_layers=80, num_attention_heads=64,
                num_key_value_heads=8),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=4),
    "tiny_gqa": dict(hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=8,
                     num_key_value_heads=2),
}  # fmt: skip
CLIP = {  # transformers CLIPVisionConfig fields
    "vit_l_336": dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                      image_size=336, patch_size=14, hidden_act="quick_gelu"),
    "vit_bigg": dict(hidden_size=1664, intermediate_size=8192, num_hidden_layers=48, num_attention_heads=16,
                     image_size=224, patch_size=14, hidden_act="gelu"),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 image_size=64, patch_size=8, hidden_act="quick_gelu"),
}  # fmt: skip
WORDS = ["red", "green", "blue", "cat", "dog", "car", "tree", "house", "river", "sky", "person", "bird"]
R: dict[str, Any] = {"phases": {}}
ARGS: argparse.Namespace
T0 = time.time()


def log(*parts: Any) -> None:
    print(f"[{time.time() - T0:7.1f}s]", *parts, flush=True)


def dump() -> None:
    Path(ARGS.out).write_text(json.dumps(R, indent=1, default=str))


def phase(name: str):
    def wrap(fn):
        def run(*a, **k):
            log("phase", name)
            start = time.time()
            try:
                out = fn(*a, **k) or {}
                R["phases"][name] = {"ok": True, "s": round(time.time() - start, 2), **out}
            except BaseException as exc:
                R["phases"][name] = {"ok": False, "s": round(time.time() - start, 2), "error": repr(exc)[:600],
                                     "trace": traceback.format_exc()[-3000:]}  # fmt: skip
                log("FAILED", name, repr(exc)[:300])
                if isinstance(exc, KeyboardInterrupt):
                    raise
            dump()
            return R["phases"][name]

        return run

    return wrap


# --- device helpers ---------------------------------------------------------------------------------------------
def cuda() -> bool:
    return ARGS.device == "cuda"


def sync() -> None:
    if cuda():
        torch.cuda.synchronize()


def free() -> None:
    gc.collect()
    if cuda():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def mem() -> dict[str, float]:
    if not cuda():
        return {}
    g = 2**30
    return {"alloc_gib": round(torch.cuda.memory_allocated() / g, 3),
            "reserved_gib": round(torch.cuda.memory_reserved() / g, 3),
            "max_alloc_gib": round(torch.cuda.max_memory_allocated() / g, 3),
            "max_reserved_gib": round(torch.cuda.max_memory_reserved() / g, 3)}  # fmt: skip


class NvmlPeak:
    """The whole device's used memory (context + allocator pools, as nvidia-smi sees it), polled every 20 ms."""

    def __init__(self) -> None:
        self.peak, self.error, self._stop = 0, None, threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        try:
            import pynvml

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(torch.cuda.current_device())
            while not self._stop.is_set():
                self.peak = max(self.peak, pynvml.nvmlDeviceGetMemoryInfo(handle).used)
                time.sleep(0.02)
        except Exception as exc:
            self.error = repr(exc)

    def __enter__(self) -> NvmlPeak:
        if cuda():
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=1)

    @property
    def gib(self) -> float | None:
        return round(self.peak / 2**30, 3) if self.peak else None


# --- models and data --------------------------------------------------------------------------------------------
def register_plugins() -> None:
    """The image plugin, also when anymal is not installed (no entry points)."""
    from anymal.registry import get_plugin, register_plugin

    try:
        get_plugin("image")
    except Exception:
        from anymal_image import ImagePlugin

        register_plugin(ImagePlugin, replace=True)


def llm_config(shape: str):
    from transformers import LlamaConfig

    return LlamaConfig(**LLAMA[shape], vocab_size=32000, max_position_embeddings=4096, bos_token_id=1,
                       eos_token_id=2, pad_token_id=0, tie_word_embeddings=False)  # fmt: skip


def copy_tokenizer(folder: Path) -> None:
    for f in Path(ARGS.tokenizer).iterdir():
        if f.is_file():
            shutil.copy(f, folder / f.name)


def image_config(vit: str, num_tokens: int, encoder_dtype: str, **extra: Any):
    from anymal_image.config import ImagePluginConfig

    model_config = {"model_type": "clip_vision_model", **CLIP[vit]}
    return ImagePluginConfig(backend="hf", model_name=f"hf-{vit}", pretrained=None, model_config=model_config,
                             num_tokens=num_tokens, encoder_dtype=encoder_dtype, **extra)  # fmt: skip


def anymal_config(folder: Path, image: Any):
    from anymal.config import AnyMALConfig, LLMConfig, QuantizationConfig

    quant = QuantizationConfig(mode="4bit", quant_type="nf4", double_quant=True, compute_dtype="bfloat16")
    return AnyMALConfig(llm=LLMConfig(name_or_path=str(folder), dtype="bfloat16", quantization=quant),
                        modalities={"image": image})  # fmt: skip


def towers_on_device() -> None:
    """Random vision towers are initialised on the GPU (a 1.8B-parameter ViT takes long on the CPU) and cast to
    the config's ``encoder_dtype``: the weights and dtypes anymal places there."""
    from anymal_image.plugin import ImagePlugin

    original = ImagePlugin.build_encoder
    if getattr(original, "_on_device", False):
        return

    def build_encoder(self):
        from anymal.plugin import encoder_dtype_for

        if torch.empty(0).device.type == "meta":  # the planner counting parameters: stay on meta
            return original(self)
        with torch.device(ARGS.device):
            tower = original(self)
        # encoder_dtype as anymal.plugin.place_frozen_encoder applies it (for an AnyMAL that does not call it yet)
        return tower.to(dtype=encoder_dtype_for(self.config.encoder_dtype, ARGS.device))

    build_encoder._on_device = True  # type: ignore[attr-defined]
    ImagePlugin.build_encoder = build_encoder  # type: ignore[method-assign]


def encoder_dtype_of(model) -> str:
    return str(next(model.encoders["image"].parameters()).dtype).replace("torch.", "")


def place_encoders(model, encoder_dtype: str) -> None:
    """Applies ``encoder_dtype`` where the installed ``AnyMAL`` does not (yet): anymal.plugin.place_frozen_encoder."""
    from anymal.plugin import encoder_dtype_for

    want = encoder_dtype_for(encoder_dtype, ARGS.device)
    for name, enc in model.encoders.items():
        if next(enc.parameters()).dtype != want:
            model.encoders[name] = enc.to(dtype=want)


def images(n: int, size: int = 336) -> list:
    from PIL import Image

    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)) for _ in range(n)]


def pairs(work: Path, n_words: int, n: int = 16) -> Path:
    folder = work / f"pairs_{n_words}"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    rows = []
    for i, im in enumerate(images(n)):
        path = folder / f"{i}.png"
        im.save(path)
        rows.append({"image": str(path), "caption": "A photo of " + " ".join(rng.choice(WORDS, n_words)) + "."})
    (folder / "pairs.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    return folder / "pairs.jsonl"


def batch_lengths(config, tokenizer_folder: Path, epochs: int) -> list[int]:
    """Per batch in the order training sees them: the longest text row (prompt + caption + EOS, sentinels left
    out). Captioning instructions are re-drawn every epoch, so new lengths appear at epoch starts."""
    from transformers import AutoTokenizer

    from anymal.processing import SENTINEL_BASE, PromptEncoder
    from anymal.train.dataset import EpochExamples
    from anymal.train.sampler import ShardedBatchSampler

    tok = AutoTokenizer.from_pretrained(str(tokenizer_folder))
    names = list(config.model["modalities"])
    source = EpochExamples(config.data, names, "raise", config.seed)
    encoder = PromptEncoder(tok, names)
    out: list[int] = []
    for epoch in range(epochs):
        examples = source(epoch)
        rows = [encoder.encode_conversation(e.turns, {k: len(v) for k, v in e.media.items()}, chat=config.chat,
                                            where="")[0] for e in examples]  # fmt: skip
        lens = [sum(1 for t in r if t > SENTINEL_BASE) for r in rows]
        sampler = ShardedBatchSampler(len(examples), config.batch_size, config.seed, epoch, groups=["x"] * len(rows))
        out += [max(lens[i] for i in b) for b in sampler.global_batches()]
    return out


def text_tokens(config, tokenizer_folder: Path, epochs: int) -> int:
    """The longest text row over the run's batches."""
    return max(batch_lengths(config, tokenizer_folder, epochs))


def shape_rows(run: dict[str, Any], lengths: list[int], multiple: int | None = None, offset: int = 64) -> None:
    """Adds each timed step's padded sequence length and whether the run met that length for the first time:
    the test of "the epoch-start stall is the first step at a new sequence length" (new GEMM shapes)."""
    if "step_s_all" not in run:
        return
    lengths = [n + offset for n in lengths]  # text plus the modality tokens: the LLM's sequence length
    if multiple:
        lengths = [-(-n // multiple) * multiple for n in lengths]
    seen = {lengths[0]}
    firsts = []
    for n in lengths[1 : len(run["step_s_all"]) + 1]:
        firsts.append(n not in seen)
        seen.add(n)
    run["step_seq_len"] = lengths[1 : len(firsts) + 1]
    run["step_is_new_length"] = firsts
    steps = run["step_s_all"]
    new = [t for t, f in zip(steps, firsts) if f]
    old = [t for t, f in zip(steps, firsts) if not f]
    run["new_length_step_s_median"] = round(float(np.median(new)), 4) if new else None
    run["seen_length_step_s_median"] = round(float(np.median(old)), 4) if old else None


def padded_fuse(multiple: int):
    """``AnyMAL.fuse`` padding every batch to a multiple of ``multiple`` tokens (masked, labels ignored): the fix
    proposed for the stall, tried here without changing anymal."""
    from anymal.fusion import FusedInputs
    from anymal.modeling import AnyMAL
    from anymal.processing import IGNORE_INDEX

    original = AnyMAL.fuse

    def fuse(self, *args: Any, **kwargs: Any):
        fused = original(self, *args, **kwargs)
        extra = -fused.inputs_embeds.shape[1] % multiple
        if not extra:
            return fused
        pad = torch.nn.functional.pad
        labels = None if fused.labels is None else pad(fused.labels, (0, extra), value=IGNORE_INDEX)
        return FusedInputs(pad(fused.inputs_embeds, (0, 0, 0, extra)), pad(fused.attention_mask, (0, extra)), labels)

    return original, fuse


def plan_of(config, tokens: int) -> dict[str, Any]:
    from anymal.plan import estimate
    from anymal.plan.from_train import plan_from_train

    plan, notes = plan_from_train(config, plan_overrides={"text_tokens": tokens, "device": "cuda"})
    est = estimate(plan).to_dict()
    return {"peak_gib": est["peak_gib"], "peak_phase": est["peak_phase"], "text_tokens": tokens, "notes": notes,
            "components": {c["name"]: c["gib"] for c in est["components"]}}  # fmt: skip


def timed_train(config, epoch_rows: int | None = None) -> dict[str, Any]:
    """``anymal.train.loop.train``: step times from an optimiser hook, nvml and torch peaks."""
    from torch.optim.optimizer import register_optimizer_step_post_hook

    from anymal.train.loop import train

    stamps: list[float] = []

    def hook(*_a: Any) -> None:
        sync()
        stamps.append(time.perf_counter())

    free()
    handle = register_optimizer_step_post_hook(hook)
    err, steps = None, 0
    start = time.perf_counter()
    with NvmlPeak() as nvml:
        try:
            steps = train(config).steps
        except Exception:
            err, steps = traceback.format_exc()[-2500:], len(stamps)
        finally:
            handle.remove()
    sync()
    out: dict[str, Any] = {"steps": steps, "total_s": round(time.perf_counter() - start, 2), "nvml_peak_gib": nvml.gib,
                           "nvml_error": nvml.error, "train_error": err, **mem()}  # fmt: skip
    if len(stamps) > 3:
        diffs = np.diff(stamps)  # diffs[i]: the step that ended at stamps[i + 1], i.e. step i + 2
        out["step_s_median"] = round(float(np.median(diffs)), 4)
        out["step_s_all"] = [round(float(x), 4) for x in diffs]
        if epoch_rows:
            per_epoch = epoch_rows // config.batch_size
            first = [i - 2 for i in range(per_epoch + 1, steps + 1, per_epoch) if 0 <= i - 2 < len(diffs)]
            out["epoch_start_step_s"] = [round(float(diffs[i]), 4) for i in first]
            out["other_step_s_median"] = round(float(np.median(np.delete(diffs, first))), 4)
    return out


def train_config(folder: Path, work: Path, data: Path, stage: str, run: str, **extra: Any):
    from anymal.config import config_to_dict
    from anymal.train.config import DataSpec, TrainConfig

    image = image_config("tiny" if ARGS.tiny else "vit_l_336", 64, ARGS.encoder_dtype)
    return TrainConfig(model=config_to_dict(anymal_config(folder, image)), stage=stage, train_modalities=["image"],
                       data=[DataSpec(kind="pairs", path=str(data), modality="image", media_key="image")],
                       output_dir=str(work / run), max_steps=ARGS.steps, batch_size=4, lr=1e-4,
                       mixed_precision="bf16" if cuda() else "no", log_every=1, on_error="raise", **extra)  # fmt: skip


# --- phases -----------------------------------------------------------------------------------------------------
MODEL: dict[str, Any] = {}


@phase("env")
def env() -> dict[str, Any]:
    import importlib.metadata as md

    out: dict[str, Any] = {"torch": torch.__version__, "cuda": torch.version.cuda, "device": ARGS.device,
                           "gpu": torch.cuda.get_device_name() if cuda() else None, "argv": sys.argv[1:]}  # fmt: skip
    for name in ("transformers", "bitsandbytes", "peft", "accelerate", "anymal"):
        try:
            out[name] = md.version(name)
        except Exception as exc:
            out[name] = repr(exc)[:80]
    if cuda():
        free_b, total_b = torch.cuda.mem_get_info()
        out.update(total_gib=round(total_b / 2**30, 2), free_gib=round(free_b / 2**30, 2))
    return out


@phase("make_llm")
def make_llm(folder: Path) -> dict[str, Any]:
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    with torch.device(ARGS.device):
        model = LlamaForCausalLM(llm_config("tiny" if ARGS.tiny else "7b")).to(torch.bfloat16)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.02)
    n = sum(p.numel() for p in model.parameters())
    model.save_pretrained(folder)
    copy_tokenizer(folder)
    del model
    free()
    return {"params": n}


@phase("load_4bit")
def load_4bit(folder: Path) -> dict[str, Any]:
    from anymal import AnyMAL

    free()
    towers_on_device()
    image = image_config("tiny" if ARGS.tiny else "vit_l_336", 64, ARGS.encoder_dtype)
    start = time.perf_counter()
    model = AnyMAL(anymal_config(folder, image))
    sync()
    load_s = time.perf_counter() - start
    placed = encoder_dtype_of(model)  # what anymal itself did with encoder_dtype
    place_encoders(model, ARGS.encoder_dtype)
    MODEL["m"] = model
    n = R["phases"]["make_llm"]["params"]
    llm_bytes = sum(t.numel() * t.element_size() for t in [*model.llm.parameters(), *model.llm.buffers()])
    return {"load_s": round(load_s, 2), "llm_bytes_per_param": round(llm_bytes / n, 4),
            "llm_gib": round(llm_bytes / 2**30, 3), "encoder_dtype_as_anymal_placed_it": placed,
            "encoder_dtype_used": encoder_dtype_of(model), "trainable": model.trainable_summary(), **mem()}  # fmt: skip


@phase("generate")
def generate() -> dict[str, Any]:
    model = MODEL["m"]
    out: dict[str, Any] = {}
    size = 64 if ARGS.tiny else 336
    imgs = images(8, size)
    kw = dict(max_new_tokens=64, min_new_tokens=64, do_sample=False)
    model.generate(prompt="<image> Describe the picture.", image=imgs[0], max_new_tokens=4)  # warm-up
    for bs in (1, 8):
        prompts = ["<image> Describe the picture in detail."] * bs
        sync()
        start = time.perf_counter()
        res = model.generate(prompts if bs > 1 else prompts[0], image=imgs[:bs] if bs > 1 else imgs[0], **kw)
        sync()
        dt = time.perf_counter() - start
        out[f"image_bs{bs}_tok_s"] = round(int(res.sequences.shape[-1]) * bs / dt, 1)
    ids = model.tokenizer("Once upon a time there was a", return_tensors="pt").input_ids.to(model.device)
    times: dict[str, list[float]] = {"wrapper": [], "bare": []}
    for _ in range(3):
        for side in ("wrapper", "bare"):
            sync()
            start = time.perf_counter()
            if side == "wrapper":
                model.generate(input_ids=ids, **kw)
            else:
                model.llm.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **kw)
            sync()
            times[side].append(time.perf_counter() - start)
    w, b = min(times["wrapper"]), min(times["bare"])
    out.update(text_wrapper_s=round(w, 3), text_bare_s=round(b, 3), text_overhead_pct=round(100 * (w / b - 1), 1))
    return {**out, **mem()}


def planned_and_timed(config, folder: Path) -> tuple[dict[str, Any], list[int]]:
    """Plans ``config`` at its longest batch, trains it (16-row epochs), and reports the plan's error against the
    measured nvml peak (positive: the planner is conservative). Returns the results and the batches' lengths."""
    lengths = batch_lengths(config, folder, -(-ARGS.steps * 4 // 16))
    plan = plan_of(config, max(lengths))
    out = timed_train(config, epoch_rows=16)
    shape_rows(out, lengths)
    out["plan"] = plan
    if out.get("nvml_peak_gib"):
        out["plan_error_pct"] = round(100 * (plan["peak_gib"] / out["nvml_peak_gib"] - 1), 1)
    return out, lengths


@phase("train_align")
def train_align(folder: Path, work: Path) -> dict[str, Any]:
    from anymal.modeling import AnyMAL

    MODEL.pop("m", None)
    config = train_config(folder, work, pairs(work, 24), "align", "run_align")
    out, lengths = planned_and_timed(config, folder)
    # the same run with batches padded to a multiple of 64 tokens: no new shapes after the first step
    original, fuse = padded_fuse(64)
    AnyMAL.fuse = fuse  # type: ignore[method-assign]
    try:
        padded = timed_train(train_config(folder, work, pairs(work, 24), "align", "run_align_pad64"), epoch_rows=16)
    finally:
        AnyMAL.fuse = original  # type: ignore[method-assign]
    shape_rows(padded, lengths, multiple=64)
    out["padded_to_64"] = {k: v for k, v in padded.items() if k.startswith(("step_", "epoch_", "other_", "new_",
                                                                             "seen_", "nvml", "max_"))}  # fmt: skip
    return out


@phase("instruct_qlora")
def instruct_qlora(folder: Path, work: Path) -> dict[str, Any]:
    from anymal.train.config import LoRASpec

    lora = LoRASpec(rank=64, alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
    config = train_config(folder, work, pairs(work, 24), "instruct", "run_instruct", lora=lora)
    return planned_and_timed(config, folder)[0]


@phase("llava_ratio")
def llava_ratio(folder: Path, work: Path) -> dict[str, Any]:
    """AnyMAL vs HF LLaVA: one alignment step each, the same 4-bit LLM object, tower, batch and token count."""
    from accelerate import Accelerator
    from bench_train_vs_llava import llava_batch, unused_token_id  # the same LLaVA rows as the CPU bench
    from transformers import CLIPVisionConfig, LlavaConfig, LlavaForConditionalGeneration

    from anymal import AnyMAL
    from anymal.train.config import DataSpec
    from anymal.train.dataset import Collator, TrainingDataset, read_examples
    from anymal.train.loop import token_loss

    MODEL.pop("m", None)
    free()
    towers_on_device()
    vit = "tiny" if ARGS.tiny else "vit_l_336"
    patches = (CLIP[vit]["image_size"] // CLIP[vit]["patch_size"]) ** 2
    image = image_config(vit, patches, ARGS.encoder_dtype, keep_cls_token=False)
    anymal = AnyMAL(anymal_config(folder, image))
    place_encoders(anymal, ARGS.encoder_dtype)
    anymal.set_trainable(projectors=["image"], lora=False)
    anymal.train()
    spec = DataSpec(kind="pairs", path=str(pairs(work, 24, n=4)), modality="image", media_key="image")
    examples, _ = read_examples([spec], anymal.plugins, "raise", seed=0)
    dataset = TrainingDataset(examples, anymal, chat=False, on_error="raise")
    batch = Collator(anymal)([dataset[i] for i in range(len(dataset))])

    tok = anymal.tokenizer
    image_token = unused_token_id(batch, tok)
    dev = anymal.device
    rows = llava_batch(batch, patches, image_token, 0)
    tower_dtype = next(anymal.encoders["image"].parameters()).dtype
    inputs = {key: value.to(dev) for key, value in rows.items() if key != "pixel_values"}
    inputs["pixel_values"] = rows["pixel_values"].to(dev, tower_dtype)
    width = inputs["input_ids"].shape[1]
    llm = anymal.llm
    vcfg = CLIPVisionConfig(**CLIP[vit])
    config = LlavaConfig(vision_config=vcfg, text_config=llm.config, image_token_id=image_token,
                         image_seq_length=patches, vision_feature_layer=-2, vision_feature_select_strategy="default",
                         projector_hidden_act="gelu")  # fmt: skip
    with torch.device("meta"):
        llava = LlavaForConditionalGeneration(config)
    llava.model.language_model = llm.model  # the same 4-bit LLM object
    llava.lm_head = llm.lm_head
    llava.model.vision_tower = anymal.encoders["image"].model  # the same CLIPVisionModel
    projector = llava.model.multi_modal_projector.to_empty(device=dev)
    for module in projector.modules():
        if isinstance(module, torch.nn.Linear):
            module.reset_parameters()
    llava.requires_grad_(False)
    projector.requires_grad_(True)
    llava.train()
    llava.model.vision_tower.eval()

    accelerator = Accelerator(cpu=not cuda(), mixed_precision="bf16" if cuda() else "no")

    def stepper(model, params, loss_fn):
        opt = torch.optim.AdamW(params, lr=1e-4)

        def step() -> float:
            with accelerator.autocast():
                loss = loss_fn()
                loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            return float(loss.detach())

        return step

    sides = {
        "anymal": stepper(anymal, [p for p in anymal.projectors.parameters() if p.requires_grad],
                          lambda: token_loss(anymal, batch, accelerator)[0]),
        "llava": stepper(llava, list(projector.parameters()), lambda: llava(**inputs).loss),
    }  # fmt: skip
    for step in sides.values():
        step()  # warm-up
    rounds, per_round = (2, 1) if ARGS.tiny else (3, 3) if ARGS.quick else (5, 5)
    ratios, best = [], {"anymal": [], "llava": []}
    for r in range(rounds):
        order = ["anymal", "llava"] if r % 2 == 0 else ["llava", "anymal"]
        times = {}
        for side in order:
            samples = []
            for _ in range(per_round):
                sync()
                start = time.perf_counter()
                sides[side]()
                sync()
                samples.append(time.perf_counter() - start)
            times[side] = min(samples)
            best[side].append(times[side])
        ratios.append(times["anymal"] / times["llava"])
    return {"tokens_per_image": patches, "batch": len(batch["input_ids"]), "seq_len_llava": width,
            "anymal_step_s": round(float(np.median(best["anymal"])), 4),
            "llava_step_s": round(float(np.median(best["llava"])), 4),
            "ratio_anymal_over_llava": round(float(np.median(ratios)), 3), **mem()}  # fmt: skip


@phase("align_70b")
def align_70b(work: Path) -> dict[str, Any]:
    """LLaMA-2-70B's shape in 4-bit built directly on the device layer by layer, handed to anymal's training loop
    in place of ``load_llm``; embeddings/norms/LM head in ``--llm-dtype``."""
    import bitsandbytes as bnb
    from transformers import LlamaForCausalLM
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    import anymal.modeling as modeling
    from anymal.config import config_to_dict
    from anymal.train.config import DataSpec, TrainConfig

    MODEL.pop("m", None)
    free()
    towers_on_device()
    dev = ARGS.device
    shape = "tiny_gqa" if ARGS.tiny else "70b"
    cfg = llm_config(shape)
    dtype = getattr(torch, ARGS.llm_dtype)
    start = time.perf_counter()
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # embeddings, norms and LM head in the LLM's dtype, as load_llm gives them
    try:
        with torch.device("meta"):
            model = LlamaForCausalLM(cfg)
    finally:
        torch.set_default_dtype(default)
    for layer in model.model.layers:
        for parent in (layer.self_attn, layer.mlp):
            for name, lin in list(parent.named_children()):
                if not isinstance(lin, torch.nn.Linear):
                    continue
                w = torch.empty(lin.out_features, lin.in_features, dtype=torch.bfloat16, device=dev).normal_(0, 0.02)
                q = bnb.nn.Linear4bit(lin.in_features, lin.out_features, bias=False, compute_dtype=torch.bfloat16,
                                      quant_type="nf4", compress_statistics=True, device="meta")  # fmt: skip
                q.weight = bnb.nn.Params4bit(w, requires_grad=False, quant_type="nf4", compress_statistics=True)
                setattr(parent, name, q.to(dev))
                del w
        for norm in (layer.input_layernorm, layer.post_attention_layernorm):
            norm.to_empty(device=dev)
            torch.nn.init.ones_(norm.weight)
    for mod in (model.model.embed_tokens, model.lm_head, model.model.norm):
        mod.to_empty(device=dev)
    with torch.no_grad():
        model.model.embed_tokens.weight.normal_(0, 0.02)
        model.lm_head.weight.normal_(0, 0.02)
        model.model.norm.weight.fill_(1.0)
    try:
        model.model.rotary_emb = LlamaRotaryEmbedding(config=cfg, device=dev)
    except TypeError:  # transformers >= 5.2x builds it without a device argument
        with torch.device(dev):
            model.model.rotary_emb = LlamaRotaryEmbedding(config=cfg)
    for attr in ("is_quantized", "is_loaded_in_4bit"):
        with contextlib.suppress(Exception):  # a read-only property in some transformers versions
            setattr(model, attr, True)
    sync()
    out: dict[str, Any] = {"build_s": round(time.perf_counter() - start, 2), "llm_dtype": ARGS.llm_dtype,
                           "embed_dtype": str(model.model.embed_tokens.weight.dtype), "after_build": mem()}  # fmt: skip
    folder = work / "llama_70b_shape"
    folder.mkdir(parents=True, exist_ok=True)
    cfg.save_pretrained(folder)
    from safetensors.torch import save_file

    save_file({"stand_in": torch.zeros(4)}, str(folder / "model.safetensors"))  # something for the fingerprint
    copy_tokenizer(folder)
    original_load_llm, built = modeling.load_llm, [model]
    modeling.load_llm = lambda config, device_map=None: built[0].requires_grad_(False).eval()
    data = pairs(work, 12 if ARGS.tiny else 190)
    vit = "tiny" if ARGS.tiny else "vit_bigg"
    image = image_config(vit, 64, ARGS.encoder_dtype, resampler_depth=6, resampler_dim=64 if ARGS.tiny else 1024)
    from anymal.config import AnyMALConfig, LLMConfig, QuantizationConfig

    quant = QuantizationConfig(mode="4bit", quant_type="nf4", double_quant=True, compute_dtype="bfloat16")
    mcfg = AnyMALConfig(llm=LLMConfig(name_or_path=str(folder), dtype=ARGS.llm_dtype, quantization=quant),
                        modalities={"image": image})  # fmt: skip
    for gc_on in (False, True):
        tcfg = TrainConfig(model=config_to_dict(mcfg), stage="align", train_modalities=["image"],
                           data=[DataSpec(kind="pairs", path=str(data), modality="image", media_key="image")],
                           output_dir=str(work / f"run70_{gc_on}"), max_steps=6 if not ARGS.tiny else 3,
                           batch_size=4, lr=2e-4, mixed_precision="bf16" if cuda() else "no",
                           gradient_checkpointing=gc_on, log_every=1, on_error="raise")  # fmt: skip
        tokens = text_tokens(tcfg, folder, 2)
        run = timed_train(tcfg)
        run["plan"] = plan_of(tcfg, tokens) if not ARGS.tiny else plan_of(tcfg, tokens)["peak_gib"]
        if run.get("nvml_peak_gib") and isinstance(run["plan"], dict):
            run["plan_error_pct"] = round(100 * (run["plan"]["peak_gib"] / run["nvml_peak_gib"] - 1), 1)
            run["fits_80gb"] = run["nvml_peak_gib"] <= 79.2  # an 80 GB H100/A100 has about 79.2 GiB usable
        out[f"gradient_checkpointing_{gc_on}"] = run
        dump()
    modeling.load_llm = original_load_llm
    del model
    built.clear()
    free()
    return out


def main(argv: list[str] | None = None) -> int:
    global ARGS
    default_tok = ROOT.parent / "shared" / "assets" / "tokenizer" / "llama2_hf"
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=("cuda", "cpu"))
    parser.add_argument("--tiny", action="store_true", help="tiny shapes (the CPU test of this script)")
    parser.add_argument("--quick", action="store_true", help="fewer timing rounds (one H200: about 4 minutes)")
    parser.add_argument("--tokenizer", default=str(default_tok), help="a LLaMA-2 tokenizer folder")
    parser.add_argument("--out", default="gpu_bench.json")
    parser.add_argument("--work", default=None, help="scratch folder (default: a new temporary one)")
    parser.add_argument("--steps", type=int, default=12, help="training steps of the 7B runs (16 rows, batch 4)")
    parser.add_argument("--encoder-dtype", default="float32", choices=("auto", "float32", "bfloat16", "float16"),
                        help="frozen encoders' dtype in the 7B phases (float32: the 2026-11-30 table)")  # fmt: skip
    parser.add_argument("--encoder-dtype-70b", default="bfloat16", choices=("auto", "float32", "bfloat16"))
    parser.add_argument(
        "--llm-dtype",
        default="bfloat16",
        choices=("bfloat16", "float32"),
        help="the 70B LLM's unquantised weights (float32 reproduces the 2026-11-30 harness)",
    )
    parser.add_argument("--only", default="", help="comma-separated phases: load,generate,align,qlora,llava,70b")
    ARGS = parser.parse_args(argv)
    if ARGS.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device; use --device cpu --tiny")
    if ARGS.device == "cpu" and not ARGS.tiny:  # make bench on a machine without a GPU
        print("bench_gpu: no CUDA device, nothing measured (--device cpu --tiny tests the script itself)")
        return 0
    work = Path(ARGS.work or tempfile.mkdtemp(prefix="anymal-gpu-bench-"))
    folder = work / "llama_7b_shape"
    folder.mkdir(parents=True, exist_ok=True)
    only = set(filter(None, ARGS.only.split(","))) or {"load", "generate", "align", "qlora", "llava", "70b"}
    register_plugins()
    env()
    seven_b = only & {"load", "generate", "align", "qlora", "llava"}
    if seven_b and not make_llm(folder)["ok"]:
        return 1
    if {"load", "generate"} & only and load_4bit(folder)["ok"] and "generate" in only:
        generate()
    if "align" in only:
        train_align(folder, work)
    if "qlora" in only:
        instruct_qlora(folder, work)
    if "llava" in only:
        llava_ratio(folder, work)
    if "70b" in only:
        encoder_dtype, ARGS.encoder_dtype = ARGS.encoder_dtype, ARGS.encoder_dtype_70b
        align_70b(work)
        ARGS.encoder_dtype = encoder_dtype
    if not ARGS.work:
        shutil.rmtree(work, ignore_errors=True)
    failed = [name for name, p in R["phases"].items() if not p.get("ok")]
    log("done;", f"failed phases: {failed}" if failed else "all phases ok", "->", ARGS.out)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
