"""``evaluate(model, task, rows)``: run one task over its items on an in-memory model, batch by batch, with a
progress bar and (optionally) a resumable predictions file; the CLI and the training loop both call it."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, cast

from tqdm.auto import tqdm

from anymal.errors import ConfigError
from anymal.eval.items import EvalItem, read_eval_items
from anymal.eval.likelihood import ScoreRequest, check_normalize, score_candidates
from anymal.eval.metrics.choice import LETTERS, rotations
from anymal.eval.predictions import PredictionStore
from anymal.eval.tasks import Task, get_task
from anymal.progress import bars_disabled_by_env

MC_TARGETS = ("letter", "text")


def _generate(model: Any, task: Task, batch: list[tuple[int, EvalItem]], settings: dict[str, Any]) -> list[dict]:
    prompts = [task.prompt(item, template=settings["prompt"], settings=settings) for _, item in batch]
    names = sorted({name for _, item in batch for name in item.raw_media()})
    media = {name: [item.raw_media().get(name) for _, item in batch] for name in names}
    out = model.generate(
        prompts,
        max_new_tokens=settings["max_new_tokens"],
        do_sample=False,
        chat=settings["chat"],
        **media,
    )
    records = []
    for (index, item), text in zip(batch, out.texts):
        prediction = text.strip()
        record: dict[str, Any] = {"index": index, "id": item.id, "prediction": prediction,
                                  "references": item.references}  # fmt: skip
        if task.score_fn is not None:
            record.update(task.score_fn(item, prediction, settings))
        elif task.item_metric is not None:
            record["score"] = task.item_metric(prediction, item.references)
        records.append(record)
    return records


def _choice(model: Any, task: Task, batch: list[tuple[int, EvalItem]], settings: dict[str, Any]) -> list[dict]:
    requests: list[ScoreRequest] = []
    spans: list[tuple[int, list[tuple[list[str], int]]]] = []
    for _, item in batch:
        assert item.options is not None and item.answer is not None  # Task.check
        passes = rotations(item.options, item.answer) if settings["circular"] else [(list(item.options), item.answer)]
        start = len(requests)
        for shown, _ in passes:
            candidates = list(LETTERS[: len(shown)]) if settings["mc_target"] == "letter" else shown
            prompt = task.prompt(item, options=shown, template=settings["prompt"])
            requests.append(ScoreRequest(prompt, candidates, item.raw_media()))
        spans.append((start, passes))
    scores = score_candidates(model, requests, batch_size=settings["batch_size"], chat=settings["chat"])
    records = []
    for (index, item), (start, passes) in zip(batch, spans):
        assert item.options is not None
        results: list[dict[str, Any]] = []
        for k, (_shown, right) in enumerate(passes):
            values = [s.value(settings["normalize"]) for s in scores[start + k]]
            chosen = max(range(len(values)), key=values.__getitem__)
            results.append({"choice": chosen, "correct": chosen == right, "scores": values})
        first_shown, first = passes[0][0], int(results[0]["choice"])
        records.append({
            "index": index, "id": item.id, "prediction": first_shown[first],
            "answer": item.options[item.answer or 0], "correct": all(r["correct"] for r in results), "passes": results,
        })  # fmt: skip
    return records


def _classify(model: Any, task: Task, batch: list[tuple[int, EvalItem]], settings: dict[str, Any]) -> list[dict]:
    requests = []
    for _, item in batch:
        labels: list[str] = list(settings["labels"] or item.options or [])
        requests.append(ScoreRequest(task.prompt(item, template=settings["prompt"]), labels, item.raw_media()))
    scores = score_candidates(model, requests, batch_size=settings["batch_size"], chat=settings["chat"])
    records = []
    for (index, item), request, item_scores in zip(batch, requests, scores):
        values = {label: s.value(settings["normalize"]) for label, s in zip(request.candidates, item_scores)}
        prediction = max(values, key=values.__getitem__)
        gold = item.gold_label()
        records.append({"index": index, "id": item.id, "prediction": prediction, "label": gold,
                        "correct": prediction == gold, "scores": values})  # fmt: skip
    return records


def prediction_settings(task: Task, settings: dict[str, Any]) -> dict[str, Any]:
    """The settings that change a prediction of ``task`` (recorded in, and checked against, the predictions file);
    the batch size is not one of them."""
    identity = {"prompt": settings.get("prompt"), "chat": settings.get("chat")}
    identity.update({name: settings.get(name) for name in task.settings})
    if task.mode == "generate":
        identity["max_new_tokens"] = settings["max_new_tokens"]
    else:
        identity.update(normalize=settings["normalize"], labels=settings.get("labels"))
        if task.mode == "choice":
            identity.update(mc_target=settings["mc_target"], circular=settings["circular"])
    return identity


def _items(rows: Any, modalities: list[str]) -> list[EvalItem]:
    if isinstance(rows, str | os.PathLike):
        return read_eval_items(rows, modalities=modalities)
    rows = list(rows)
    if all(isinstance(row, EvalItem) for row in rows):
        return cast(list[EvalItem], rows)
    return read_eval_items([dict(row) for row in rows], modalities=modalities)


RUNNERS = {"generate": _generate, "choice": _choice, "classify": _classify}


def evaluate(
    model: Any,
    task: str | Task,
    rows: Sequence[EvalItem] | Sequence[Mapping[str, Any]] | str | os.PathLike,
    *,
    labels: Sequence[str] | None = None,
    limit: int | None = None,
    batch_size: int = 8,
    max_new_tokens: int = 32,
    normalize: str = "sum",
    mc_target: str = "letter",
    circular: bool = True,
    caption_tokenizer: str = "auto",
    prompt: str | None = None,
    chat: bool | None = None,
    box_format: str = "pink",
    predictions: str | os.PathLike | None = None,
    run_info: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Scores ``model`` (an in-memory :class:`anymal.AnyMAL`) on ``task`` over ``rows``.

    Args:
        model: the model; put in eval mode for the run and restored after.
        task: a task name (``anymal.eval.TASKS``) or a :class:`Task`.
        rows: :class:`EvalItem` s, row dicts in the eval schema, or a data file (see :mod:`anymal.eval.items`).
        labels: the label set of ``classify`` (default: each row's ``options``).
        limit: only the first ``limit`` items.
        batch_size: items per ``generate`` call; (prompt, candidate) sequences per forward pass when ranking.
        max_new_tokens: generation length (greedy decoding).
        normalize: rank candidates by summed (``"sum"``) or per-token mean (``"mean"``) log-likelihood.
        mc_target: multiple choice scores the option letters (``"letter"``, MMBench's answer format) or the
            option texts (``"text"``); the options are listed in the prompt either way.
        circular: MMBench CircularEval (every rotation of the options must be answered right).
        caption_tokenizer: ``"auto"``, ``"ptb"`` or ``"whitespace"`` (see :mod:`anymal.eval.metrics.caption`).
        prompt: a template replacing the task's (``{question}``, ``{options}``); rows' own ``prompt`` still win.
        chat: wrap prompts in the chat template (default: the model's ``llm.apply_chat_template``).
        box_format: ``rec``: the box grammar of prompts and answers, ``"pink"`` or ``"qwen"``.
        predictions: a JSONL file of per-item predictions: items already in it are skipped (resume), new ones
            are appended and flushed per batch.
        run_info: extra identity recorded in the predictions header (the CLI puts the model and data paths).
        progress: show a tqdm bar (``TQDM_DISABLE`` also turns it off).

    Returns:
        ``{"task", "n_items", "metrics": {...}, "settings": {...}, "predictions": path or None}``.
    """
    task = get_task(task) if isinstance(task, str) else task
    if batch_size < 1:
        raise ConfigError(f"batch_size={batch_size}: must be >= 1")
    if limit is not None and limit < 0:
        raise ConfigError(f"limit={limit}: must be >= 0")
    if max_new_tokens < 1:
        raise ConfigError(f"max_new_tokens={max_new_tokens}: must be >= 1")
    check_normalize(normalize)
    if mc_target not in MC_TARGETS:
        raise ConfigError(f"mc_target={mc_target!r}: expected one of {', '.join(MC_TARGETS)}")
    if labels is not None:
        labels = [str(label).strip() for label in labels if str(label).strip()]
        if not labels:
            raise ConfigError("labels: the label set is empty")
        if len(set(labels)) != len(labels):
            raise ConfigError(f"labels: {labels} has duplicates")
    all_items = _items(rows, list(model.plugins))
    if limit is not None:
        all_items = all_items[:limit]
    for item in all_items:
        task.check(item, labels)

    settings: dict[str, Any] = {
        "max_new_tokens": max_new_tokens, "normalize": normalize, "mc_target": mc_target, "circular": circular,
        "prompt": prompt, "chat": chat, "labels": labels, "box_format": box_format,
    }  # fmt: skip
    identity = prediction_settings(task, settings)
    store = None
    done: dict[int, dict[str, Any]] = {}
    if predictions is not None:
        store = PredictionStore(predictions, {"task": task.name, "settings": identity, **(run_info or {})})
        store.check_ids([item.id for item in all_items])
        done = store.records
    todo = [(i, item) for i, item in enumerate(all_items) if i not in done]
    run = RUNNERS[task.mode]
    run_settings = {**settings, "batch_size": batch_size}
    was_training = getattr(model, "training", False)
    model.eval()
    bar = tqdm(total=len(all_items), initial=len(all_items) - len(todo), desc=f"eval {task.name}", unit="item",
               disable=not progress or bars_disabled_by_env())  # fmt: skip
    records = dict(done)
    try:
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            new = run(model, task, batch, run_settings)
            if store is not None:
                store.append(new)
            for record in new:
                records[record["index"]] = record
            bar.update(len(batch))
    finally:
        bar.close()
        model.train(was_training)
    ordered = [records[i] for i in range(len(all_items))]
    metrics = task.aggregate(all_items, ordered, caption_tokenizer=caption_tokenizer, **settings) if all_items else {}
    return {
        "task": task.name,
        "n_items": len(all_items),
        "metrics": metrics,
        "settings": {**identity, "batch_size": batch_size, "caption_tokenizer": caption_tokenizer, "limit": limit},
        "predictions": str(predictions) if predictions is not None else None,
    }
