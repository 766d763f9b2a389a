"""The training loop on accelerate: one process, or DDP/FSDP under ``accelerate launch`` / ``torchrun``.

``batch_size`` is the global batch: every process draws the same seeded global batch and keeps its slice
(:class:`~anymal.train.sampler.ShardedBatchSampler`), and the loss is normalised by the global number of target
tokens, so N processes compute the same update as one. Under FSDP2 the weights and optimiser state are gathered
whole for checkpoints (:mod:`anymal.train.sharded`).
"""

from __future__ import annotations

import json
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from anymal.checkpoint import base_fingerprints
from anymal.errors import ConfigError
from anymal.hf_compat import enable_activation_checkpointing
from anymal.lora import add_lora, has_lora
from anymal.processing import IGNORE_INDEX
from anymal.progress import bars_disabled_by_env
from anymal.train.checkpointing import latest_checkpoint, load_training_state, save_training_state
from anymal.train.config import TrainConfig, preflight, save_resolved
from anymal.train.dataset import Collator, EpochExamples, TrainingDataset, read_examples
from anymal.train.feature_cache import FeatureCache
from anymal.train.metrics import MetricsWriter
from anymal.train.sampler import ShardedBatchSampler
from anymal.train.sharded import full_trainable_state
from anymal.train.skips import SkipGuard


@dataclass
class TrainResult:
    output_dir: Path
    final_checkpoint: Path
    steps: int
    losses: list[float] = field(default_factory=list)
    eval_losses: list[tuple[int, float]] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    # per eval_tasks entry, (step, metrics) each time it was scored
    task_scores: dict[str, list[tuple[int, dict[str, Any]]]] = field(default_factory=dict)


def score_eval_tasks(model, config: TrainConfig, step: int, result: TrainResult, metrics, accelerator) -> None:
    """Scores ``config.eval_tasks`` with ``anymal.eval`` on the in-memory model (main process; generation under
    FSDP would need every rank, so sharded runs score their saved checkpoint with ``python -m anymal.eval``)."""
    if not config.eval_tasks or not accelerator.is_main_process:
        accelerator.wait_for_everyone()
        return
    from anymal.eval import evaluate as evaluate_task

    for spec in config.eval_tasks:
        scores = evaluate_task(
            model,
            spec.task,
            spec.data,
            labels=spec.labels,
            limit=spec.limit,
            batch_size=spec.batch_size,
            max_new_tokens=spec.max_new_tokens,
            progress=False,
        )
        numbers = {k: v for k, v in scores["metrics"].items() if isinstance(v, (int, float))}
        result.task_scores.setdefault(spec.task, []).append((step, numbers))
        metrics.write(step, **{f"eval_{spec.task}/{k}": v for k, v in numbers.items()})
    model.train()
    accelerator.wait_for_everyone()


def build_model(config: TrainConfig):
    """The model to train: built from ``model``, or from the ``init_from`` checkpoint(s) with ``model.modalities``
    that they lack added fresh (untrained projectors) and ``model.llm`` choosing how the base LLM is loaded."""
    from anymal.modeling import AnyMAL
    from anymal.pretrained import compose_pretrained

    if not config.init_from:
        return AnyMAL(config.model_config())
    llm = dict(config.model.get("llm") or {})
    model = compose_pretrained(
        AnyMAL,
        config.init_from,
        quantization=llm.get("quantization"),
        torch_dtype=llm.get("dtype"),
        llm_path=llm.get("name_or_path"),
    )
    if "pad_to_multiple_of" in llm:  # a training-time choice, not part of the stored model
        model.config.llm.pad_to_multiple_of = llm["pad_to_multiple_of"]
    for name, plugin_config in (config.model.get("modalities") or {}).items():
        if name in model.plugins:
            raise ConfigError(
                f"model.modalities.{name}: the {name!r} plugin already comes from init_from; "
                "drop it from model.modalities (or from init_from to start it fresh)"
            )
        model.add_plugin(name, plugin_config)
    for name, output_config in (config.model.get("outputs") or {}).items():
        if name in model.output_plugins:
            raise ConfigError(
                f"model.outputs.{name}: the {name!r} output plugin already comes from init_from; drop it here"
            )
        model.add_output(name, output_config)
    return model


def prepare_trainable(model, config: TrainConfig) -> list[dict[str, Any]]:
    """Adds LoRA for the instruct stage, applies the model's trainable policy and returns optimiser groups.

    Align trains the projectors of ``train_modalities`` (default: all); instruct trains every projector and, with
    ``lora.rank > 0``, a LoRA adapter (a new one, or the one ``init_from`` brought along).
    """
    lora = config.stage == "instruct" and config.lora.rank > 0
    if lora and not has_lora(model.llm):
        model.llm = add_lora(
            model.llm,
            rank=config.lora.rank,
            alpha=config.lora.alpha,
            dropout=config.lora.dropout,
            target_modules=config.lora.target_modules,
            gradient_checkpointing=config.gradient_checkpointing,
        )
    projectors = None if config.stage == "instruct" else (config.train_modalities or None)
    model.set_trainable(projectors=projectors, lora=lora)
    module_lr = dict(config.module_lr)
    if config.lora.lr is not None:
        module_lr.setdefault("lora", config.lora.lr)
    groups = model.param_groups(config.lr, module_lr)
    if config.gradient_checkpointing:
        enable_activation_checkpointing(model.llm)
    return groups


def summed_token_loss(
    model, batch: dict[str, Any], output_losses: dict[str, torch.Tensor] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Next-token cross-entropy summed over this process's target tokens, and their count. With output plugins,
    their weighted loss terms (per-box / per-mask means) go into ``output_losses`` when a dict is given."""
    out = model(
        input_ids=batch["input_ids"],
        labels=batch["labels"],
        modality_inputs=batch["modality_inputs"],
        modality_features=batch["modality_features"],
        return_labels=True,
        output_batches=batch.get("output_batches"),
        use_cache=False,  # no KV cache while training
    )
    if output_losses is not None:
        output_losses.update(out.output_losses)
    logits, labels = out.logits.float(), out.labels  # already aligned: logits only at target positions
    loss_sum = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE_INDEX, reduction="sum"
    )
    return loss_sum, (labels != IGNORE_INDEX).sum()


def target_count(batch: dict[str, Any]) -> torch.Tensor:
    """How many next-token targets ``batch`` has (labels are shifted by one; modality tokens are never targets)."""
    count = sum(int(label != IGNORE_INDEX) for row in batch["labels"] for label in row[1:])
    return torch.tensor(count)


def token_loss(
    model,
    batch: dict[str, Any],
    accelerator,
    window_tokens: torch.Tensor | None = None,
    window_batches: int = 1,
    terms: dict[str, float] | None = None,
):
    """Summed loss over the *global* target count of the accumulation window, times the world size, plus the
    output plugins' loss terms divided by the window's micro-batch count.

    ``window_tokens`` is this process's target count over every micro-batch of the optimiser step (default: this
    batch's). Dividing by the count summed over the window and over processes makes the gradient the token-mean of
    the whole effective batch: DDP/FSDP average across processes, hence the factor. Output plugins' terms are
    already means (per box, per mask): DDP's average and the division by ``window_batches`` keep them means. Their
    values are added to ``terms`` (for the metrics) when a dict is given. Returns the loss and this batch's target
    count.
    """
    output_losses: dict[str, torch.Tensor] = {}
    loss_sum, n_tokens = summed_token_loss(model, batch, output_losses)
    total = (n_tokens if window_tokens is None else window_tokens).detach().clone().to(n_tokens.device)
    if accelerator.num_processes > 1:
        total = accelerator.reduce(total, reduction="sum")
    loss = loss_sum * accelerator.num_processes / total.clamp(min=1)
    for name, value in output_losses.items():
        loss = loss + value / window_batches
        if terms is not None:
            terms[name] = terms.get(name, 0.0) + float(value.detach()) / window_batches
    return loss, int(n_tokens)


def _loader(dataset, config: TrainConfig, collator, accelerator, epoch: int, shuffle: bool = True, skip: int = 0):
    sampler = ShardedBatchSampler(
        len(dataset),
        config.batch_size,
        config.seed,
        epoch,
        accelerator.process_index,
        accelerator.num_processes,
        shuffle=shuffle,
        skip=skip,
        groups=[",".join(sorted(ex.media)) for ex in dataset.examples] if config.modality_batches else None,
    )
    return torch.utils.data.DataLoader(
        dataset, batch_sampler=sampler, collate_fn=collator, num_workers=config.num_workers
    )


@torch.no_grad()
def evaluate(model, dataset, config: TrainConfig, collator, accelerator) -> float:
    """Held-out loss: token-weighted mean over the whole eval set (all processes)."""
    model.eval()
    total = torch.zeros(2)
    for batch in _loader(dataset, config, collator, accelerator, 0, shuffle=False):
        if batch["n_items"] == 0:
            continue
        loss_sum, n_tokens = summed_token_loss(model, batch)
        total += torch.tensor([float(loss_sum), float(n_tokens)])
    model.train()
    total = accelerator.reduce(total.to(accelerator.device), reduction="sum").cpu()
    return float(total[0] / total[1].clamp(min=1))


def make_accelerator(config: TrainConfig):
    """The accelerate engine for ``config``: one process, or DDP/FSDP as ``accelerate launch``/``torchrun`` set up.

    FSDP comes from accelerate's own configuration (``accelerate launch --use_fsdp --fsdp_version 2 ...`` or a
    config file); anymal needs nothing extra. On CPU-only machines ``cpu=True`` makes torchrun use DDP over gloo.
    """
    from accelerate import Accelerator, DataLoaderConfiguration, DistributedDataParallelKwargs
    from accelerate.state import AcceleratorState

    # accelerate keeps one process-wide state; a second train() in the same process (a notebook, the demo's stages)
    # may use another mixed precision, so the per-run part is reset. The distributed set-up (PartialState) stays.
    AcceleratorState._reset_state(reset_partial_state=False)
    if config.mixed_precision == "fp16" and not torch.cuda.is_available():
        warnings.warn(
            "mixed_precision=fp16: accelerate has no fp16 autocast on CPU, so this run trains in float32; "
            "use mixed_precision=bf16 for half precision on CPU",
            stacklevel=2,
        )
    return Accelerator(
        cpu=not torch.cuda.is_available(),
        mixed_precision=config.mixed_precision,
        # batch_size is global, so the prepared scheduler steps once per optimiser step, not once per process.
        # (accelerate 1.x silently ignores Accelerator(split_batches=...); only this form takes effect.)
        dataloader_config=DataLoaderConfiguration(split_batches=True),
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )


def _check_engine(accelerator) -> None:
    from accelerate.utils import DistributedType

    if accelerator.distributed_type == DistributedType.FSDP and not accelerator.is_fsdp2:
        raise ConfigError(
            "FSDP1 is not supported: it flattens parameters, and anymal's frozen LLM and encoders share FSDP units "
            "with trainable projectors. Launch with FSDP2 (`accelerate launch --fsdp_version 2`, or "
            "`fsdp_version: 2` in the accelerate config)."
        )


def train(config: TrainConfig, resume: bool = False) -> TrainResult:
    """Runs one training stage and writes ``output_dir/final`` (an anymal checkpoint) plus metrics."""
    from accelerate.utils import set_seed

    from anymal.train.schedule import cosine_with_warmup

    preflight(config)  # fails on data files, modalities and init_from before anything heavy loads
    accelerator = make_accelerator(config)
    set_seed(config.seed)
    output_dir = Path(config.output_dir)
    main = accelerator.is_main_process
    if main:
        save_resolved(config, output_dir)

    model = build_model(config)
    groups = prepare_trainable(model, config)
    source = EpochExamples(config.data, model.plugins, config.on_error, config.seed)
    examples = source(0)
    report = source.report
    cache = None
    if config.feature_cache:
        cache = FeatureCache(config.feature_cache, model)
        if main:
            stats = cache.precompute(examples, batch_size=config.batch_size)
            print(f"feature cache {config.feature_cache}: {stats['encoded']} encoded, {stats['failed']} unreadable")
            for failure in cache.failures[:5]:
                print(f"  unreadable: {failure}")
        accelerator.wait_for_everyone()
    dataset = TrainingDataset(examples, model, config.chat, config.on_error, cache, seed=config.seed)
    eval_dataset = None
    if config.eval_data:
        eval_examples, _ = read_examples(config.eval_data, model.plugins, config.on_error, config.seed)
        if cache is not None and main:
            cache.precompute(eval_examples, batch_size=config.batch_size)
        accelerator.wait_for_everyone()
        eval_dataset = TrainingDataset(eval_examples, model, config.chat, config.on_error, cache)
    collator = Collator(model)

    fingerprints = base_fingerprints(model)  # before FSDP shards the frozen weights they hash
    optimizer = torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)
    scheduler = cosine_with_warmup(optimizer, config.warmup_steps, config.max_steps)
    model.train()
    _check_engine(accelerator)
    # model and optimiser together: under FSDP2 accelerate swaps the optimiser onto the sharded parameters, and
    # with fp16 the optimiser step goes through the gradient scaler
    wrapped, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    model = accelerator.unwrap_model(wrapped)
    params = [p for group in optimizer.param_groups for p in group["params"]]

    step = 0
    if resume:
        checkpoint = latest_checkpoint(output_dir)
        if checkpoint is not None:
            step = load_training_state(checkpoint, model, optimizer, scheduler)
    epoch, skip = 0, step * config.grad_accum  # the data position: walk the epochs to the consumed batch
    while skip >= (batches := len(_loader(dataset, config, collator, accelerator, epoch))):
        skip -= batches
        epoch += 1
        dataset.examples, dataset.epoch = source(epoch), epoch

    metrics = MetricsWriter(output_dir, enabled=main)
    result = TrainResult(output_dir=output_dir, final_checkpoint=output_dir / "final", steps=step)
    bar = tqdm(
        total=config.max_steps,
        initial=step,
        desc=f"{config.stage}",
        disable=not main or bars_disabled_by_env(),
        dynamic_ncols=True,
    )
    window: list[dict[str, Any]] = []  # the micro-batches of one optimiser step
    guard = SkipGuard(config.max_consecutive_skips)
    while step < config.max_steps:
        dataset.examples = source(epoch)  # instructions and mixture draws are re-sampled per epoch
        dataset.epoch = epoch
        loader = _loader(dataset, config, collator, accelerator, epoch, skip=skip)
        whole_epoch, skip = skip == 0, 0
        guard.start_epoch()
        for batch in loader:
            guard.observe(batch)
            if batch["n_items"] == 0:
                continue
            window.append(batch)
            if len(window) < config.grad_accum:
                continue
            # every micro-batch is weighted by its target tokens, so accumulation equals one bigger batch
            window_tokens = torch.stack([target_count(b) for b in window]).sum()
            window_loss = 0.0
            terms: dict[str, float] = {}  # output plugins' loss terms of this step
            for i, micro_batch in enumerate(window):
                last = i == len(window) - 1
                sync = accelerator.no_sync(wrapped) if not last and accelerator.num_processes > 1 else nullcontext()
                with sync, accelerator.autocast():
                    loss, _ = token_loss(wrapped, micro_batch, accelerator, window_tokens, len(window), terms)
                    accelerator.backward(loss)
                window_loss += float(loss.detach())
            window = []
            if config.max_grad_norm > 0:
                accelerator.clip_grad_norm_(params, config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            loss_value = accelerator.reduce(torch.tensor(window_loss), reduction="mean").item()
            result.losses.append(loss_value)
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.4f}")
            if step % config.log_every == 0:
                metrics.write(step, loss=loss_value, lr=scheduler.get_last_lr()[0], epoch=epoch, **terms)
            if eval_dataset is not None and config.eval_every and step % config.eval_every == 0:
                eval_loss = evaluate(wrapped, eval_dataset, config, collator, accelerator)
                result.eval_losses.append((step, eval_loss))
                metrics.write(step, eval_loss=eval_loss)
            if config.eval_tasks and config.eval_every and step % config.eval_every == 0:
                score_eval_tasks(model, config, step, result, metrics, accelerator)
            if config.save_every and step % config.save_every == 0:
                save_training_state(output_dir, step, model, optimizer, scheduler, config.keep_last, main)
            if step >= config.max_steps:
                break
        if whole_epoch and step < config.max_steps:
            guard.end_epoch(epoch, source.paths)
        epoch += 1
    bar.close()
    if eval_dataset is not None and (not result.eval_losses or result.eval_losses[-1][0] != step):
        eval_loss = evaluate(wrapped, eval_dataset, config, collator, accelerator)
        result.eval_losses.append((step, eval_loss))
        metrics.write(step, eval_loss=eval_loss)
    if config.eval_tasks and not any(scores[-1][0] == step for scores in result.task_scores.values()):
        score_eval_tasks(model, config, step, result, metrics, accelerator)
    result.steps = step
    items_skipped = dict(guard.reasons)  # counted from the batches, so right with loader worker processes too
    result.skipped = {"rows": report.total_skipped, **items_skipped} if report.total_skipped else items_skipped
    final_state = full_trainable_state(model)  # a collective under FSDP: every rank takes part
    if main:
        model.save_pretrained(result.final_checkpoint, state_dict=final_state, fingerprints=fingerprints)
        summary = {
            "steps": step,
            "final_loss": result.losses[-1] if result.losses else None,
            "eval_losses": result.eval_losses,
            "eval_tasks": result.task_scores,
            "skipped": result.skipped,
            "skipped_examples": guard.examples,  # per reason, the first rows' file:line and error
            "data_report": report.to_dict(),
        }
        (output_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
        if result.skipped:
            print(f"skipped bad items: {result.skipped} (details: {report}; {guard.summary()})")
    metrics.close()
    accelerator.wait_for_everyone()
    return result
