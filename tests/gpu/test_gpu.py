"""CUDA checks (``pytest -m gpu``; skipped without a CUDA device): 4-bit loading, batched == single generation,
a training step, the memory planner against ``torch.cuda.max_memory_reserved``, and SAM's frozen parts in bf16
under a training ``[SEG]`` head (``frozen_dtype: auto``).

Models are random LLaMAs saved to temporary folders and the dependency-free ``toy`` plugin of ``anymal.testing``,
so the checks need no network, no weights and no open_clip. The bigger setup of the planner check (a 1B-shaped
LLaMA in 4-bit) runs in seconds on one GPU.
"""

from __future__ import annotations

import json

import pytest
import torch

from anymal.testing import ToyPluginConfig, tiny_anymal, tiny_llm_folder, write_toy_input

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]
GIB = 2**30


@pytest.fixture(scope="module")
def model_4bit():
    return tiny_anymal(plugins=("toy",), quantization="4bit")


def test_4bit_llm_loads_onto_the_gpu(model_4bit):
    import bitsandbytes as bnb

    assert model_4bit.device.type == "cuda"
    layers = [m for m in model_4bit.llm.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert layers and all(m.weight.device.type == "cuda" for m in layers)
    assert all(p.device.type == "cuda" for p in model_4bit.projectors.parameters())


def test_batched_generation_equals_one_by_one_on_cuda(model_4bit):
    gen = torch.Generator().manual_seed(0)
    vectors = [torch.randn(8, generator=gen) for _ in range(3)]
    prompts = ["<toy> What is it?", "<toy> Describe this signal in a few words.", "<toy> Say it."]
    kw = dict(max_new_tokens=12, do_sample=False)
    batched = model_4bit.generate(prompts, toy=vectors, **kw)
    singles = [model_4bit.generate(p, toy=v, **kw) for p, v in zip(prompts, vectors)]
    assert batched.texts == [s.texts[0] for s in singles]


def _pairs(tmp_path, rows: int = 8):
    gen = torch.Generator().manual_seed(1)
    lines = []
    for i in range(rows):
        path = write_toy_input(tmp_path / f"{i}.txt", torch.randn(8, generator=gen))
        lines.append(json.dumps({"toy": str(path), "caption": "a short signal " * (3 + i % 4)}))
    data = tmp_path / "pairs.jsonl"
    data.write_text("\n".join(lines) + "\n")
    return data


def _train_config(tmp_path, llm, **extra):
    from anymal.config import AnyMALConfig, LLMConfig, QuantizationConfig, config_to_dict
    from anymal.train.config import DataSpec, TrainConfig

    quant = QuantizationConfig(mode="4bit", quant_type="nf4", double_quant=True, compute_dtype="bfloat16")
    model = AnyMALConfig(llm=LLMConfig(name_or_path=str(llm), dtype="bfloat16", quantization=quant),
                         modalities={"toy": ToyPluginConfig(num_tokens=16)})  # fmt: skip
    data = [DataSpec(kind="pairs", path=str(_pairs(tmp_path)), modality="toy", media_key="toy")]
    return TrainConfig(
        model=config_to_dict(model), stage="align", data=data, output_dir=str(tmp_path / "run"), batch_size=4,
        lr=1e-3, mixed_precision="bf16", log_every=1, on_error="raise", **extra,
    )  # fmt: skip


def test_training_steps_run_on_cuda_in_bf16(tmp_path):
    from anymal.train.loop import train

    result = train(_train_config(tmp_path, tiny_llm_folder(), max_steps=6))
    assert result.steps == 6 and bool(torch.isfinite(torch.tensor(result.losses)).all())


def test_planner_matches_max_memory_reserved(tmp_path):
    """A 1B-shaped LLaMA in 4-bit, batch 4: planned peak minus the CUDA context vs torch's max reserved."""
    from anymal.plan import estimate
    from anymal.plan.from_train import plan_from_train
    from anymal.train.loop import train

    llm = tiny_llm_folder(hidden_size=2048, intermediate_size=5632, num_hidden_layers=4, num_attention_heads=16,
                          num_key_value_heads=16, vocab_size=32000, max_position_embeddings=2048)  # fmt: skip
    config = _train_config(tmp_path, llm, max_steps=3)
    text_tokens = _longest_text_row(config, llm)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_reserved()
    train(config)
    reserved = (torch.cuda.max_memory_reserved() - before) / GIB
    plan, _ = plan_from_train(config, plan_overrides={"text_tokens": text_tokens, "device": "cuda"})
    est = estimate(plan)
    planned = (est.peak_bytes - est.component("cuda context")) / GIB
    assert planned == pytest.approx(reserved, rel=0.15), (planned, reserved)


def _longest_text_row(config, llm) -> int:
    from transformers import AutoTokenizer

    from anymal.processing import SENTINEL_BASE, PromptEncoder
    from anymal.train.dataset import EpochExamples

    encoder = PromptEncoder(AutoTokenizer.from_pretrained(str(llm)), ["toy"])
    longest = 0
    for epoch in range(2):
        for e in EpochExamples(config.data, ["toy"], "raise", config.seed)(epoch):
            ids = encoder.encode_conversation(e.turns, {"toy": 1}, chat=False, where="")[0]
            longest = max(longest, sum(1 for t in ids if t > SENTINEL_BASE))
    return longest


def _seg_rows(tmp_path, rows: int = 4):
    from PIL import Image

    lines = []
    for i in range(rows):
        pixels = torch.randint(0, 256, (48, 64, 3), generator=torch.Generator().manual_seed(i), dtype=torch.uint8)
        Image.fromarray(pixels.numpy()).save(tmp_path / f"p{i}.png")
        mask = [[8.0 + i, 8.0, 40.0, 8.0, 40.0, 30.0, 8.0 + i, 30.0]]  # one COCO polygon per [SEG]
        lines.append(json.dumps({"id": str(i), "media": {"image": str(tmp_path / f"p{i}.png")},
                                 "conversations": [{"role": "user", "content": "<image>\nSegment the box."},
                                                   {"role": "assistant", "content": "It is [SEG]."}],
                                 "targets": {"seg": [mask]}}))  # fmt: skip
    data = tmp_path / "seg.jsonl"
    data.write_text("\n".join(lines) + "\n")
    return data


def test_sam_sits_in_bf16_on_cuda_and_the_seg_head_trains(tmp_path):
    """``frozen_dtype: auto`` puts SAM's frozen parts in bf16 on CUDA; a 4-bit model with the [SEG] head trains."""
    from anymal.config import config_to_dict
    from anymal.registry import get_output_plugin, get_plugin
    from anymal.train.config import DataSpec, TrainConfig
    from anymal.train.loop import train

    model = tiny_anymal(plugins=("image",), quantization="4bit", outputs=("seg",))
    expected = torch.bfloat16 if model.device.type == "cuda" else torch.float32
    assert {p.dtype for p in model.output_frozen["seg"].parameters()} == {expected}
    config = model.config
    config.modalities = {"image": get_plugin("image").tiny_config()}
    config.outputs = {"seg": get_output_plugin("seg").tiny_config()}
    data = [DataSpec(kind="conversations", path=str(_seg_rows(tmp_path)))]
    run = TrainConfig(
        model=config_to_dict(config), stage="instruct", data=data, output_dir=str(tmp_path / "run"), batch_size=2,
        lr=1e-3, mixed_precision="bf16" if model.device.type == "cuda" else "no", log_every=1, on_error="raise",
        max_steps=4,
    )  # fmt: skip
    result = train(run)
    assert result.steps == 4 and bool(torch.isfinite(torch.tensor(result.losses)).all())
