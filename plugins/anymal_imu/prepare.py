"""``python -m anymal_imu.prepare --config FILE [key=value ...]``: training and evaluation data of an
activity-recognition recipe from labelled recording files (see ``configs/examples/imu_basicmotions/``).

From the ``train`` file it writes, under ``out``:

* ``train_windows.npz``: every training recording cut into ``crops`` shifted windows of ``window_samples``, with
  its caption (``X`` channel-first, ``captions``, ``y``, ``sample_rate_hz``): the encoder pretraining data;
* ``train_pairs.jsonl`` + ``windows/``: the same windows as ``.npy`` files (time-first) with their captions, the
  alignment data (``kind: pairs``).

From the ``eval`` file (or, without one, from ``holdout_per_class`` recordings of each label held out of the
training file, seeded, whole recordings only, so that no window of them is trained on) it writes the whole
recordings to ``eval/`` and two row files in ``anymal.eval``'s schema: ``eval_names.jsonl`` (free generation must
name the activity: task ``names``, labels in ``labels_names.txt``) and ``eval_classify.jsonl`` (likelihood ranking
of the captions: task ``classify``, labels in ``labels_classify.txt``). ``split.json`` records which recordings
went where.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from anymal.atomic import atomic_write_file
from anymal.config import load_config
from anymal.errors import AnyMALError, ConfigError, DataError
from anymal_imu.labelled import LabelledRecordings, holdout_split, read_labelled, shifted_windows


@dataclass
class PrepareConfig:
    """Settings of ``python -m anymal_imu.prepare``.

    Attributes:
        train: Labelled training recordings (``.npz`` or ``.ts``, see ``anymal_imu.labelled``).
        eval: Labelled evaluation recordings; ``None``: hold ``holdout_per_class`` training recordings out.
        out: Output folder.
        sample_rate: Rate in Hz of both files (``None``: the ``.npz`` files' ``sample_rate_hz``).
        window_samples: Samples per training window (the encoder's ``window_samples``).
        crops: Shifted windows per training recording (augmentation; 1: the centre window only).
        holdout_per_class: Without ``eval``: training recordings per label kept out of training and evaluated on
            (a validation split by whole recordings). Ignored when ``eval`` is given.
        seed: Seed of the held-out choice.
        caption: Caption of a window, ``{activity}`` replaced by its label's phrase.
        activities: Phrase per label (default: the label in lower case).
        names: The word(s) per label that a generation must contain to name it (default: the phrase).
        instruction: The question the evaluation rows ask after the ``<imu>`` placeholder.
    """

    train: str = ""
    eval: str | None = None
    out: str = "runs/imu_basicmotions/data"
    sample_rate: float | None = None
    window_samples: int = 80
    crops: int = 5
    holdout_per_class: int = 0
    seed: int = 0
    caption: str = "The person is {activity}."
    activities: dict[str, str] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    instruction: str = "Describe this motion recording briefly."

    def __post_init__(self) -> None:
        if not self.train:
            raise ConfigError("train: required (a labelled .npz or .ts file of training recordings)")
        if self.holdout_per_class < 0 or self.crops < 1 or self.window_samples < 1:
            raise ConfigError("holdout_per_class must be >= 0, crops and window_samples >= 1")
        if self.eval is None and self.holdout_per_class == 0:
            raise ConfigError("nothing to evaluate on: give eval (a labelled file) or holdout_per_class > 0")
        if "{activity}" not in self.caption:
            raise ConfigError(f"caption={self.caption!r}: expected an {{activity}} placeholder")

    def phrase(self, label: str) -> str:
        return self.activities.get(label, label.lower())

    def name(self, label: str) -> str:
        return self.names.get(label, self.phrase(label))


def _write_text(path: Path, text: str) -> None:
    def write(tmp: Path) -> None:
        tmp.write_text(text, encoding="utf-8")

    atomic_write_file(path, write)


def _jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


def prepare(cfg: PrepareConfig) -> dict[str, Any]:
    """Writes the recipe's data files (see the module docstring); returns what it wrote and the split."""
    out = Path(cfg.out)
    train = read_labelled(cfg.train, cfg.sample_rate)
    kept = list(range(len(train.labels)))
    held: list[int] = []
    if cfg.eval is None:
        kept, held = holdout_split(train.labels, cfg.holdout_per_class, cfg.seed)
    if cfg.eval is not None:
        evaluation = read_labelled(cfg.eval, cfg.sample_rate)
        unknown = sorted(set(evaluation.labels) - set(train.labels))
        if unknown:
            raise DataError(f"{cfg.eval}: labels {unknown} never occur in the training file {cfg.train}")
    else:
        evaluation = train.subset(held)
    windows = shifted_windows(train.subset(kept), cfg.window_samples, cfg.crops)
    captions = [cfg.caption.format(activity=cfg.phrase(label)) for label in windows.labels]
    per_recording = len(windows.labels) // max(len(kept), 1)

    (out / "windows").mkdir(parents=True, exist_ok=True)
    (out / "eval").mkdir(parents=True, exist_ok=True)

    def write_npz(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez(handle, X=windows.signals, y=np.array(windows.labels), captions=np.array(captions),
                     sample_rate_hz=np.float64(windows.rate))  # fmt: skip

    atomic_write_file(out / "train_windows.npz", write_npz)
    pairs = []
    for k, (signal, caption) in enumerate(zip(windows.signals, captions)):
        name = f"windows/rec{kept[k // per_recording]:04d}_{k % per_recording}.npy"
        np.save(out / name, np.ascontiguousarray(signal.T))
        pairs.append({"imu": name, "caption": caption})
    _write_text(out / "train_pairs.jsonl", _jsonl(pairs))
    _write_eval(cfg, evaluation, sorted(set(train.labels)), out)
    split = {
        "train": cfg.train, "eval": cfg.eval or f"{cfg.train} (held out)", "rate_hz": train.rate,
        "train_recordings": kept, "held_out_recordings": held, "train_windows": len(pairs),
        "eval_recordings": len(evaluation.labels), "config": asdict(cfg),
    }  # fmt: skip
    _write_text(out / "split.json", json.dumps(split, indent=2) + "\n")
    return split


def _write_eval(cfg: PrepareConfig, evaluation: LabelledRecordings, labels: list[str], out: Path) -> None:
    prompt = f"<imu>\n{cfg.instruction}"
    names, classify = [], []
    for i, (signal, label) in enumerate(zip(evaluation.signals, evaluation.labels)):
        path = f"eval/rec{i:04d}.npy"
        np.save(out / path, np.ascontiguousarray(signal.T))
        row = {"id": f"rec{i:04d}", "prompt": prompt, "media": {"imu": path}, "activity": label}
        names.append(dict(row, label=cfg.name(label)))
        classify.append(dict(row, label=cfg.caption.format(activity=cfg.phrase(label))))
    _write_text(out / "eval_names.jsonl", _jsonl(names))
    _write_text(out / "eval_classify.jsonl", _jsonl(classify))
    _write_text(out / "labels_names.txt", "".join(cfg.name(label) + "\n" for label in labels))
    _write_text(out / "labels_classify.txt",
                "".join(cfg.caption.format(activity=cfg.phrase(label)) + "\n" for label in labels))  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m anymal_imu.prepare", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", help="a YAML file of PrepareConfig fields")
    parser.add_argument("overrides", nargs="*", help="key=value (e.g. train=TRAIN.npz eval=TEST.npz)")
    args = parser.parse_args(argv)
    try:
        split = prepare(load_config(PrepareConfig, args.config, args.overrides, what="prepare config"))
    except AnyMALError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    trained, evaluated = len(split["train_recordings"]), split["eval_recordings"]
    print(f"{split['train_windows']} training windows from {trained} recordings, {evaluated} evaluation recordings "
          f"({split['eval']}) -> {split['config']['out']}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
