"""Atomic writes of files and folders: a reader sees the old version or the new one, never a half-written one.

Everything is written under a temporary sibling name, flushed to disk, then renamed into place. Replacing an
existing folder takes two renames (old out of the way, new in); a kill between them leaves the old version under
``.<name>.old-*``, and :func:`recover_dir` (called before every write and by checkpoint readers) puts it back.
One writer per target at a time: a write clears the temporaries that killed writes of the same target left.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def _fsync_path(path: Path) -> None:
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) if path.is_dir() else os.O_RDONLY
    try:
        fd = os.open(path, flags)
    except OSError:  # directories cannot be opened on some platforms; the data files were synced already
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_tree(folder: Path) -> None:
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            _fsync_path(path)
    _fsync_path(folder)


def _siblings(target: Path, kind: str) -> list[Path]:
    return sorted(target.parent.glob(f".{target.name}.{kind}-*"))


def recover_dir(target: str | os.PathLike) -> None:
    """Restores ``target`` from the version a killed replace moved aside, and removes leftover temporaries."""
    target = Path(target)
    if not target.parent.is_dir():
        return
    olds = _siblings(target, "old")
    if not target.exists() and olds:
        newest = max(olds, key=lambda p: p.stat().st_mtime)
        os.replace(newest, target)
        olds.remove(newest)
    if target.exists():
        for stale in olds:
            shutil.rmtree(stale, ignore_errors=True)
    for stale in _siblings(target, "tmp"):  # a write killed before its rename (one writer per target)
        shutil.rmtree(stale, ignore_errors=True)


def replace_dir(tmp: Path, target: Path) -> None:
    """Moves the finished folder ``tmp`` to ``target``, replacing an existing one only after ``tmp`` is on disk."""
    _fsync_tree(tmp)
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(target, old)
    os.replace(tmp, target)
    _fsync_path(target.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def atomic_dir(target: str | os.PathLike) -> Iterator[Path]:
    """Yields an empty temporary folder; on normal exit it atomically becomes ``target`` (else it is removed).

    ``with atomic_dir(path) as tmp: write files into tmp``.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    recover_dir(target)
    tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        yield tmp
        replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write_file(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Calls ``write(tmp_path)`` then renames the finished file onto ``path`` (one atomic rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        write(tmp)
        _fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def create_dir_once(target: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """``target`` if it exists, else ``write(tmp)`` into a temporary sibling renamed to ``target``.

    Safe for several processes creating the same folder at once (e.g. a cache of tiny models built by each rank):
    the first rename wins, the others discard their copy. Temporaries of other writers are left alone.
    """
    target = Path(target)
    if target.is_dir():
        return target
    tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir(parents=True)
    try:
        write(tmp)
        _fsync_tree(tmp)
        os.replace(tmp, target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not target.is_dir():
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
