"""M3IT end to end: the instance schema, per-task instruction pools, and a task collection with caps and weights.

An M3IT instance (Li et al., 2023, §3.3; one JSONL row) is ``{"instruction", "inputs", "outputs",
"image_base64_str": [base64 images or video frames], "meta": {...}}``. M3IT ships one folder per task with the
instance files and ``instructions.json``, the task's pool of about ten hand-written instructions.

A *collection* is a YAML (or JSON) manifest naming tasks of the registry (:mod:`anymal.data.m3it_tasks`)::

    held_out: exclude            # exclude (train on held-in tasks: the paper's 27), include, or only
    categories: [CAP, VQA, KVQA] # optional: keep these categories
    max_examples_per_task: 5000  # the paper's §4.3 cap; a task's own max_examples wins
    instruction_pool_size: 4     # optional: the first k instructions of each pool (§4.3: 1, 2, 4, 8)
    resample_instructions: true  # draw each instance's instruction from its task's pool, anew every epoch
    seed: 0
    tasks:
      - {name: coco, path: coco/train.jsonl, instructions: coco/instructions.json, weight: 1.0}
      - {name: okvqa, path: okvqa/train.jsonl, instructions: [..., ...], max_examples: 1000, weight: 2.0}

Paths are relative to the manifest. :func:`read_m3it_tasks` (data kind ``m3it_tasks`` in training configs) yields
anymal training records, tasks interleaved by weight until each is used up; :func:`m3it_eval_rows` turns the same
manifest into rows of ``anymal.eval``'s schema for the ``m3it`` task (ROUGE-L), e.g. the held-out tasks.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anymal.config import check_choice, config_from_dict, read_yaml_mapping
from anymal.data.formats import M3ITFormat, MediaOptions
from anymal.data.m3it_tasks import CATEGORIES, M3ITTask, get_m3it_task
from anymal.data.mixing import Mixture
from anymal.data.readers import ExampleReader
from anymal.data.report import DataReport, RowError
from anymal.data.rows import Row
from anymal.errors import ConfigError, DataError
from anymal.records import Example

HELD_OUT_POLICIES = ("exclude", "include", "only")
INSTANCE_KEYS = ("instruction", "inputs", "outputs", "image_base64_str", "meta")


@dataclass(frozen=True)
class M3ITInstance:
    """One M3IT instance: images as encoded files (bytes, e.g. JPEG; video tasks: frames), the text fields and
    ``meta``. :meth:`to_row` gives the JSONL row (``image_base64_str`` as M3IT stores it)."""

    instruction: str
    outputs: str
    inputs: str = ""
    images: tuple[bytes, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)

    def to_row(self) -> dict[str, Any]:
        return {
            "instruction": self.instruction,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "image_base64_str": [_b64(image) for image in self.images],
            "meta": dict(self.meta),
        }


def write_m3it_task(
    folder: str | os.PathLike, instances: Sequence[M3ITInstance], instructions: Sequence[str], split: str = "train"
) -> tuple[Path, Path]:
    """Writes a task in M3IT's layout, ``<folder>/<split>.jsonl`` and ``<folder>/instructions.json`` (atomically),
    e.g. to rewrite another dataset into the unified schema; returns both paths."""
    from anymal.atomic import atomic_write_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if not instructions or not all(isinstance(t, str) and t.strip() for t in instructions):
        raise DataError("write_m3it_task: expected a non-empty list of non-empty instructions")
    data = folder / f"{split}.jsonl"
    text = "".join(json.dumps(i.to_row(), ensure_ascii=False) + "\n" for i in instances)
    atomic_write_file(data, lambda tmp: _write_text(tmp, text))
    pool = folder / "instructions.json"
    pool_text = json.dumps(list(instructions), ensure_ascii=False, indent=1)
    atomic_write_file(pool, lambda tmp: _write_text(tmp, pool_text))
    return data, pool


@dataclass
class M3ITTaskSpec:
    """One task of a collection: registry ``name``, instance file ``path``, its instruction pool (a JSON file
    holding a list of strings, as M3IT's ``instructions.json``, or the list itself), ``weight``, ``max_examples``."""

    name: str = ""
    path: str = ""
    instructions: Any = None
    weight: float = 1.0
    max_examples: int | None = None

    def __post_init__(self) -> None:
        if not self.name or not self.path:
            raise ConfigError("tasks: each task needs name: (an M3IT task) and path: (its instance file)")
        if not (isinstance(self.weight, int | float) and self.weight > 0):
            raise ConfigError(f"tasks.{self.name}.weight={self.weight!r}: expected a positive number")
        if self.max_examples is not None and self.max_examples < 1:
            raise ConfigError(f"tasks.{self.name}.max_examples={self.max_examples}: expected >= 1 or null")


@dataclass
class M3ITCollectionConfig:
    """A collection manifest (module docstring)."""

    tasks: list[M3ITTaskSpec] = field(default_factory=list)
    held_out: str = "exclude"
    categories: list[str] | None = None
    max_examples_per_task: int | None = None
    instruction_pool_size: int | None = None
    resample_instructions: bool = True
    modality: str = "image"
    seed: int = 0

    def __post_init__(self) -> None:
        check_choice(self.held_out, HELD_OUT_POLICIES, "held_out")
        if not self.tasks:
            raise ConfigError("tasks: empty; expected at least one task")
        for category in self.categories or []:
            check_choice(category, CATEGORIES, "categories")
        for name in ("max_examples_per_task", "instruction_pool_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name}={value}: expected >= 1 or null")
        for spec in self.tasks:
            get_m3it_task(spec.name)  # unknown names list the registry


def load_collection(path: str | os.PathLike) -> tuple[M3ITCollectionConfig, Path]:
    """The validated manifest and the folder its paths are relative to."""
    data = read_yaml_mapping(path)
    tasks = data.get("tasks")
    if isinstance(tasks, list):  # task entries first, so that an error names tasks.<i>.<key>
        for i, entry in enumerate(tasks):
            if isinstance(entry, dict):
                config_from_dict(M3ITTaskSpec, entry, f"tasks.{i}")
    return config_from_dict(M3ITCollectionConfig, data, str(path)), Path(path).resolve().parent


def instruction_pool(spec: M3ITTaskSpec, base: Path, size: int | None = None) -> tuple[str, ...]:
    """A task's instruction pool (its first ``size`` instructions); empty when the manifest names none."""
    value = spec.instructions
    where = f"tasks.{spec.name}.instructions"
    if value is None:
        return ()
    if isinstance(value, str):
        file = base / value
        try:
            value = json.loads(file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"{where}: cannot read {file} ({exc.strerror})") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{where}: {file} is not a JSON list of instructions ({exc})") from None
    if not isinstance(value, list) or not value or not all(isinstance(t, str) and t.strip() for t in value):
        raise ConfigError(f"{where}: expected a non-empty list of non-empty instruction strings")
    return tuple(t.strip() for t in value[:size])


@dataclass(frozen=True)
class M3ITTaskFormat:
    """An M3IT instance of one task to an :class:`Example`, checking the schema; with a pool and ``resample``, the
    instruction is drawn from the task's pool (seeded by seed, epoch, file and line) instead of the stored one."""

    task: M3ITTask
    pool: tuple[str, ...] = ()
    resample: bool = True
    seed: int = 0
    modality: str = "image"

    def __call__(self, row: Row, epoch: int = 0) -> Example:
        data = row.data
        meta = data.get("meta")
        if meta is not None and not isinstance(meta, dict):
            raise RowError(row.source, row.line, "meta", "wrong_type", f"expected an object, got {type(meta).__name__}")
        images = data.get("image_base64_str")
        if images is not None and not isinstance(images, list):
            problem = f"expected a list of base64 images, got {type(images).__name__}"
            raise RowError(row.source, row.line, "image_base64_str", "wrong_type", problem)
        if self.pool and self.resample:
            rng = random.Random(f"m3it:{self.seed}:{epoch}:{self.task.name}:{Path(row.source).name}:{row.line}")
            row = dataclasses.replace(row, data={**data, "instruction": self.pool[rng.randrange(len(self.pool))]})
        example = M3ITFormat(self.modality, media=MediaOptions(encoding="base64"))(row, epoch)
        return dataclasses.replace(example, id=f"{self.task.name}:{row.line}")


class _Capped:
    """The first ``cap`` examples of a reader per pass (all when ``cap`` is None)."""

    def __init__(self, reader: ExampleReader, cap: int | None) -> None:
        self.reader, self.cap = reader, cap

    def set_epoch(self, epoch: int) -> None:
        self.reader.set_epoch(epoch)

    @property
    def report(self) -> DataReport:
        return self.reader.report

    def __iter__(self) -> Iterator[Example]:
        return itertools.islice(iter(self.reader), self.cap)


class M3ITCollection:
    """The tasks of a manifest that pass its held-out and category filters, interleaved by weight (seeded by the
    manifest's seed and the epoch), each capped. ``selected`` lists the tasks used; ``counts`` (after a pass) how
    many examples each gave."""

    def __init__(self, config: M3ITCollectionConfig, base: Path, on_error: str = "raise", **reader_kwargs: Any):
        self.config = config
        specs = [s for s in config.tasks if self._keep(get_m3it_task(s.name))]
        if not specs:
            raise DataError(
                f"M3IT collection: no task left after held_out={config.held_out!r}, categories={config.categories}"
            )
        self.selected = [s.name for s in specs]
        datasets, weights = {}, {}
        for spec in specs:
            task = get_m3it_task(spec.name)
            pool = instruction_pool(spec, base, config.instruction_pool_size)
            row_format = M3ITTaskFormat(task, pool, config.resample_instructions, config.seed, config.modality)
            reader = ExampleReader(str(base / spec.path), row_format, on_error=on_error, **reader_kwargs)
            cap = spec.max_examples if spec.max_examples is not None else config.max_examples_per_task
            datasets[spec.name], weights[spec.name] = _Capped(reader, cap), spec.weight
        self.mixture = Mixture(datasets, weights, seed=config.seed, stopping="all_exhausted")

    def _keep(self, task: M3ITTask) -> bool:
        policy = self.config.held_out
        if (policy == "exclude" and task.held_out) or (policy == "only" and not task.held_out):
            return False
        return self.config.categories is None or task.category in self.config.categories

    def set_epoch(self, epoch: int) -> None:
        self.mixture.set_epoch(epoch)

    @property
    def report(self) -> DataReport:
        return self.mixture.report

    @property
    def counts(self) -> dict[str, int]:
        return dict(self.mixture.counts)

    def __iter__(self) -> Iterator[Example]:
        return iter(self.mixture)


def read_m3it_tasks(
    source: str | os.PathLike,
    on_error: str = "raise",
    media_root: str | os.PathLike | None = None,
    resample_instructions: bool | None = None,
    **kwargs: Any,
) -> M3ITCollection:
    """The training records of an M3IT collection manifest (data kind ``m3it_tasks``); ``media_root`` overrides
    the folder its task paths are relative to (default: the manifest's), ``resample_instructions`` the manifest's
    setting (``anymal.eval`` reads each instance's stored instruction)."""
    if isinstance(source, Sequence) and not isinstance(source, str | bytes):
        raise DataError("m3it_tasks: expected one collection manifest file, not a list")
    config, base = load_collection(source)
    if resample_instructions is not None:
        config = dataclasses.replace(config, resample_instructions=resample_instructions)
    return M3ITCollection(config, Path(media_root) if media_root else base, on_error=on_error, **kwargs)


def m3it_eval_rows(
    source: str | os.PathLike, held_out: str | None = None, limit_per_task: int | None = None
) -> list[dict[str, Any]]:
    """Rows of ``anymal.eval``'s schema for the ``m3it`` task (greedy answer, ROUGE-L against ``outputs``) from a
    collection manifest; ``held_out`` overrides the manifest's policy (``"only"``: zero-shot on held-out tasks).
    Each row keeps its ``task`` and ``category`` so scores can be split per task. Instructions are the stored ones
    (no resampling), so a run is reproducible."""
    config, base = load_collection(source)
    config = dataclasses.replace(config, resample_instructions=False, max_examples_per_task=limit_per_task)
    if held_out is not None:
        check_choice(held_out, HELD_OUT_POLICIES, "held_out")
        config = dataclasses.replace(config, held_out=held_out)
    collection = M3ITCollection(config, base, on_error="raise")
    rows = []
    for spec_name in collection.selected:
        task = get_m3it_task(spec_name)
        for example in collection.mixture.datasets[collection.mixture.names.index(spec_name)]:
            images = [ref.read_bytes() for ref in example.media.get(config.modality, [])]
            rows.append(
                {
                    "id": example.id,
                    "prompt": example.turns[0].text,
                    "media": {config.modality: [_b64(data) for data in images]} if images else {},
                    "answers": [example.turns[1].text],
                    "task": task.name,
                    "category": task.category,
                }
            )
    return rows


def _write_text(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode("ascii")
