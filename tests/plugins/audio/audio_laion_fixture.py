"""Golden LAION-CLAP fixtures: tiny HTSAT checkpoints written by laion_clap's own code, with its outputs.

The fixtures in ``fixtures/`` are checkpoints in LAION-CLAP's exact layout (``{"state_dict": {"module.audio_branch.*",
"module.audio_projection.*", ...}}``) made by laion_clap 1.1.7's ``HTSAT_Swin_Transformer`` with random weights,
plus, under ``"anymal_golden"``, what laion_clap's forward pass returns for the deterministic log-mel input of
``golden_mel``. The tests load them through anymal's converter and compare, so the parity check does not depend
on our own idea of LAION's layout. laion_clap itself is not a test dependency (it pins numpy<2 and needs librosa);
this script regenerates the fixtures from its sources:

    pip download laion_clap==1.1.7 torchlibrosa==0.1.0 --no-deps -d /tmp/lc
    for w in /tmp/lc/*.whl; do unzip -q -o "$w" -d /tmp/lc/src; done
    python tests/plugins/audio/audio_laion_fixture.py /tmp/lc/src/laion_clap/clap_module

Only the STFT/mel modules touch librosa, and the goldens start from log-mels (transformers computes those), so
librosa and h5py are replaced by small stand-ins while building the model.
"""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path

import numpy as np
import torch

FIXTURES = Path(__file__).resolve().parent / "fixtures"

# name -> (HTSAT geometry, mel input shape [batch, views, frames, mel_bins], which items are "longer")
VARIANTS = {
    "laion_htsat_tiny.pt": dict(
        spec_size=64, mel_bins=16, embed_dim=16, depths=[2, 2], num_heads=[2, 4], joint=24, fusion=False,
        mel_shape=(2, 1, 201, 16), longer=[False, False],
    ),
    "laion_htsat_tiny_fusion.pt": dict(
        spec_size=64, mel_bins=16, embed_dim=8, depths=[2, 2], num_heads=[1, 2], joint=16, fusion=True,
        mel_shape=(2, 4, 201, 16), longer=[True, False],
    ),
}  # fmt: skip


def golden_mel(shape: tuple[int, int, int, int]) -> torch.Tensor:
    """A deterministic, spectrogram-like log-mel batch (dB values around -40) from a closed-form expression."""
    b, c, t, f = (np.arange(n, dtype=np.float64) for n in shape)
    grid = (
        20.0 * np.sin(0.013 * t[None, None, :, None] * (f[None, None, None, :] + 1.0) + 0.7 * b[:, None, None, None])
        + 5.0 * np.cos(0.05 * f[None, None, None, :] * (c[None, :, None, None] + 1.0))
        - 40.0
    )
    return torch.from_numpy(grid.astype(np.float32))


def _stub_modules() -> None:
    """Stand-ins for librosa (window/mel filter construction only) and h5py (imported, unused)."""
    librosa = types.ModuleType("librosa")
    librosa.filters = types.SimpleNamespace(
        get_window=lambda window, n, fftbins=True: np.hanning(n + 1)[:-1],
        mel=lambda sr, n_fft, n_mels, fmin, fmax, **_: np.abs(
            np.random.default_rng(0).normal(size=(n_mels, n_fft // 2 + 1))
        ),
    )
    librosa.util = types.SimpleNamespace(pad_center=lambda data, size: np.pad(data, ((size - len(data)) // 2,) * 2))
    sys.modules.setdefault("librosa", librosa)
    sys.modules.setdefault("h5py", types.ModuleType("h5py"))


def _import_htsat(clap_module_dir: Path) -> types.ModuleType:
    package = types.ModuleType("laion_clap_module")
    package.__path__ = [str(clap_module_dir)]
    sys.modules["laion_clap_module"] = package
    return importlib.import_module("laion_clap_module.htsat")


def _perturb(module: torch.nn.Module, generator: torch.Generator) -> None:
    """Random weights everywhere (LayerNorm/BatchNorm affine and running stats included), so nothing is trivial."""
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if not tensor.is_floating_point() or "attn_mask" in name:
                continue
            noise = torch.randn(tensor.shape, generator=generator)
            if name.endswith("running_var"):
                tensor.copy_(0.5 + noise.abs())
            elif name.endswith("running_mean"):
                tensor.copy_(noise * 2.0)
            else:
                tensor.add_(0.05 * noise)


def build_variant(htsat: types.ModuleType, name: str, seed: int = 0) -> None:
    spec = VARIANTS[name]
    torch.manual_seed(seed)
    cfg = types.SimpleNamespace(
        mel_bins=spec["mel_bins"], window_size=64, hop_size=32, sample_rate=48000, fmin=50, fmax=14000, class_num=8
    )
    branch = htsat.HTSAT_Swin_Transformer(
        spec_size=spec["spec_size"], patch_size=4, patch_stride=(4, 4), num_classes=cfg.class_num,
        embed_dim=spec["embed_dim"], depths=spec["depths"], num_heads=spec["num_heads"], window_size=8, config=cfg,
        enable_fusion=spec["fusion"], fusion_type="aff_2d" if spec["fusion"] else "None",
    )  # fmt: skip
    hidden = spec["embed_dim"] * 2 ** (len(spec["depths"]) - 1)
    projection = torch.nn.Sequential(
        torch.nn.Linear(hidden, spec["joint"]), torch.nn.ReLU(), torch.nn.Linear(spec["joint"], spec["joint"])
    )
    generator = torch.Generator().manual_seed(seed + 1)
    _perturb(branch, generator)
    _perturb(projection, generator)
    branch.eval()
    projection.eval()

    mel = golden_mel(spec["mel_shape"])
    longer = torch.tensor(spec["longer"])
    with torch.no_grad():
        if spec["fusion"]:
            out = branch({"mel_fusion": mel, "longer": longer}, device="cpu")
        else:  # HTSAT's forward from the log-mel on (its STFT + mel steps are what transformers replaces)
            x = branch.bn0(mel.transpose(1, 3)).transpose(1, 3)
            out = branch.forward_features(branch.reshape_wav2img(x))
        projected = projection(out["embedding"])

    state = {f"module.audio_branch.{k}": v for k, v in branch.state_dict().items()}
    state.update({f"module.audio_projection.{k}": v for k, v in projection.state_dict().items()})
    state["module.logit_scale_a"] = torch.tensor(2.6592)  # a non-audio key, as in real checkpoints
    golden = {
        "embedding": out["embedding"],
        "projected": projected,
        "mel_shape": torch.tensor(spec["mel_shape"]),
        "longer": longer,
    }
    FIXTURES.mkdir(exist_ok=True)
    torch.save({"epoch": 1, "state_dict": state, "anymal_golden": golden}, FIXTURES / name)
    print(f"wrote {FIXTURES / name}: {sum(v.numel() for v in state.values())} values")


def main(clap_module_dir: str) -> None:
    sys.path.insert(0, str(Path(clap_module_dir).resolve().parents[1]))  # torchlibrosa unpacked next to laion_clap
    _stub_modules()
    htsat = _import_htsat(Path(clap_module_dir))
    for name in VARIANTS:
        build_variant(htsat, name)


if __name__ == "__main__":
    main(sys.argv[1])
