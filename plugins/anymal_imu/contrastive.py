"""IMU-to-text contrastive alignment: the loss, the training loop and retrieval accuracy, as plain functions.

The IMU encoder is trained so that a window's embedding is closest to the frozen text embedding of its caption
(symmetric InfoNCE, CLIP's loss, with a learnable temperature). Captions often repeat in IMU data (one activity
label, many windows), and in-batch duplicates of a caption are then not negatives: the targets of a row are spread
uniformly over every column with the same caption. With unique captions this is exactly CLIP's loss.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from anymal.progress import bars_disabled_by_env

INIT_LOGIT_SCALE = math.log(1 / 0.07)  # CLIP's initial temperature 0.07
MAX_LOGIT_SCALE = math.log(100.0)  # CLIP's cap on 1 / temperature


def info_nce(
    imu: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor, caption_ids: torch.Tensor | None = None
) -> torch.Tensor:
    """Symmetric InfoNCE between unit-norm ``imu`` and ``text`` embeddings (both ``[B, D]``, row i paired with i).

    Args:
        imu: IMU embeddings, L2-normalised.
        text: Text embeddings of the paired captions, L2-normalised.
        logit_scale: log of the inverse temperature (a learnable scalar).
        caption_ids: ``[B]`` caption identities; pairs with equal ids count as positives of each other.

    Returns:
        The mean of the IMU-to-text and text-to-IMU cross-entropies.
    """
    logits = logit_scale.exp() * imu @ text.T
    if caption_ids is None:
        targets = torch.eye(len(imu), device=imu.device, dtype=logits.dtype)
    else:
        targets = (caption_ids[:, None] == caption_ids[None, :]).to(logits.dtype)
    targets = targets / targets.sum(dim=1, keepdim=True)  # symmetric, so the column view is targets.T
    loss_imu = -(targets * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
    loss_text = -(targets.T * F.log_softmax(logits.T, dim=1)).sum(dim=1).mean()
    return (loss_imu + loss_text) / 2


@torch.no_grad()
def embed_windows(encoder: nn.Module, windows: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Unit-norm text-space embeddings ``[N, D]`` of preprocessed windows ``[N, 6, T]`` (encoder in eval mode)."""
    was_training = encoder.training
    encoder.eval()
    device = next(encoder.parameters()).device
    out = [
        F.normalize(encoder(windows[i : i + batch_size].to(device))["embeds"].float(), dim=-1)
        for i in range(0, len(windows), batch_size)
    ]
    encoder.train(was_training)
    return torch.cat(out)


@torch.no_grad()
def retrieval_accuracy(
    encoder: nn.Module, windows: torch.Tensor, caption_table: torch.Tensor, caption_ids: torch.Tensor
) -> float:
    """Fraction of windows whose most similar caption (among the ``caption_table`` rows) is their own.

    Chance level is ``1 / len(caption_table)``.
    """
    imu = embed_windows(encoder, windows)
    predicted = (imu @ caption_table.to(imu.device).T).argmax(dim=1).cpu()
    return float((predicted == caption_ids.cpu()).float().mean())


@dataclass
class ContrastiveResult:
    """What ``train_contrastive`` reports: per-step losses and the accuracies before and after."""

    losses: list[float] = field(default_factory=list)
    retrieval_before: float = 0.0
    retrieval_after: float = 0.0
    logit_scale: float = INIT_LOGIT_SCALE
    steps: int = 0
    seconds: float = 0.0

    def metrics(self) -> dict[str, float]:
        """A flat, JSON-able summary (first and last loss are means over the first/last 10% of steps)."""
        k = max(1, len(self.losses) // 10)
        return {
            "loss_first": sum(self.losses[:k]) / k if self.losses else float("nan"),
            "loss_last": sum(self.losses[-k:]) / k if self.losses else float("nan"),
            "retrieval_acc_before": self.retrieval_before,
            "retrieval_acc_after": self.retrieval_after,
            "temperature": math.exp(-self.logit_scale),
            "steps": self.steps,
            "seconds": self.seconds,
        }


def train_contrastive(
    encoder: nn.Module,
    windows: torch.Tensor,
    caption_table: torch.Tensor,
    caption_ids: torch.Tensor,
    *,
    steps: int = 200,
    batch_size: int = 64,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    seed: int = 0,
    max_seconds: float | None = None,
    metrics_path: str | Path | None = None,
    progress: bool = False,
    on_step: Callable[[int, float], None] | None = None,
) -> ContrastiveResult:
    """Trains ``encoder`` in place to align IMU windows with frozen caption embeddings.

    Args:
        encoder: An ``IMUEncoder`` (its ``embeds`` output must have the text embedding width).
        windows: ``[N, 6, T]`` preprocessed windows, on the encoder's device or CPU.
        caption_table: ``[U, D]`` unit-norm embeddings of the distinct captions (frozen).
        caption_ids: ``[N]`` index into ``caption_table`` of each window's caption.
        steps: Optimiser steps.
        batch_size: Windows per step (sampled without replacement per epoch).
        lr: AdamW learning rate (cosine decay to 10%, with a 5% linear warm-up).
        weight_decay: AdamW weight decay of the encoder's matrices.
        seed: Seed of the batch order.
        max_seconds: Stop early after this many seconds of training.
        metrics_path: If set, one JSON line per step (``step``, ``loss``, ``temperature``) is appended here.
        progress: Show a tqdm bar.
        on_step: Called with ``(step, loss)`` after every step.

    Returns:
        Losses, retrieval accuracy among the ``U`` captions before and after training, the learned temperature.
    """
    device = next(encoder.parameters()).device
    windows, caption_table, caption_ids = windows.to(device), caption_table.to(device), caption_ids.to(device)
    result = ContrastiveResult(retrieval_before=retrieval_accuracy(encoder, windows, caption_table, caption_ids))
    logit_scale = nn.Parameter(torch.tensor(INIT_LOGIT_SCALE, device=device))
    decay = [p for p in encoder.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in encoder.parameters() if p.requires_grad and p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": weight_decay},
            {"params": [*no_decay, logit_scale], "weight_decay": 0.0},
        ],
        lr=lr,
    )
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: (s + 1) / warmup if s < warmup else 0.1 + 0.45 * (1 + math.cos(math.pi * s / steps)),
    )
    generator = torch.Generator().manual_seed(seed)
    batch_size = min(batch_size, len(windows))
    order: list[int] = []
    encoder.train()
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        log = stack.enter_context(Path(metrics_path).open("a")) if metrics_path else None
        stack.callback(encoder.eval)
        for step in tqdm(range(steps), desc="imu-text contrastive", disable=not progress or bars_disabled_by_env()):
            if len(order) < batch_size:
                order = torch.randperm(len(windows), generator=generator).tolist()
            index, order = torch.tensor(order[:batch_size], device=device), order[batch_size:]
            imu = F.normalize(encoder(windows[index])["embeds"], dim=-1)
            loss = info_nce(imu, caption_table[caption_ids[index]], logit_scale, caption_ids[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            with torch.no_grad():
                logit_scale.clamp_(0.0, MAX_LOGIT_SCALE)
            result.losses.append(loss.item())
            result.steps = step + 1
            if log:
                temperature = math.exp(-logit_scale.item())
                log.write(json.dumps({"step": step, "loss": result.losses[-1], "temperature": temperature}) + "\n")
            if on_step:
                on_step(step, result.losses[-1])
            if max_seconds is not None and time.perf_counter() - start > max_seconds:
                break
    result.seconds = time.perf_counter() - start
    result.logit_scale = logit_scale.item()
    result.retrieval_after = retrieval_accuracy(encoder, windows, caption_table, caption_ids)
    return result
