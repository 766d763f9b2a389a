"""Held-out evaluation: generate captions and answers for items never trained on, then score them.

Generation and scoring are kept apart on purpose. :func:`generate_texts` sees only what a user would give the
model (the prompt and the media files); the ground truth is read afterwards, by :func:`score`, which looks for the
attribute words in the generated text. So every number the demo prints is computed from the texts it shows.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from anymal_demo.world.vocabulary import SPECS, caption_instructions, read_attributes


@dataclass
class EvalItem:
    """One held-out prompt: what the model gets (``prompt``, ``media``) and what it is scored on.

    Attributes:
        id: the row id in the world's files.
        task: ``"<modality> caption"``, ``"<modality> answers"`` or ``"<a>+<b> answers"`` (a row of the table).
        prompt: the prompt with its modality placeholders.
        media: per modality, the media files of the prompt (absolute paths).
        truth: per modality, the item's attributes (used only by :func:`score`).
        asks: per modality, the attributes the reply must name correctly.
        reference: one correct reply, shown next to the generation.
    """

    id: str
    task: str
    prompt: str
    media: dict[str, list[str]]
    truth: dict[str, dict[str, str]] = field(repr=False)
    asks: dict[str, list[str]]
    reference: str = ""


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def caption_items(world: Path, modality: str, limit: int | None = None) -> list[EvalItem]:
    """A captioning prompt per held-out item of ``modality`` (the plugin's first captioning instruction)."""
    instruction = caption_instructions(modality)[0]
    spec = SPECS[modality]
    return [
        EvalItem(
            id=row["id"],
            task=f"{modality} caption",
            prompt=f"<{modality}>\n{instruction}",
            media={modality: [str(world / row[modality])]},
            truth={modality: row["truth"]},
            asks={modality: [a.name for a in spec.attributes]},
            reference=row["caption"],
        )
        for row in _rows(world / f"heldout_{modality}.jsonl")[:limit]
    ]


def question_items(world: Path, limit_per_task: int | None = None) -> list[EvalItem]:
    """The held-out questions, about one item or about two items of different modalities at once."""
    items, seen = [], defaultdict(int)
    for row in _rows(world / "heldout_questions.jsonl"):
        task = f"{row['task']} answers"
        if limit_per_task is not None and seen[task] >= limit_per_task:
            continue
        seen[task] += 1
        media = {name: [str(world / path) for path in paths] for name, paths in row["media"].items()}
        items.append(EvalItem(row["id"], task, row["prompt"], media, row["truth"], row["asks"], row["answer"]))
    return items


def generate_texts(
    model,
    items: list[EvalItem],
    batch_size: int = 32,
    max_new_tokens: int = 20,
    progress: bool = True,
    desc: str = "generate",
) -> list[str]:
    """Greedy replies of ``model`` to each item's prompt and media (batched; nothing else is passed)."""
    texts: dict[int, str] = {}
    groups: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for i, item in enumerate(items):
        groups[tuple(sorted(item.media))].append(i)
    bar = tqdm(total=len(items), desc=desc, unit="prompt", disable=not progress)
    for names, indices in groups.items():
        for start in range(0, len(indices), batch_size):
            chunk = indices[start : start + batch_size]
            media = {name: [items[i].media[name] for i in chunk] for name in names}
            out = model.generate(
                [items[i].prompt for i in chunk], **media, max_new_tokens=max_new_tokens, do_sample=False
            )
            texts.update(zip(chunk, (text.strip() for text in out.texts)))
            bar.update(len(chunk))
    bar.close()
    return [texts[i] for i in range(len(items))]


def score(item: EvalItem, text: str) -> dict[str, bool]:
    """Whether ``text`` names each asked attribute correctly, keyed ``"<modality>.<attribute>"``."""
    result = {}
    for modality, names in item.asks.items():
        found = read_attributes(text, SPECS[modality].attributes)
        for name in names:
            result[f"{modality}.{name}"] = found[name] == item.truth[modality][name]
    return result


def chance(item: EvalItem) -> tuple[float, float]:
    """Expected (attribute accuracy, exact match) of replies that name uniformly random values."""
    per_attr = [SPECS[m].attribute(n).chance for m, names in item.asks.items() for n in names]
    exact = 1.0
    for p in per_attr:
        exact *= p
    return sum(per_attr) / len(per_attr), exact


def summarise(items: list[EvalItem], texts: list[str]) -> dict[str, dict[str, Any]]:
    """Per task: attribute accuracy, exact match (every asked attribute right), per-attribute accuracy (over the
    prompts that asked about it), and the chance levels of the first two."""
    tasks: dict[str, dict[str, Any]] = {}
    for item, text in zip(items, texts):
        scores = score(item, text)
        row = tasks.setdefault(
            item.task,
            {
                "n": 0,
                "attribute_hits": 0,
                "attribute_total": 0,
                "exact": 0,
                "hits": defaultdict(int),
                "asked": defaultdict(int),
                "chance": [0.0, 0.0],
            },
        )
        row["n"] += 1
        row["chance"] = [total + c for total, c in zip(row["chance"], chance(item))]
        row["attribute_hits"] += sum(scores.values())
        row["attribute_total"] += len(scores)
        row["exact"] += all(scores.values())
        for key, ok in scores.items():
            row["hits"][key] += ok
            row["asked"][key] += 1
    out = {}
    for task, row in tasks.items():
        out[task] = {
            "n": row["n"],
            "attribute_accuracy": row["attribute_hits"] / row["attribute_total"],
            "exact_match": row["exact"] / row["n"],
            "per_attribute": {k: row["hits"][k] / n for k, n in sorted(row["asked"].items())},
            "chance_attribute_accuracy": row["chance"][0] / row["n"],
            "chance_exact_match": row["chance"][1] / row["n"],
        }
    return out


def evaluate(
    model, items: list[EvalItem], batch_size: int = 32, progress: bool = True, desc: str = "generate"
) -> dict[str, Any]:
    """Generates for every item, then scores: ``{"metrics": per-task summary, "generations": [...]}``."""
    texts = generate_texts(model, items, batch_size=batch_size, progress=progress, desc=desc)
    generations = [
        {
            "id": item.id,
            "task": item.task,
            "prompt": item.prompt,
            "media": item.media,
            "generated": text,
            "reference": item.reference,
            "correct": score(item, text),
        }
        for item, text in zip(items, texts)
    ]
    return {"metrics": summarise(items, texts), "generations": generations}
