"""What the demo shows at the end: the accuracy table, example generations, the loss curves and the numbers file."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

CHECK, CROSS = "✓", "✗"


def _pct(value: float | None) -> str:
    return "    -" if value is None else f"{100 * value:5.1f}"


def table_rows(evaluations: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per task and metric: chance and the value at each evaluation point (``None`` if not measured)."""
    points = list(evaluations)
    tasks = list(dict.fromkeys(task for ev in evaluations.values() for task in ev["metrics"]))
    rows = []
    for task in tasks:
        first = next(ev["metrics"][task] for ev in evaluations.values() if task in ev["metrics"])
        metrics = [("attributes", "attribute_accuracy", "chance_attribute_accuracy")]
        if abs(first["chance_exact_match"] - first["chance_attribute_accuracy"]) > 1e-9:  # several attributes asked
            metrics.append(("exact match", "exact_match", "chance_exact_match"))
        for label, key, chance_key in metrics:
            values = {p: evaluations[p]["metrics"].get(task, {}).get(key) for p in points}
            rows.append({"task": task, "metric": label, "n": first["n"], "chance": first[chance_key], **values})
    return rows


def format_table(evaluations: dict[str, dict[str, Any]]) -> str:
    """The per-modality accuracy table (percent), chance level beside the measured values."""
    points = list(evaluations)
    rows = table_rows(evaluations)
    widths = [max(len(p), 6) for p in points]
    header = f"{'task':20s} {'metric':12s} {'n':>4s} {'chance':>7s} " + " ".join(
        f"{p:>{w}s}" for p, w in zip(points, widths)
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        values = " ".join(f"{_pct(row[p]):>{w}s}" for p, w in zip(points, widths))
        lines.append(f"{row['task']:20s} {row['metric']:12s} {row['n']:4d} {_pct(row['chance']):>7s} {values}")
    return "\n".join(lines)


def format_examples(generations: list[dict[str, Any]], per_task: int = 2, width: int = 118) -> str:
    """A few held-out generations per task, side by side with a correct reply and a mark per asked attribute."""
    shown: dict[str, int] = {}
    lines = []
    for gen in generations:
        if shown.get(gen["task"], 0) >= per_task:
            continue
        shown[gen["task"]] = shown.get(gen["task"], 0) + 1
        files = ", ".join(Path(p).name for paths in gen["media"].values() for p in paths)
        marks = " ".join(f"{k.split('.', 1)[1]}{CHECK if ok else CROSS}" for k, ok in gen["correct"].items())
        prompt = gen["prompt"].replace("\n", " ")
        lines.append(f"[{gen['task']}] {files}: {prompt}")
        lines.append(textwrap.shorten(f"    model: {gen['generated']!r}   ({marks})", width))
        lines.append(textwrap.shorten(f"    truth: {gen['reference']!r}", width))
    return "\n".join(lines)


def plot_losses(curves: dict[str, list[float]], path: Path, title: str = "anymal demo: training losses") -> Path:
    """Writes a PNG with one panel per group of curves: LM pretraining, encoder pretraining, alignment, instruction."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = {
        "language model (text only)": {k: v for k, v in curves.items() if k == "language_model"},
        "encoders (contrastive)": {k: v for k, v in curves.items() if k in ("vision_encoder", "imu_encoder")},
        "stage 1: alignment (projectors only)": {k: v for k, v in curves.items() if k.startswith("align_")},
        "stage 2: instructions (projectors + LoRA)": {k: v for k, v in curves.items() if k == "instruct"},
    }
    groups = {name: group for name, group in groups.items() if group}
    fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 3.6), squeeze=False)
    for ax, (name, group) in zip(axes[0], groups.items()):
        for label, losses in group.items():
            ax.plot(range(1, len(losses) + 1), losses, label=label.removeprefix("align_"), linewidth=1)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.set_yscale("log")
        if len(group) > 1:
            ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_json(data: dict[str, Any], path: Path) -> Path:
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path


def write_generations(evaluations: dict[str, dict[str, Any]], folder: Path) -> list[Path]:
    """One JSONL per evaluation point with every prompt, generation, reference and per-attribute verdict."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for point, ev in evaluations.items():
        path = folder / f"generations_{point.replace(' ', '_')}.jsonl"
        path.write_text("".join(json.dumps(g) + "\n" for g in ev["generations"]))
        paths.append(path)
    return paths
