"""The M3IT task registry: the 40 datasets of M3IT (Li et al., 2023, §3.1, Fig. 1) with their category, held-in /
held-out flag and whether M3IT-80 translates them.

Names are the Hugging Face config names of ``MMInstruction/M3IT`` (``vist``, ``winoground``, ``chinesefoodnet`` and
``mmchat`` are not in the public config listing; their names here follow the paper). Held out (Fig. 1's dashed
boxes; §4.3 trains on "all 27 tasks"): Winoground, ViQuAE, the five Chinese and the six video datasets.
Categories: ``CAP`` captioning, ``REA`` reasoning, ``VQA``, ``KVQA`` knowledgeable VQA, ``CLS`` classification,
``GEN`` generation, ``Chinese``, ``Video``. Video datasets store frames as a list of images, which anymal reads as
several images per instance (Ying-VLM's per-frame query tokens, concatenated).

:func:`register_m3it_task` adds a dataset rewritten into the M3IT schema (e.g. audio or IMU captions) so that the
same collection reader, caps and weights apply to it.
"""

from __future__ import annotations

from dataclasses import dataclass

from anymal.errors import ConfigError

CATEGORIES = ("CAP", "REA", "VQA", "KVQA", "CLS", "GEN", "Chinese", "Video")


@dataclass(frozen=True)
class M3ITTask:
    """One M3IT dataset: ``category`` (one of :data:`CATEGORIES`), ``held_out`` (not trained on in the paper:
    zero-shot evaluation), ``translated`` (evaluation copies in M3IT-80's 80 languages), ``language``."""

    name: str
    category: str
    held_out: bool = False
    translated: bool = False
    language: str = "en"

    def __post_init__(self) -> None:
        if self.category not in CATEGORIES:
            raise ConfigError(f"M3IT task {self.name!r}: category {self.category!r}; expected one of {CATEGORIES}")


def _tasks() -> dict[str, M3ITTask]:
    rows: list[tuple[str, str] | tuple[str, str, bool]] = [
        ("coco", "CAP"), ("textcap", "CAP"), ("image-paragraph-captioning", "CAP"),
        ("clevr", "REA"), ("nlvr", "REA"), ("vcr", "REA"), ("visual-mrc", "REA"), ("winoground", "REA", True),
        ("vqa-v2", "VQA"), ("shapes", "VQA"), ("docvqa", "VQA"), ("ocr-vqa", "VQA"), ("st-vqa", "VQA"),
        ("text-vqa", "VQA"), ("gqa", "VQA"),
        ("okvqa", "KVQA"), ("a-okvqa", "KVQA"), ("science-qa", "KVQA"), ("viquae", "KVQA", True),
        ("imagenet", "CLS"), ("coco-goi", "CLS"), ("coco-text", "CLS"), ("coco-itm", "CLS"), ("snli-ve", "CLS"),
        ("mocheg", "CLS"), ("iqa", "CLS"),
        ("vist", "GEN"), ("visual-dialog", "GEN"), ("multi30k", "GEN"),
        ("fm-iqa", "Chinese", True), ("coco-cn", "Chinese", True), ("flickr8k-cn", "Chinese", True),
        ("chinesefoodnet", "Chinese", True), ("mmchat", "Chinese", True),
        ("msrvtt", "Video", True), ("msrvtt-qa", "Video", True), ("activitynet-qa", "Video", True),
        ("ivqa", "Video", True), ("msvd-qa", "Video", True), ("ss", "Video", True),
    ]  # fmt: skip
    translated = {"okvqa", "imagenet", "winoground", "vqa-v2", "vist", "msrvtt", "msrvtt-qa"}
    out = {}
    for row in rows:
        name, category = row[0], row[1]
        language = "zh" if category == "Chinese" else "en"
        out[name] = M3ITTask(name, category, len(row) > 2, name in translated, language)
    return out


M3IT_TASKS: dict[str, M3ITTask] = _tasks()


def register_m3it_task(task: M3ITTask, replace: bool = False) -> M3ITTask:
    """Adds a task (a dataset rewritten into M3IT's schema) to the registry; ``replace`` to redefine one."""
    if task.name in M3IT_TASKS and not replace:
        raise ConfigError(f"M3IT task {task.name!r} is already registered; pass replace=True to redefine it")
    M3IT_TASKS[task.name] = task
    return task


def get_m3it_task(name: str) -> M3ITTask:
    """The registered task ``name``; an unknown name lists the registered ones."""
    if name not in M3IT_TASKS:
        raise ConfigError(
            f"M3IT task {name!r} is not registered; known: {', '.join(sorted(M3IT_TASKS))} "
            "(anymal.data.m3it_tasks.register_m3it_task adds one)"
        )
    return M3IT_TASKS[name]


def m3it_tasks(category: str | None = None, held_out: bool | None = None) -> list[M3ITTask]:
    """Registered tasks, optionally of one ``category`` and/or with the given ``held_out`` flag, in registry order."""
    if category is not None and category not in CATEGORIES:
        raise ConfigError(f"category={category!r}: expected one of {', '.join(CATEGORIES)}")
    return [
        t
        for t in M3IT_TASKS.values()
        if (category is None or t.category == category) and (held_out is None or t.held_out == held_out)
    ]
