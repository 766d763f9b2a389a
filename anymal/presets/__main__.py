"""``python -m anymal.presets [NAME[:SIZE] ...] [--write FOLDER] [--json]``: parameter counts of the presets at real
size (built on the meta device) beside their papers' numbers; ``--write`` writes each preset's training config."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from anymal.errors import AnyMALError
from anymal.presets.build import build
from anymal.presets.catalog import SIZES


def _selected(names: list[str]) -> list[tuple[str, str]]:
    if not names:
        return [(name, size) for name, sizes in SIZES.items() for size in sizes]
    out = []
    for item in names:
        name, _, size = item.partition(":")
        out += [(name, size)] if size else [(name, s) for s in SIZES.get(name, ("?",))]
    return out


def _row(key: str, ours: int | None, paper: int | None = None) -> str:
    ours_text = f"{ours:>16,d}" if ours is not None else f"{'-':>16}"
    if paper is None:
        return f"  {key:38s} {ours_text}"
    ratio = f"{(ours or 0) / paper:7.3f}"
    return f"  {key:38s} {ours_text}   paper {paper:>16,d}   ours/paper {ratio}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m anymal.presets", description=__doc__)
    parser.add_argument("presets", nargs="*", help="NAME or NAME:SIZE (default: all at every real size)")
    parser.add_argument("--write", metavar="FOLDER", help="write <name>_<size>.yaml training configs there")
    parser.add_argument("--json", action="store_true", help="print the counts as JSON")
    args = parser.parse_args(argv)
    report = {}
    try:
        for name, size in _selected(args.presets):
            preset = build(name, size)
            if args.write:
                folder = Path(args.write)
                folder.mkdir(parents=True, exist_ok=True)
                (folder / f"{name}_{size}.yaml").write_text(preset.to_yaml())
                continue
            counts = preset.count_parameters()
            report[f"{name}:{size}"] = {"counts": counts, "paper": preset.paper_counts}
            if args.json:
                continue
            print(f"{name} {size} ({preset.source})")
            shown = [k for k in counts if not k.endswith(":weights") and k.count(".") <= 1]
            for key in shown:
                print(_row(key, counts[key], preset.paper_counts.get(key)))
            for key, paper in preset.paper_counts.items():
                if key not in shown:
                    print(_row(key, counts.get(key), paper))
            for note in preset.notes:
                print(f"  note: {note}")
    except AnyMALError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
