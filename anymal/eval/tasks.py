"""The evaluation tasks: how each builds prompts, what it asks the model (generation or likelihood ranking), and
how it scores one item and the whole set.

========== ============ ====================================================================================
task       mode         metric
========== ============ ====================================================================================
caption    generate     BLEU-1..4, METEOR, ROUGE-L, CIDEr-D (pycocoevalcap, corpus level)
vqav2      generate     VQAv2 soft accuracy with the official answer normalisation
gqa        generate     exact match (normalised short answers)
anls       generate     ANLS, threshold 0.5 (DocVQA, ST-VQA, InfographicVQA)
m3it       generate     ROUGE-L per item, averaged (M3IT / Ying-VLM)
mmbench    choice       likelihood-ranked options, CircularEval (and the unrotated accuracy)
classify   classify     likelihood-ranked labels (``labels=``, or each row's ``options``): accuracy, per class
========== ============ ====================================================================================
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from anymal.errors import ConfigError, DataError
from anymal.eval.items import EvalItem
from anymal.eval.metrics import anls, caption_scores, exact_match, render_options, rouge_l, vqa_accuracy

SHORT_ANSWER = "{question}\nAnswer the question using a single word or phrase."
MC_PROMPT = "{question}\n{options}\nAnswer with the option's letter from the given choices directly."


@dataclass(frozen=True)
class Task:
    """One evaluation task.

    Attributes:
        name: the ``--task`` name.
        mode: ``"generate"`` (free generation, then a text metric), ``"choice"`` (likelihood-ranked options with
            circular evaluation) or ``"classify"`` (likelihood-ranked labels).
        template: the prompt of a row that gives a ``question`` (a row's ``prompt`` is used verbatim).
        item_metric: the per-item score of a generation (``None`` when the metric is corpus-level).
        metric_name: the name of the mean of ``item_metric`` in the results.
        needs: what each row must have: ``"references"``, ``"options"`` or ``"label"``.
    """

    name: str
    mode: str
    template: str
    needs: str
    item_metric: Callable[[str, Sequence[str]], float] | None = None
    metric_name: str = ""
    description: str = ""
    default_question: str = ""
    prompt_fn: Callable[[EvalItem, dict[str, Any]], str] | None = None
    score_fn: Callable[[EvalItem, str, dict[str, Any]], dict[str, Any]] | None = None
    aggregate_fn: Callable[[Sequence[EvalItem], Sequence[dict[str, Any]], dict[str, Any]], dict] | None = None
    check_fn: Callable[[EvalItem], None] | None = None
    settings: tuple[str, ...] = ()

    def prompt(
        self,
        item: EvalItem,
        options: Sequence[str] | None = None,
        template: str | None = None,
        settings: dict[str, Any] | None = None,
    ) -> str:
        """The prompt for ``item``: its ``prompt`` verbatim, else ``template`` (default: the task's) filled with
        its ``question`` (and, for multiple choice, the lettered ``options``)."""
        if item.prompt is not None and options is None:
            return item.prompt
        if self.prompt_fn is not None and options is None:
            return self.prompt_fn(item, {**(settings or {}), "template": template})
        question = item.question if item.question is not None else (item.prompt or self.default_question)
        rendered = render_options(options) if options is not None else ""
        return (template or self.template).format(question=question, options=rendered).strip()

    def check(self, item: EvalItem, labels: Sequence[str] | None = None) -> None:
        """Raises a DataError naming the row when it lacks what this task needs."""
        if self.check_fn is not None:
            self.check_fn(item)
        if self.needs == "references" and not item.references:
            raise DataError(f"{item.location}: task {self.name!r} needs reference answers ('answers' or 'caption')")
        if self.needs == "options" and (item.options is None or item.answer is None):
            raise DataError(f"{item.location}: task {self.name!r} needs 'options' and the right 'answer'")
        if self.needs == "label":
            if item.label is None and not (item.options is not None and item.answer is not None):
                raise DataError(f"{item.location}: task {self.name!r} needs the right 'label'")
            choices = labels if labels is not None else item.options
            if not choices:
                raise ConfigError(
                    f"task {self.name!r} needs a label set: pass labels (--labels a,b,c or a file, one per line) "
                    f"or give each row 'options' ({item.location} has none)"
                )
            gold = item.gold_label()
            if gold not in choices:
                raise DataError(f"{item.location}: label {gold!r} is not in the label set {list(choices)}")

    def aggregate(self, items: Sequence[EvalItem], records: Sequence[dict[str, Any]], **options: Any) -> dict:
        """The task's scores over all items from their prediction records (in item order)."""
        if self.aggregate_fn is not None:
            return self.aggregate_fn(items, records, options)
        if self.mode == "choice":
            passes = [[bool(p["correct"]) for p in r["passes"]] for r in records]
            n = len(passes)
            return {"circular_accuracy": sum(all(p) for p in passes) / n if n else 0.0,
                    "vanilla_accuracy": sum(p[0] for p in passes) / n if n else 0.0}  # fmt: skip
        if self.mode == "classify":
            per_class: dict[str, list[bool]] = {}
            for r in records:
                per_class.setdefault(r["label"], []).append(bool(r["correct"]))
            n = len(records)
            return {
                "accuracy": sum(bool(r["correct"]) for r in records) / n if n else 0.0,
                "per_class_accuracy": {k: sum(v) / len(v) for k, v in sorted(per_class.items())},
            }
        if self.item_metric is None:  # corpus-level caption metrics
            return caption_scores(
                [r["prediction"] for r in records],
                [item.references for item in items],
                tokenizer=options.get("caption_tokenizer", "auto"),
            )
        values = [float(r["score"]) for r in records]
        return {self.metric_name: sum(values) / len(values) if values else 0.0}


TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        Task(
            "caption",
            "generate",
            "{question}",
            "references",
            description="captioning: BLEU/METEOR/ROUGE-L/CIDEr",
            default_question="Describe this in one sentence.",
        ),
        Task("vqav2", "generate", SHORT_ANSWER, "references", vqa_accuracy, "vqa_accuracy", "VQAv2 soft accuracy"),
        Task("gqa", "generate", SHORT_ANSWER, "references", exact_match, "exact_match", "GQA exact match"),
        Task("anls", "generate", SHORT_ANSWER, "references", anls, "anls", "ANLS (tau 0.5), DocVQA-style"),
        Task("m3it", "generate", "{question}", "references", rouge_l, "rouge_l", "M3IT ROUGE-L"),
        Task("mmbench", "choice", MC_PROMPT, "options", description="likelihood-ranked options, CircularEval"),
        Task(
            "classify",
            "classify",
            "{question}",
            "label",
            description="likelihood ranking over a label set",
            default_question="What is this?",
        ),
    )
}


# Tasks loaded by name on first use: the grounding plugin's REC task (anymal itself never imports the plugin) and
# ``names`` (free generation that must name the right label). Third-party packages add theirs under the
# ``anymal.eval_tasks`` entry-point group.
LAZY_TASKS = {"rec": "anymal.eval.rec:REC_TASK", "names": "anymal.eval.naming:NAMES_TASK"}
ENTRY_POINT_GROUP = "anymal.eval_tasks"


def register_task(task: Task, replace: bool = False) -> Task:
    """Adds ``task`` to :data:`TASKS` (for plugins, notebooks and tests); a taken name needs ``replace=True``."""
    if task.name in TASKS and not replace:
        raise ConfigError(f"eval task {task.name!r} is registered already; pass replace=True to swap it")
    TASKS[task.name] = task
    return task


def task_names() -> list[str]:
    """Every task name: the built-in ones, the lazily loaded ones and the ``anymal.eval_tasks`` entry points."""
    from importlib.metadata import entry_points

    return sorted({*TASKS, *LAZY_TASKS, *(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))})


def get_task(name: str) -> Task:
    """The task called ``name``; an unknown name is a ConfigError listing the known ones."""
    if name in TASKS:
        return TASKS[name]
    import importlib
    from importlib.metadata import entry_points

    target = LAZY_TASKS.get(name)
    if target is None:
        found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
        target = found[0].value if found else None
    if target is None:
        raise ConfigError(f"unknown eval task {name!r}; expected one of {', '.join(task_names())}")
    module, _, attr = target.partition(":")
    task = getattr(importlib.import_module(module), attr)
    if not isinstance(task, Task):
        raise ConfigError(f"eval task {name!r} ({target}) is a {type(task).__name__}, not an anymal.eval Task")
    return register_task(task, replace=True)
