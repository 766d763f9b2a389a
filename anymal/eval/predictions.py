"""The per-item predictions file: JSONL, one line per finished item, appended and flushed batch by batch, so a
killed run loses at most the batch in flight and a rerun skips what is there.

Line 1 is a header naming the task, data, model and every setting that changes a prediction; a rerun with other
settings is refused (write elsewhere with ``--out``, or delete the file) instead of mixing two runs' answers. A
last line cut short by a kill is dropped on reopening.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from anymal.errors import ConfigError, DataError

HEADER_KEY = "anymal_eval_predictions"


class PredictionStore:
    """Finished items' records by index, read from ``path`` (if it exists) and appended to as items finish."""

    def __init__(self, path: str | os.PathLike, header: Mapping[str, Any]) -> None:
        self.path = Path(path)
        self.header = {HEADER_KEY: 1, **header}
        self.records: dict[int, dict[str, Any]] = {}
        if self.path.exists() and self.path.stat().st_size > 0:
            self._load()
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("w", encoding="utf-8") as f:
                f.write(json.dumps(self.header, sort_keys=True) + "\n")
                f.flush()
                os.fsync(f.fileno())

    def _load(self) -> None:
        raw = self.path.read_bytes()
        complete = raw[: raw.rfind(b"\n") + 1]  # a last line without its newline was cut short by a kill
        if len(complete) < len(raw):
            with self.path.open("r+b") as f:
                f.truncate(len(complete))
        parsed: list[dict[str, Any]] = []
        for i, line in enumerate(complete.split(b"\n")[:-1]):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except ValueError as exc:
                raise DataError(f"{self.path}:{i + 1}: not a prediction record ({exc})") from None
            if not isinstance(value, dict) or (parsed and "index" not in value):
                raise DataError(f"{self.path}:{i + 1}: not a prediction record (expected an object with 'index')")
            parsed.append(value)
        if not parsed or HEADER_KEY not in parsed[0]:
            raise DataError(f"{self.path} is not an anymal predictions file (no header line); move it or pick --out")
        old = parsed[0]
        if old != json.loads(json.dumps(self.header, sort_keys=True)):
            keys = sorted(k for k in set(old) | set(self.header) if old.get(k) != self.header.get(k))
            diffs = "; ".join(f"{k}: {old.get(k)!r} then, {self.header.get(k)!r} now" for k in keys)
            raise ConfigError(
                f"{self.path} holds predictions of another evaluation ({diffs}); delete it to start over, or write "
                "this one elsewhere (--out)"
            )
        for record in parsed[1:]:
            self.records[int(record["index"])] = record

    def check_ids(self, ids: Sequence[str]) -> None:
        """Refuses records whose item id differs from the data's (the data file changed under a resumed run)."""
        for index, record in self.records.items():
            if index >= len(ids) or record.get("id") != ids[index]:
                where = f"item {index} is {ids[index]!r} in the data" if index < len(ids) else "no such item"
                raise DataError(
                    f"{self.path}: record {index} is for id {record.get('id')!r} but {where}; the data changed since "
                    "these predictions were written: delete the file to start over"
                )

    def append(self, records: Sequence[dict[str, Any]]) -> None:
        """Writes ``records`` and flushes them to disk."""
        with self.path.open("a", encoding="utf-8") as f:
            for record in records:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
                self.records[int(record["index"])] = record
            f.flush()
            os.fsync(f.fileno())
