"""Labelled IMU recording sets (activity-recognition files such as the UEA archive's BasicMotions) and the
shifted windows a recipe cuts from them.

Two file forms are read:

* ``.npz`` with ``X`` (``[N, 6, T]``, channel-first as the UEA archive stores it), ``y`` (N labels) and the rate
  as ``sample_rate_hz`` (or given by the caller);
* ``.ts``, the sktime/UEA text format: a ``@``-header (``@dimensions``, ``@classLabel true ...``) then ``@data``,
  one recording per line, channels separated by ``:``, samples by ``,``, the class label last. It states no rate;
  the caller gives it.

Windows: a recording of ``T`` samples gives ``crops`` windows of ``window_samples`` at evenly spaced offsets from
its start to its end (one window: the centre, where the plugin's own centre crop would take it). Several shifted
windows of one recording are augmentation for training; they are never split between training and evaluation,
since they overlap.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from anymal.errors import DataError
from anymal_imu.config import NUM_CHANNELS


@dataclass(frozen=True)
class LabelledRecordings:
    """``signals`` ``[N, 6, T]`` float32 (channel-first), their ``labels`` and sample ``rate`` in Hz."""

    signals: np.ndarray
    labels: list[str]
    rate: float
    source: str

    def subset(self, indices: list[int]) -> LabelledRecordings:
        """The recordings at ``indices``, in that order."""
        return LabelledRecordings(self.signals[indices], [self.labels[i] for i in indices], self.rate, self.source)


def read_labelled(path: str | Path, sample_rate: float | None = None) -> LabelledRecordings:
    """Reads a labelled ``.npz`` or ``.ts`` file; ``sample_rate`` (Hz) overrides or supplies the file's rate."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file (expected a labelled .npz or .ts recording set)")
    if path.suffix == ".npz":
        signals, labels, rate = _read_npz(path)
    elif path.suffix == ".ts":
        signals, labels, rate = _read_ts(path)
    else:
        raise DataError(f"{path}: expected a .npz (X, y, sample_rate_hz) or a .ts (sktime/UEA) file")
    rate = sample_rate if sample_rate is not None else rate
    if rate is None or not np.isfinite(rate) or rate <= 0:
        raise DataError(f"{path}: no usable sample rate ({rate!r}); give one (sample_rate in Hz)")
    if signals.ndim != 3 or signals.shape[1] != NUM_CHANNELS:
        raise DataError(f"{path}: expected recordings as [N, {NUM_CHANNELS}, T] (channel-first), got {signals.shape}")
    if len(labels) != len(signals) or not len(labels):
        raise DataError(f"{path}: {len(signals)} recordings but {len(labels)} labels")
    if not np.isfinite(signals).all():
        raise DataError(f"{path}: the recordings hold NaN or infinite samples")
    return LabelledRecordings(signals.astype(np.float32), labels, float(rate), str(path))


def _read_npz(path: Path) -> tuple[np.ndarray, list[str], float | None]:
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [key for key in ("X", "y") if key not in data.files]
            if missing:
                raise DataError(f"{path}: no {' or '.join(missing)} array (found {', '.join(data.files)})")
            rate = float(np.asarray(data["sample_rate_hz"])) if "sample_rate_hz" in data.files else None
            return np.asarray(data["X"]), [str(label) for label in data["y"]], rate
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable .npz without pickles ({exc})") from None


def _read_ts(path: Path) -> tuple[np.ndarray, list[str], None]:
    recordings: list[np.ndarray] = []
    labels: list[str] = []
    in_data = False
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            in_data = line.lower() == "@data"
            continue
        *channels, label = line.split(":")
        try:
            signal = np.array([[float(v) for v in channel.split(",")] for channel in channels], np.float32)
        except ValueError:
            raise DataError(f"{path}:{number}: expected ':'-separated channels of ','-separated numbers") from None
        if recordings and signal.shape != recordings[0].shape:
            raise DataError(f"{path}:{number}: shape {signal.shape} differs from the first recording's "
                            f"{recordings[0].shape} (unequal lengths are not supported)")  # fmt: skip
        recordings.append(signal)
        labels.append(label.strip())
    if not recordings:
        raise DataError(f"{path}: no recordings after an @data line")
    return np.stack(recordings), labels, None


def window_offsets(length: int, window_samples: int, crops: int) -> list[int]:
    """``crops`` start offsets of ``window_samples``-long windows spread evenly over ``length`` samples (one crop:
    the centre)."""
    if window_samples > length:
        raise DataError(f"window_samples={window_samples} is longer than the recordings ({length} samples)")
    if crops < 1:
        raise DataError(f"crops={crops}: expected at least 1")
    if crops == 1:
        return [(length - window_samples) // 2]
    return sorted({round(float(o)) for o in np.linspace(0, length - window_samples, crops)})


def shifted_windows(recordings: LabelledRecordings, window_samples: int, crops: int) -> LabelledRecordings:
    """Each recording cut into ``crops`` shifted windows (recording by recording, so a recording's windows stay
    together)."""
    offsets = window_offsets(recordings.signals.shape[-1], window_samples, crops)
    signals = np.stack([x[:, o : o + window_samples] for x in recordings.signals for o in offsets])
    labels = [label for label in recordings.labels for _ in offsets]
    return LabelledRecordings(signals, labels, recordings.rate, recordings.source)


def holdout_split(labels: list[str], per_class: int, seed: int = 0) -> tuple[list[int], list[int]]:
    """A by-recording split: ``per_class`` recordings of each label (seeded choice) held out, the rest kept.

    Returns ``(kept, held_out)`` indices, each in file order.
    """
    rng = np.random.default_rng(seed)
    held: list[int] = []
    for label in sorted(set(labels)):
        members = [i for i, other in enumerate(labels) if other == label]
        if per_class >= len(members):
            raise DataError(f"holding out {per_class} recordings of {label!r} would leave none of its "
                            f"{len(members)} to train on")  # fmt: skip
        held += [int(i) for i in rng.permutation(members)[:per_class]]
    kept = [i for i in range(len(labels)) if i not in set(held)]
    return kept, sorted(held)
