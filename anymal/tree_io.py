"""Nested Python state (optimiser, scheduler, RNG) saved as safetensors + JSON: nothing is ever unpickled.

``torch.save``/``torch.load`` pickle, and unpickling a file from a run folder can run any code in it. This module
splits a tree of dicts, lists, tuples, numbers, strings, tensors and NumPy arrays into a JSON skeleton and one
safetensors file of its arrays, and rebuilds it exactly (dtypes, shapes, tuple-ness, non-string dict keys).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from anymal.errors import CheckpointError

_TENSOR, _ARRAY, _TUPLE, _ITEMS, _FLOAT = "__tensor__", "__ndarray__", "__tuple__", "__items__", "__float__"


def _encode(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = value.detach().cpu().clone()  # a copy: safetensors refuses tensors that share memory
        return {_TENSOR: key}
    if isinstance(value, np.ndarray):
        key = f"t{len(tensors)}"
        tensors[key] = torch.from_numpy(np.ascontiguousarray(value))
        return {_ARRAY: key}
    if isinstance(value, np.generic):
        return _encode(value.item(), tensors)
    if isinstance(value, float) and not math.isfinite(value):
        return {_FLOAT: repr(value)}  # JSON has no inf/nan
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, tuple):
        return {_TUPLE: [_encode(v, tensors) for v in value]}
    if isinstance(value, list):
        return [_encode(v, tensors) for v in value]
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in value):
            return {k: _encode(v, tensors) for k, v in value.items()}
        return {_ITEMS: [[_encode(k, tensors), _encode(v, tensors)] for k, v in value.items()]}
    raise TypeError(f"cannot store a {type(value).__name__} without pickle")


def _decode(node: Any, tensors: dict[str, torch.Tensor], where: str) -> Any:
    if isinstance(node, list):
        return [_decode(v, tensors, where) for v in node]
    if not isinstance(node, dict):
        return node
    if _TENSOR in node or _ARRAY in node:
        key = node.get(_TENSOR, node.get(_ARRAY))
        if key not in tensors:
            raise CheckpointError(f"{where}: refers to array {key!r}, which the .safetensors file does not hold")
        return tensors[key] if _TENSOR in node else tensors[key].numpy()
    if _FLOAT in node:
        return float(node[_FLOAT])
    if _TUPLE in node:
        return tuple(_decode(v, tensors, where) for v in node[_TUPLE])
    if _ITEMS in node:
        return {_hashable(_decode(k, tensors, where)): _decode(v, tensors, where) for k, v in node[_ITEMS]}
    return {k: _decode(v, tensors, where) for k, v in node.items()}


def _hashable(key: Any) -> Any:
    return tuple(_hashable(k) for k in key) if isinstance(key, (list, tuple)) else key


def save_tree(tree: Any, folder: str | os.PathLike, name: str) -> None:
    """Writes ``name.json`` (the structure) and ``name.safetensors`` (the arrays) into ``folder``."""
    folder = Path(folder)
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _encode(tree, tensors)
    save_file(tensors, str(folder / f"{name}.safetensors"))
    (folder / f"{name}.json").write_text(json.dumps(skeleton) + "\n")


def load_tree(folder: str | os.PathLike, name: str) -> Any:
    """Reads what :func:`save_tree` wrote; a missing or damaged file is a CheckpointError naming it."""
    folder = Path(folder)
    skeleton_path, tensors_path = folder / f"{name}.json", folder / f"{name}.safetensors"
    try:
        skeleton = json.loads(skeleton_path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{skeleton_path}: missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{skeleton_path}: unreadable ({exc})") from None
    try:
        tensors = load_file(str(tensors_path))
    except FileNotFoundError:
        raise CheckpointError(f"{tensors_path}: missing") from None
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{tensors_path}: corrupt safetensors file ({exc})") from None
    return _decode(skeleton, tensors, str(skeleton_path))
