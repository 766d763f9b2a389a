"""Alignment training-step throughput: AnyMAL (image plugin) vs HF ``LlavaForConditionalGeneration``.

Both sides train the same thing on the same batch: a frozen LLaMA (the very same weights, loaded from one saved
folder), a frozen random-init ViT of the same size, and a trainable projector that turns each image into ``N``
LLM input tokens; a next-token loss on the caption, AdamW on the projector only, gradient clipping at 1.0 and a
cosine schedule, all in fp32 on CPU.

- AnyMAL: ``AnyMAL(AnyMALConfig(...))`` with the ``image`` plugin (open_clip ViT, ``pretrained=None``), the batch
  built by ``anymal.train``'s own path (``read_pairs`` -> ``TrainingDataset`` -> ``Collator``) and the step done
  as ``anymal.train.loop`` does it (``token_loss`` under ``accelerator.autocast()``, ``accelerator.backward``,
  ``clip_grad_norm_``, ``optimizer.step``, ``scheduler.step``, ``zero_grad``).
- HF: ``LlavaForConditionalGeneration`` from a ``LlavaConfig`` whose ``text_config`` is that LLaMA's config (its
  weights are copied in), a ``CLIPVisionConfig`` tower of the same width/depth/patch size (GELU, like open_clip's
  ViTs), LLaVA-1.5's defaults (features of the second-to-last layer, CLS dropped, 2-layer GELU MLP projector),
  and the same ids, labels, padding and pixel tensor (AnyMAL's sentinel is expanded to ``N`` image-token ids).

What differs, by design of the two models (not of this benchmark):
- Projector. LLaVA emits one token per patch through a 2-layer MLP (``vit_dim -> llm_dim -> llm_dim``). AnyMAL's
  image projector is the paper's Perceiver resampler: ``N`` learned latents cross-attend to the patch features
  through ``resampler_depth`` attention + feed-forward blocks of width ``resampler_dim`` (2 blocks at the vision
  width by default), which costs far more FLOPs than the MLP when ``N`` equals the patch count. The point of a
  resampler is to *reduce* tokens (the paper uses 64 for 256+ patches); here ``N`` is set to the patch count so
  that the LLM sees exactly the same sequence on both sides (checked). ``mid-small-resampler`` uses one block at
  the LLM's width to show how much of the gap is the projector's own size; ``mid-64tok`` (opt-in, *not* the same
  token count) shows the resampler used as the paper does.
- Vision tower implementation: open_clip ``VisionTransformer`` (AnyMAL) vs transformers ``CLIPVisionModel``
  (LLaVA), same shape, both random init, both run all blocks and take the second-to-last layer's patch tokens.
  AnyMAL runs it under ``torch.no_grad``; LLaVA's tower simply has no trainable parameters.
- Image token: LLaVA adds an ``<image>`` token to the vocabulary; here an existing id that does not occur in the
  batch stands in, so both LLMs keep identical embedding matrices.

Sizes: ``tiny`` (LLaMA 2x32 with the real 32k LLaMA-2 vocabulary, 2-layer ViT, 16 patches, seconds) and ``mid``
(LLaMA 4x512, ViT-S/16 at 224 px = 196 patches). Timing alternates the two sides in rounds (``best_of`` per round,
the first round warms up, the side that goes first alternates) so that load from other users of the machine hits
both; the ratio is the median of per-round ratios. One torch thread by default: on a shared, oversubscribed 2-core
machine two OpenMP threads stall on each other and made single steps 10x slower and erratic (``--threads 2`` to use
both cores). Peak RSS is measured in a child process per side that builds only that side, resets the kernel's
high-water mark after building, and runs two steps. ``--breakdown`` adds per-phase times (encoder, projector
fwd+bwd, LLM fwd+bwd with full logits three ways, see ``breakdown``); ``--profile`` prints torch.profiler tables.

Run: ``python bench/bench_train_vs_llava.py [--sizes tiny mid ...] [--rounds N] [--breakdown] [--out path.json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from common import best_of, report

from anymal.config import AnyMALConfig, LLMConfig
from anymal.modeling import AnyMAL
from anymal.processing import IGNORE_INDEX, SENTINEL_BASE
from anymal.testing import LLAMA2_TOKENIZER_ASSET, asset, captioned_photos, tiny_llm_folder
from anymal_image import ImagePluginConfig

LR = 2e-4
MAX_GRAD_NORM = 1.0


@dataclass(frozen=True)
class Size:
    """One benchmark size: LLaMA architecture, ViT shape (built by open_clip and as HF CLIP) and resampler."""

    label: str
    llm: dict[str, Any]
    vit: dict[str, Any]
    resampler: dict[str, int] = field(default_factory=dict)
    num_tokens: int | None = None  # None: one token per patch, like LLaVA
    batch: int = 4
    rounds: int = 7  # alternating timing rounds (``--rounds`` overrides)

    @property
    def patches(self) -> int:
        return (self.vit["image_size"] // self.vit["patch_size"]) ** 2

    @property
    def tokens(self) -> int:
        return self.num_tokens or self.patches


TINY_LLM = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
MID_LLM = dict(
    hidden_size=512, intermediate_size=1376, num_hidden_layers=4, num_attention_heads=8, num_key_value_heads=8
)
TINY_VIT = dict(image_size=32, patch_size=8, width=32, layers=2, heads=2, mlp_ratio=2.0)
MID_VIT = dict(image_size=224, patch_size=16, width=384, layers=12, heads=6, mlp_ratio=4.0)  # ViT-S/16: 196 patches
TINY_RESAMPLER = dict(
    resampler_depth=2, resampler_dim=32, resampler_heads=2, resampler_dim_head=16, resampler_ff_mult=2
)
SMALL_RESAMPLER = dict(resampler_depth=1, resampler_dim=512, resampler_heads=8, resampler_dim_head=64)

SIZES = {
    "tiny": Size("tiny", TINY_LLM, TINY_VIT, TINY_RESAMPLER, rounds=21),
    # anymal's default resampler (2 blocks of width 1024, sized for 7B+ LLMs), one latent per patch
    "mid": Size("mid", MID_LLM, MID_VIT),
    # a one-block resampler at the LLM's width: how much of the gap is the projector's own size
    "mid-small-resampler": Size("mid-small-resampler", MID_LLM, MID_VIT, SMALL_RESAMPLER),
    # not the same token count: the paper's use of the resampler, 64 latents for 196 patches (informative only)
    "mid-64tok": Size("mid-64tok", MID_LLM, MID_VIT, num_tokens=64),
}


# --- building the two sides ------------------------------------------------------------------------------------
def llm_folder(size: Size) -> Path:
    return tiny_llm_folder(asset(LLAMA2_TOKENIZER_ASSET), max_position_embeddings=1024, **size.llm)


def image_config(size: Size) -> ImagePluginConfig:
    """The anymal image plugin: an open_clip ViT (random init) and a resampler with ``num_tokens`` latents."""
    vit = size.vit
    vision_cfg = dict(
        image_size=vit["image_size"],
        patch_size=vit["patch_size"],
        width=vit["width"],
        layers=vit["layers"],
        head_width=vit["width"] // vit["heads"],
        mlp_ratio=vit["mlp_ratio"],
    )
    return ImagePluginConfig(
        num_tokens=size.tokens,
        backend="open_clip",
        model_name=f"bench-vit-{size.label}",
        pretrained=None,
        model_config={"vision_cfg": vision_cfg},
        **size.resampler,
    )


def build_anymal(size: Size) -> AnyMAL:
    llm = LLMConfig(name_or_path=str(llm_folder(size)), dtype="float32")
    return AnyMAL(AnyMALConfig(llm=llm, modalities={"image": image_config(size)}, seed=0))


def build_llava(size: Size, image_token_id: int):
    """HF LLaVA around the same LLaMA weights, a same-size CLIP vision tower and LLaVA-1.5's MLP projector."""
    from safetensors.torch import load_file
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    folder = llm_folder(size)
    text_config = LlamaConfig.from_pretrained(str(folder))
    vit = size.vit
    vision_config = CLIPVisionConfig(
        hidden_size=vit["width"],
        intermediate_size=int(vit["width"] * vit["mlp_ratio"]),
        num_hidden_layers=vit["layers"],
        num_attention_heads=vit["heads"],
        image_size=vit["image_size"],
        patch_size=vit["patch_size"],
        hidden_act="gelu",
    )
    config = LlavaConfig(
        vision_config=vision_config,
        text_config=text_config,
        image_token_id=image_token_id,
        image_seq_length=size.patches,
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = LlavaForConditionalGeneration(config)
    state = load_file(str(folder / "model.safetensors"))
    lm_head = {"weight": state.pop("lm_head.weight")}
    missing, unexpected = model.model.language_model.load_state_dict(
        {k.removeprefix("model."): v for k, v in state.items()}, strict=False
    )
    if unexpected or [k for k in missing if "rotary" not in k]:
        raise RuntimeError(f"LLaMA weights do not fit LLaVA's text model: missing {missing}, unexpected {unexpected}")
    model.lm_head.load_state_dict(lm_head)
    model.requires_grad_(False)
    model.model.multi_modal_projector.requires_grad_(True)
    return model


# --- the batch -------------------------------------------------------------------------------------------------
def caption_pairs(folder: Path, batch: int) -> Path:
    """A JSONL of real COCO photos and captions, as an alignment dataset file."""
    rows = [{"image": str(photo), "caption": caption} for photo, caption in captioned_photos(ordered=True)]
    path = folder / "pairs.jsonl"
    path.write_text("".join(json.dumps(rows[i % len(rows)]) + "\n" for i in range(batch)))
    return path


def anymal_batch(model: AnyMAL, size: Size) -> dict[str, Any]:
    """One batch exactly as ``anymal.train`` builds it: pairs reader, TrainingDataset, Collator."""
    from anymal.train.config import DataSpec
    from anymal.train.dataset import Collator, TrainingDataset, read_examples

    with tempfile.TemporaryDirectory() as tmp:
        spec = DataSpec(kind="pairs", path=str(caption_pairs(Path(tmp), size.batch)), modality="image")
        examples, _ = read_examples([spec], model.plugins, "raise", seed=0)
        dataset = TrainingDataset(examples, model, chat=False, on_error="raise")
        return Collator(model)([dataset[i] for i in range(len(dataset))])


def llava_batch(batch: dict[str, Any], num_tokens: int, image_token_id: int, pad_id: int) -> dict[str, torch.Tensor]:
    """The same rows for LLaVA: each sentinel becomes ``num_tokens`` image-token ids; right padding like anymal."""
    ids_rows, label_rows = [], []
    for ids, labels in zip(batch["input_ids"], batch["labels"]):
        out_ids, out_labels = [], []
        for token, label in zip(ids, labels):
            if token <= SENTINEL_BASE:
                out_ids += [image_token_id] * num_tokens
                out_labels += [IGNORE_INDEX] * num_tokens
            else:
                out_ids.append(token)
                out_labels.append(label)
        ids_rows.append(out_ids)
        label_rows.append(out_labels)
    width = max(len(r) for r in ids_rows)
    pad = [width - len(r) for r in ids_rows]
    return {
        "input_ids": torch.tensor([r + [pad_id] * p for r, p in zip(ids_rows, pad)]),
        "labels": torch.tensor([r + [IGNORE_INDEX] * p for r, p in zip(label_rows, pad)]),
        "attention_mask": torch.tensor([[1] * len(r) + [0] * p for r, p in zip(ids_rows, pad)]),
        "pixel_values": batch["modality_inputs"]["image"],
    }


def unused_token_id(batch: dict[str, Any], tokenizer) -> int:
    """An ordinary vocabulary id absent from the batch and not special: stands in for LLaVA's ``<image>``."""
    used = {t for row in batch["input_ids"] for t in row} | set(tokenizer.all_special_ids)
    return next(i for i in range(3, len(tokenizer)) if i not in used)


# --- the steps -------------------------------------------------------------------------------------------------
class Stepper:
    """Runs training steps of one side with AdamW + cosine schedule on its trainable parameters only."""

    def __init__(self, model: torch.nn.Module, params: list[torch.nn.Parameter], loss_fn, accelerator) -> None:
        from anymal.train.schedule import cosine_with_warmup

        self.model, self.params, self.loss_fn, self.accelerator = model, params, loss_fn, accelerator
        self.optimizer = torch.optim.AdamW(params, lr=LR, weight_decay=0.0)
        self.scheduler = cosine_with_warmup(self.optimizer, 0, 10_000)
        self.losses: list[float] = []

    def __call__(self) -> None:
        with self.accelerator.autocast():
            loss = self.loss_fn()
            self.accelerator.backward(loss)
        self.accelerator.clip_grad_norm_(self.params, MAX_GRAD_NORM)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.losses.append(float(loss.detach()))


def anymal_side(size: Size, accelerator) -> tuple[Stepper, dict[str, Any], AnyMAL]:
    from anymal.train.loop import token_loss

    model = build_anymal(size)
    model.projectors.requires_grad_(True)
    params = [p for p in model.projectors.parameters() if p.requires_grad]
    model.train()
    wrapped = accelerator.prepare_model(model)
    batch = anymal_batch(model, size)
    return Stepper(wrapped, params, lambda: token_loss(wrapped, batch, accelerator)[0], accelerator), batch, model


def llava_side(size: Size, batch: dict[str, Any], tokenizer, accelerator) -> tuple[Stepper, dict[str, torch.Tensor]]:
    image_token_id = unused_token_id(batch, tokenizer)
    model = build_llava(size, image_token_id)
    model.train()
    model.model.vision_tower.eval()
    wrapped = accelerator.prepare_model(model)
    inputs = llava_batch(batch, size.patches, image_token_id, tokenizer.pad_token_id)
    params = list(model.model.multi_modal_projector.parameters())
    return Stepper(wrapped, params, lambda: wrapped(**inputs).loss, accelerator), inputs


def count(params) -> int:
    return sum(p.numel() for p in params)


def time_size(size: Size, rounds: int, repeats: int, profile: bool, phases: bool) -> dict[str, Any]:
    from accelerate import Accelerator

    accelerator = Accelerator(mixed_precision="no")
    torch.manual_seed(0)
    anymal_step, batch, model = anymal_side(size, accelerator)
    llava_step, inputs = llava_side(size, batch, model.tokenizer, accelerator)
    anymal_step()  # also checks both sides run before timing anything
    llava_step()
    with torch.no_grad():
        fused = model.fuse(batch["input_ids"], {"image": batch["modality_inputs"]["image"]}, labels=batch["labels"])
    same_layout = fused.attention_mask.shape == inputs["attention_mask"].shape and torch.equal(
        fused.attention_mask, inputs["attention_mask"]
    )
    if size.tokens == size.patches and not same_layout:
        raise RuntimeError("the two sides do not feed the LLM the same sequence layout")

    anymal_times, llava_times = [], []
    for r in range(rounds):  # alternate which side goes first, so that a drift in machine load hits both
        warmup = 1 if r == 0 else 0
        order = ((anymal_step, anymal_times), (llava_step, llava_times))
        for step, times in order if r % 2 == 0 else order[::-1]:
            times.append(best_of(step, repeats=repeats, warmup=warmup))
    if profile:
        profile_steps(size, anymal_step, llava_step)
    ratios = [h / a for a, h in zip(anymal_times, llava_times)]
    row = {
        "size": size.label,
        "llm": f"LLaMA {size.llm['num_hidden_layers']}x{size.llm['hidden_size']}, 32k vocab",
        "vit": f"{size.vit['layers']}x{size.vit['width']} p{size.vit['patch_size']}@{size.vit['image_size']}",
        "anymal_tokens": size.tokens,
        "llava_tokens": size.patches,
        "batch": size.batch,
        "anymal_seq_len": fused.attention_mask.shape[1],
        "llava_seq_len": inputs["attention_mask"].shape[1],
        "anymal_proj_params": count(model.projectors.parameters()),
        "llava_proj_params": count(llava_step.params),
        "anymal_steps_per_s": 1 / statistics.median(anymal_times),
        "llava_steps_per_s": 1 / statistics.median(llava_times),
        "ratio": statistics.median(ratios),
        "target": ">= 1.0",
        "round_ratios": [round(x, 3) for x in ratios],
    }
    if phases:
        llava = llava_step.model
        row.update(breakdown(model, batch, llava, rounds))
        for step in (anymal_step, llava_step):
            step.optimizer.zero_grad(set_to_none=True)
    return row


def breakdown(model: AnyMAL, batch: dict[str, Any], llava, rounds: int) -> dict[str, float]:
    """Milliseconds per phase (medians): where the two steps differ, and what target-only logits would save.

    The LLM phase (forward + backward to the input embeddings, same LLaMA and sequence on both sides) is measured
    three ways that give the same loss and gradients: the way ``token_loss`` computes it today (logits sliced),
    the way transformers' loss does (labels shifted), and with logits only at positions whose next token is a
    target (``logits_to_keep``).
    """
    from anymal.fusion import splice

    pixels = batch["modality_inputs"]["image"]
    vision, mlp = llava.model.vision_tower, llava.model.multi_modal_projector
    with torch.no_grad():
        feats = model.encode_features("image", pixels)
        hf_feats = vision(pixels, output_hidden_states=True).hidden_states[-2][:, 1:]
        tokens = model.project_features("image", feats)
    embed = model.llm.get_input_embeddings()
    fused = splice(batch["input_ids"], embed, [tokens], ["image"], labels=batch["labels"])
    embeds = fused.inputs_embeds.detach().requires_grad_(True)
    targets = fused.labels[:, 1:]
    keep = (targets != IGNORE_INDEX).any(0).nonzero().squeeze(1)

    def llava_encoder() -> None:
        with torch.no_grad():
            vision(pixels, output_hidden_states=True)

    def llm(mode: str) -> None:
        """``sliced``: token_loss today (shifts logits: a copy of them, and a zero-filled gradient); ``shifted``:
        shifts labels instead, like transformers' loss; ``targets``: logits only where the next token is a target."""
        if mode == "targets":
            logits = model.llm(inputs_embeds=embeds, attention_mask=fused.attention_mask, logits_to_keep=keep).logits
            logits, labels = logits.float(), targets[:, keep]
        else:
            logits = model.llm(inputs_embeds=embeds, attention_mask=fused.attention_mask).logits
            if mode == "sliced":
                logits, labels = logits[:, :-1].float(), targets
            else:
                logits, labels = logits.float(), torch.nn.functional.pad(targets, (0, 1), value=IGNORE_INDEX)
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE_INDEX
        )
        loss.backward()
        embeds.grad = None

    phases = {
        "anymal_encoder_ms": lambda: model.encode_features("image", pixels),
        "llava_encoder_ms": llava_encoder,
        "anymal_projector_fwd_bwd_ms": lambda: model.project_features("image", feats).sum().backward(),
        "llava_projector_fwd_bwd_ms": lambda: mlp(hf_feats).sum().backward(),
        "anymal_splice_ms": lambda: splice(batch["input_ids"], embed, [tokens], ["image"], labels=batch["labels"]),
        "llm_fwd_bwd_sliced_logits_ms": lambda: llm("sliced"),
        "llm_fwd_bwd_shifted_labels_ms": lambda: llm("shifted"),
        "llm_fwd_bwd_target_logits_ms": lambda: llm("targets"),
    }
    times: dict[str, list[float]] = {name: [] for name in phases}
    for r in range(rounds):  # one of each phase per round: load changes spread over all of them
        for name, fn in phases.items():
            times[name].append(best_of(fn, repeats=1, warmup=1 if r == 0 else 0))
    return {name: 1000 * statistics.median(values) for name, values in times.items()}


def profile_steps(size: Size, anymal_step: Stepper, llava_step: Stepper) -> None:
    """Prints the top operators of one step on each side (self CPU time)."""
    from torch.profiler import ProfilerActivity, profile

    for name, step in (("anymal", anymal_step), ("llava", llava_step)):
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            step()
        print(f"\n=== {size.label}: {name}, one step ===")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=18))


# --- peak memory -----------------------------------------------------------------------------------------------
def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_child(size_name: str, side: str) -> None:
    """Child process: builds one side only, resets the peak after building, runs two steps, prints the peak."""
    from accelerate import Accelerator

    size = SIZES[size_name]
    accelerator = Accelerator(mixed_precision="no")
    model = build_anymal(size)
    batch = anymal_batch(model, size)
    if side == "anymal":
        step = anymal_side(size, accelerator)[0]
    else:
        tokenizer = model.tokenizer
        del model
        step = llava_side(size, batch, tokenizer, accelerator)[0]
    reset = _reset_peak_rss()
    step()
    step()
    print(json.dumps({"peak_rss_mb": _peak_rss_mb(), "reset": reset}))


def measure_rss(size_name: str, side: str) -> float | None:
    cmd = [sys.executable, __file__, "--rss-child", size_name, side]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(f"peak-RSS child {size_name}/{side} failed:\n{done.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])["peak_rss_mb"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["tiny", "mid", "mid-small-resampler"], choices=list(SIZES))
    parser.add_argument("--rounds", type=int, default=None, help="alternating rounds (default: 21 tiny, 7 mid)")
    parser.add_argument("--repeats", type=int, default=1, help="timed steps per side per round (median)")
    parser.add_argument("--breakdown", action="store_true", help="add per-phase times (ms) to each row")
    parser.add_argument("--profile", action="store_true", help="print torch.profiler tables of one step per side")
    parser.add_argument("--no-rss", action="store_true", help="skip the peak-RSS child processes")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    parser.add_argument("--out", default=None)
    parser.add_argument("--rss-child", nargs=2, metavar=("SIZE", "SIDE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.rss_child:
        rss_child(*args.rss_child)
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    rows = []
    for name in args.sizes:
        row = time_size(SIZES[name], args.rounds or SIZES[name].rounds, args.repeats, args.profile, args.breakdown)
        if not args.no_rss:
            row["anymal_peak_rss_mb"] = measure_rss(name, "anymal")
            row["llava_peak_rss_mb"] = measure_rss(name, "llava")
        rows.append(row)
        print(json.dumps(row))
    report("train_vs_llava", rows, args.out)


if __name__ == "__main__":
    main()
