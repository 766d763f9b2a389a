"""The spread of `make demo` results over several runs (threads, seeds): per table row, the lowest and highest.

Usage: python bench/demo_spread.py RUN_DIR [RUN_DIR ...]   (each a `python -m anymal demo --out RUN_DIR` folder)
Prints a table and a JSON document; the README's demo numbers come from it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def spread(run_dirs: list[str]) -> dict:
    runs = {}
    for folder in run_dirs:
        results = json.loads((Path(folder) / "results.json").read_text())
        final = results["evaluations"]["stage 2"]
        runs[folder] = {
            "accuracy": {task: row["attribute_accuracy"] for task, row in final.items()},
            "frozen_llm_unchanged": results["frozen_llm_unchanged"],
            "total_seconds": results.get("total_seconds"),
        }
    tasks = sorted({task for run in runs.values() for task in run["accuracy"]})
    rows = {
        task: {
            "min": min(run["accuracy"][task] for run in runs.values()),
            "max": max(run["accuracy"][task] for run in runs.values()),
        }
        for task in tasks
    }
    return {"runs": runs, "rows": rows, "lowest": min(row["min"] for row in rows.values())}


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    report = spread(argv)
    print(f"{'task':20s} {'min %':>7s} {'max %':>7s}   over {len(report['runs'])} runs")
    for task, row in report["rows"].items():
        print(f"{task:20s} {100 * row['min']:7.1f} {100 * row['max']:7.1f}")
    frozen = all(run["frozen_llm_unchanged"] for run in report["runs"].values())
    print(f"lowest row: {100 * report['lowest']:.1f}%; frozen LM unchanged in every run: {frozen}")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
