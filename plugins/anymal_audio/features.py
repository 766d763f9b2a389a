"""CLAP's log-mel front end: transformers' ``ClapFeatureExtractor``, made per-clip and reproducible.

The extractor implements LAION-CLAP's input pipeline (HTK mels + 4-view "fusion" for fusion checkpoints, Slaney
mels + one random crop, "rand_trunc", for the others; "repeatpad" for short clips). Two things are adjusted here:

* Crop positions of long clips come from NumPy's global RNG; with ``seed`` set they are drawn under a fixed seed
  (and the global RNG state is restored), so the same clip always gives the same features. This briefly
  reseeds NumPy's global RNG, so threads sharing it should not preprocess concurrently (DataLoader workers are
  processes, so they are unaffected).
* For a batch with no long clip, the extractor marks one clip "longer" at random (a training trick of LAION's);
  that would make a clip's features depend on its batch, so ``is_longer`` is recomputed per clip here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch
from transformers import ClapFeatureExtractor

# The extractor's fusion path shrinks the whole-clip mel to 64 bins (hard-coded), so fusion needs 64 mel bins.
FUSION_MEL_BINS = 64


@contextlib.contextmanager
def _numpy_seed(seed: int | None) -> Iterator[None]:
    """Runs the block under ``np.random.seed(seed)`` and restores the global state afterwards (no-op for None)."""
    if seed is None:
        yield
        return
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


class ClapFrontEnd:
    """Turns one mono float32 waveform at ``sampling_rate`` into CLAP encoder inputs.

    Args:
        num_mel_bins: mel bands (the encoder's ``num_mel_bins``).
        sampling_rate: rate of the waveforms passed in, Hz.
        max_length: clip length in samples; longer clips are truncated (``truncation``), shorter ones padded.
        truncation: ``"fusion"`` or ``"rand_trunc"``.
        padding: ``"repeatpad"``, ``"repeat"`` or ``"pad"``.
        seed: seed for crop positions, or ``None`` for fresh random crops.
        hop_length, fft_window_size, frequency_min, frequency_max: STFT and mel filterbank settings.
    """

    def __init__(
        self,
        num_mel_bins: int,
        sampling_rate: int,
        max_length: int,
        truncation: str,
        padding: str,
        seed: int | None,
        hop_length: int = 480,
        fft_window_size: int = 1024,
        frequency_min: float = 50.0,
        frequency_max: float = 14000.0,
    ) -> None:
        self.extractor = ClapFeatureExtractor(
            feature_size=num_mel_bins,
            sampling_rate=sampling_rate,
            hop_length=hop_length,
            fft_window_size=fft_window_size,
            frequency_min=frequency_min,
            frequency_max=frequency_max,
            truncation=truncation,
            padding=padding,
        )
        self.max_length = max_length
        self.truncation = truncation
        self.seed = seed

    @property
    def num_frames(self) -> int:
        """Mel frames of one clip (the STFT is centred, hence the +1)."""
        return self.max_length // self.extractor.hop_length + 1

    @property
    def num_channels(self) -> int:
        """Spectrogram views per clip: 4 for fusion (global view + 3 crops), else 1."""
        return 4 if self.truncation == "fusion" else 1

    def is_longer(self, num_samples: int) -> bool:
        """Whether the extractor crops (and for fusion, fuses) a clip of ``num_samples``, as LAION-CLAP decides."""
        if num_samples <= self.max_length:
            return False
        if self.truncation == "fusion":  # a clip with as many frames as the window is stacked, not fused
            return num_samples // self.extractor.hop_length != self.max_length // self.extractor.hop_length
        return True

    def __call__(self, waveform: np.ndarray) -> dict[str, torch.Tensor]:
        """``input_features`` float32 ``[channels, frames, mel_bins]`` and ``is_longer`` bool ``[1]``."""
        with _numpy_seed(self.seed):
            out = self.extractor(
                waveform,
                sampling_rate=self.extractor.sampling_rate,
                max_length=self.max_length,
                return_tensors="np",
            )
        features = torch.from_numpy(np.ascontiguousarray(out["input_features"][0], dtype=np.float32))
        longer = torch.tensor([self.is_longer(waveform.shape[0])])
        return {"input_features": features, "is_longer": longer}
