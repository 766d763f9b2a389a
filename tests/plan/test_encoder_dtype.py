"""``encoder_dtype``: the frozen encoder of every first-party plugin in bfloat16 (or float16) gives the features
of its float32 self within a stated tolerance, and ``auto`` means bfloat16 on CUDA, float32 elsewhere.

Tolerance: relative L2 error of the features at most 2% and cosine similarity per feature vector at least 0.999
(bfloat16 keeps 8 mantissa bits, 0.4% per rounding; on the tiny towers the error measured 0.4-0.8%, cosine >=
0.99996).
"""

from __future__ import annotations

import copy

import pytest
import torch

from anymal.errors import ConfigError
from anymal.llm import freeze
from anymal.modeling import move_to
from anymal.plugin import encoder_dtype_for, place_frozen_encoder
from anymal.registry import get_plugin

REL_TOL = 0.02
MIN_COSINE = 0.999


def _features(plugin, encoder, batch):
    dtype = next(t for t in encoder.parameters() if t.is_floating_point()).dtype
    with torch.no_grad():
        out = plugin.encode(encoder, move_to(batch, torch.device("cpu"), dtype))
    return out if isinstance(out, dict) else {"features": out}


@pytest.mark.parametrize("name", ["image", "audio", "imu", "video"])
@pytest.mark.parametrize("dtype", ["bfloat16"])
def test_half_precision_encoder_features_match_float32(name, dtype):
    cls = get_plugin(name)
    config = cls.tiny_config()
    plugin = cls(config)
    encoder = freeze(plugin.build_encoder())
    half = place_frozen_encoder(
        copy.deepcopy(encoder), type(config)(**{**config.__dict__, "encoder_dtype": dtype}), "cpu"
    )
    assert {p.dtype for p in half.parameters() if p.is_floating_point()} == {getattr(torch, dtype)}
    batch = plugin.collate([plugin.preprocess(raw) for raw in plugin.example_inputs()])
    ref, got = _features(plugin, encoder, batch), _features(plugin, half, batch)
    for key, expected in ref.items():
        actual = got[key].float()
        rel = (actual - expected).norm() / expected.norm()
        cos = torch.nn.functional.cosine_similarity(actual.flatten(1), expected.flatten(1), dim=-1).min()
        assert rel <= REL_TOL and cos >= MIN_COSINE, f"{name}.{key}: relative error {rel:.4f}, min cosine {cos:.5f}"


def test_auto_is_bfloat16_on_cuda_and_float32_elsewhere():
    assert encoder_dtype_for("auto", "cuda") == torch.bfloat16
    assert encoder_dtype_for("auto", torch.device("cuda", 0)) == torch.bfloat16
    assert encoder_dtype_for("auto", "cpu") == torch.float32
    assert encoder_dtype_for("float16", "cpu") == torch.float16


def test_plugin_configs_take_and_check_encoder_dtype():
    for name in ("image", "audio", "imu", "video"):
        cls = get_plugin(name).config_class
        assert cls().encoder_dtype == "auto"
        assert cls(encoder_dtype="float32").encoder_dtype == "float32"
        with pytest.raises(ConfigError, match="encoder_dtype"):
            cls(encoder_dtype="int8")


def test_planner_counts_the_encoder_in_its_dtype():
    from anymal.plan import estimate, plan_config_from_dict

    def enc_bytes(dtype):
        cfg = plan_config_from_dict(
            {
                "llm": {"preset": "llama2-7b"},
                "quantization": "4bit",
                "modalities": {"image": {"encoder_params": 1_000_000, "encoder_dtype": dtype}},
            }
        )
        return estimate(cfg).component("encoder weights")

    assert enc_bytes("float32") == 4_000_000 and enc_bytes("bfloat16") == 2_000_000


def test_the_fingerprint_as_built_is_kept_through_the_cast():
    from anymal.fingerprint import fingerprint_module
    from anymal.plugin import ENCODER_FINGERPRINT_ATTR
    from anymal.testing import ToyPlugin, ToyPluginConfig

    plugin = ToyPlugin(ToyPluginConfig(encoder_dtype="bfloat16"))
    encoder = freeze(plugin.build_encoder())
    as_built = fingerprint_module(encoder)
    placed = place_frozen_encoder(encoder, plugin.config, "cpu")
    assert next(placed.parameters()).dtype == torch.bfloat16
    # the cast weights fingerprint as the weights as built: a checkpoint from a bf16 (CUDA) encoder loads on CPU
    assert getattr(placed, ENCODER_FINGERPRINT_ATTR) == as_built == fingerprint_module(placed)
