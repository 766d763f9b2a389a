"""The ``seg`` output plugin on a tiny model: SAM by path, mask labels, losses where labels exist, cached image
embeddings, masks from ``generate`` in the photo's pixels, and the checkpoint round trip."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import LogitsProcessor, LogitsProcessorList

from anymal import AnyMAL, AnyMALConfig
from anymal.config import LLMConfig
from anymal.errors import ConfigError, DataError, InputError
from anymal.fingerprint import fingerprint_module
from anymal.output_plugin import RowInputs
from anymal.testing import tiny_llm_folder
from anymal_box import PixelFrame, encode_mask
from anymal_image import ImagePlugin
from anymal_seg import Masks, SegConfig, SegPlugin, load_sam, tiny_sam_config


def tiny_model(**seg: object) -> AnyMAL:
    config = AnyMALConfig(
        llm=LLMConfig(name_or_path=str(tiny_llm_folder())),
        modalities={"image": ImagePlugin.tiny_config()},
        outputs={"seg": SegConfig(sam_config=tiny_sam_config(), projection_dim=16, **seg)},
    )
    return AnyMAL(config)


def photo(height: int = 48, width: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


class ForceTokens(LogitsProcessor):
    """Greedy decoding that must emit ``ids`` first (for tests that need a trigger token in the answer)."""

    def __init__(self, ids: list[int]) -> None:
        self.ids, self.start = ids, None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.start is None:  # the first call sees the prompt
            self.start = input_ids.shape[1]
        step = input_ids.shape[1] - self.start
        if step < len(self.ids):
            scores = torch.full_like(scores, -1e9)
            scores[:, self.ids[step]] = 0
        return scores


def test_output_plugin_contract():
    from anymal.testing import check_output_plugin_contract

    check_output_plugin_contract("seg")


# --- SAM --------------------------------------------------------------------------------------------------------
def test_sam_loads_from_a_checkpoint_folder(tmp_path):
    """A SAM saved in transformers' format loads by path and equals the one it was saved from."""
    sam = load_sam(None, tiny_sam_config(), seed=3)
    sam.save_pretrained(str(tmp_path / "sam"))
    from_folder = SegPlugin(SegConfig(sam=str(tmp_path / "sam")))
    from_config = SegPlugin(SegConfig(sam_config=tiny_sam_config(), init_seed=3))
    assert fingerprint_module(from_folder.build_frozen()) == fingerprint_module(from_config.build_frozen())
    head_a, head_b = from_folder.build_head(32), from_config.build_head(32)
    for (name, a), b in zip(head_a.mask_decoder.state_dict().items(), head_b.mask_decoder.state_dict().values()):
        assert torch.equal(a, b), name
    assert from_folder.image_size == 64


def test_bad_sam_settings_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="not both"):
        SegConfig(sam=str(tmp_path), sam_config=tiny_sam_config())
    with pytest.raises(ConfigError, match="exactly one"):
        SegPlugin(SegConfig()).build_frozen()
    with pytest.raises(ConfigError, match=r"config\.json missing"):
        SegPlugin(SegConfig(sam=str(tmp_path / "nowhere"))).build_frozen()
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(ConfigError, match="model_type 'llama'"):
        SegPlugin(SegConfig(sam=str(tmp_path))).build_frozen()
    with pytest.raises(ConfigError, match="sam_config"):
        SegPlugin(SegConfig(sam_config={"vision_config": {"hidden_size": "wide"}})).build_frozen()


# --- labels -----------------------------------------------------------------------------------------------------
def test_mask_labels_in_every_form_agree(tmp_path):
    plugin = SegPlugin(SegPlugin.tiny_config())
    mask = np.zeros((48, 64), bool)
    mask[10:30, 20:50] = True
    Image.fromarray(mask.astype(np.uint8) * 255).save(tmp_path / "mask.png")
    polygon = [[20, 10, 50, 10, 50, 30, 20, 30]]
    row = RowInputs({"image": [photo()]}, {}, "row 7")
    labels = [encode_mask(mask), str(tmp_path / "mask.png"), mask, torch.from_numpy(mask), None]
    prepared = plugin.prepare(row, labels)
    for label in prepared["masks"][:4]:
        assert torch.equal(label, torch.from_numpy(mask))
    # COCO polygons are rasterised by pycocotools with its own edge rule: the same rectangle, give or take its rim
    poly = plugin.prepare(row, [polygon])["masks"][0].numpy()
    assert (poly == mask).mean() > 0.97
    assert prepared["masks"][4] is None
    assert prepared["pixels"].shape == (3, 64, 64)
    assert prepared["geometry"].src == (64.0, 48.0)


def test_bad_mask_labels_are_data_errors_naming_the_label():
    plugin = SegPlugin(SegPlugin.tiny_config())
    row = RowInputs({"image": [photo()]}, {}, "train.jsonl:3")
    for bad in plugin.bad_labels():
        with pytest.raises(DataError, match=r"train\.jsonl:3: targets\.seg\[0\]"):
            plugin.prepare(row, [bad])
    with pytest.raises(DataError, match=r"need the row's 'image' input"):
        plugin.prepare(RowInputs({}, {}, "train.jsonl:4"), [np.zeros((4, 4), bool)])


# --- training ---------------------------------------------------------------------------------------------------
def _batch(model: AnyMAL, tmp_path, targets: list[list]) -> dict:
    from anymal.data import read_dataset
    from anymal.train.dataset import Collator, TrainingDataset

    rows = []
    for i, target in enumerate(targets):
        Image.fromarray(photo(seed=i)).save(tmp_path / f"p{i}.png")
        rows.append({"id": str(i), "media": {"image": str(tmp_path / f"p{i}.png")},
                     "conversations": [{"role": "user", "content": "<image>\nSegment the thing."},
                                       {"role": "assistant", "content": " ".join(["[SEG]"] * len(target))}],
                     "targets": {"seg": target}})  # fmt: skip
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    examples = list(read_dataset("conversations", str(tmp_path / "rows.jsonl")))
    dataset = TrainingDataset(examples, model, False, "raise", None, seed=0)
    return Collator(model)([dataset[i] for i in range(len(examples))])


def _forward(model: AnyMAL, batch: dict):
    return model(
        input_ids=batch["input_ids"],
        labels=batch["labels"],
        modality_inputs=batch["modality_inputs"],
        modality_features=batch["modality_features"],
        output_batches=batch["output_batches"],
        return_labels=True,
        use_cache=False,
    )


def test_mask_losses_only_where_labels_exist(tmp_path):
    model = tiny_model()
    model.set_trainable()
    mask = np.zeros((48, 64), bool)
    mask[5:20, 5:40] = True
    unlabelled = _forward(model, _batch(model, tmp_path, [[None], [None, None]]))
    assert unlabelled.output_losses == {}
    labelled_batch = _batch(model, tmp_path, [[None], [encode_mask(mask), None]])
    out = _forward(model, labelled_batch)
    assert set(out.output_losses) == {"seg/mask_bce", "seg/mask_dice"}
    # the same terms by hand: the one labelled [SEG]'s logits mapped to the photo, u-LLaVA's weights
    states, outputs = out.outputs["seg"]
    assert len(states) == 3 and states.counts == [1, 2]
    plugin = model.output_plugins["seg"]
    logits = plugin._source_logits(outputs, states, labelled_batch["output_batches"]["seg"])[1][None]
    target = torch.from_numpy(mask).float()[None]
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
    p = logits.sigmoid()
    dice = 1 - (2 * (p / 1000 * target).sum() + 1e-6) / ((p / 1000).sum() + (target / 1000).sum() + 1e-6)
    assert out.output_losses["seg/mask_bce"].item() == pytest.approx(2.0 * bce.item(), rel=1e-4)
    assert out.output_losses["seg/mask_dice"].item() == pytest.approx(0.5 * dice.item(), rel=1e-4)
    sum(out.output_losses.values()).backward()
    head = model.heads["seg"]
    assert head.projection[0].weight.grad is not None and head.mask_decoder.upscale_conv1.weight.grad is not None
    assert all(p.grad is None for p in model.output_frozen["seg"].parameters())
    assert all(p.grad is None for p in head.mask_decoder.iou_prediction_head.parameters())  # no loss reaches it


def test_image_embeddings_are_computed_once_and_cached_on_disk(tmp_path):
    model = tiny_model(embedding_cache=str(tmp_path / "sam_cache"))
    batch = _batch(model, tmp_path, [[None], [None]])
    plugin = model.output_plugins["seg"]
    first = _forward(model, batch).outputs["seg"][1]
    assert plugin.cache.computed == 2
    again = _forward(model, batch).outputs["seg"][1]
    assert plugin.cache.computed == 2 and plugin.cache.hits == 2
    assert torch.equal(first, again)
    assert len(list((tmp_path / "sam_cache").rglob("*.safetensors"))) == 2
    fresh = tiny_model(embedding_cache=str(tmp_path / "sam_cache"))  # another run: read from disk
    assert torch.equal(_forward(fresh, batch).outputs["seg"][1], first)
    assert fresh.output_plugins["seg"].cache.computed == 0


# --- generate and checkpoints -----------------------------------------------------------------------------------
def _generate(model: AnyMAL, images: list, n_seg: int = 1):
    seg_id = model.tokenizer.convert_tokens_to_ids("[SEG]")
    prompts = ["<image>\nSegment the thing." if image is not None else "Segment the thing." for image in images]
    force = LogitsProcessorList([ForceTokens([seg_id] * n_seg + [model.tokenizer.eos_token_id])])
    return model.generate(prompts, image=images, max_new_tokens=n_seg + 1, logits_processor=force)


def test_generate_returns_masks_in_the_photo_frame():
    model = tiny_model()
    out = _generate(model, [photo(48, 64), photo(30, 20, seed=1)], n_seg=2)
    assert [len(m) for m in out.masks] == [2, 2]
    first, second = out.masks
    assert isinstance(first, Masks) and first.frame == PixelFrame(64, 48) and first.data.shape == (2, 48, 64)
    assert second.frame == PixelFrame(20, 30) and second.data.shape == (2, 30, 20)
    assert first.data.dtype == bool and first.scores.shape == (2,)
    alone = _generate(model, [photo(30, 20, seed=1)], n_seg=2)
    assert np.array_equal(alone.masks[0].data, second.data)  # batched == single


def test_rows_without_an_image_get_no_masks_and_a_seg_without_one_is_an_input_error():
    model = tiny_model()
    out = _generate(model, [None], n_seg=0)
    assert out.masks == [None]
    with pytest.raises(InputError, match="no 'image' input"):
        _generate(model, [None], n_seg=1)


def test_checkpoint_round_trip_is_bit_exact(tmp_path):
    model = tiny_model()
    with torch.no_grad():
        for p in model.heads["seg"].parameters():
            p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / "plugins" / "seg").is_dir()
    loaded = AnyMAL.from_pretrained(tmp_path / "ckpt")
    for (name, a), b in zip(model.heads["seg"].state_dict().items(), loaded.heads["seg"].state_dict().values()):
        assert torch.equal(a, b), name
    image = [photo()]
    assert np.array_equal(_generate(model, image).masks[0].data, _generate(loaded, image).masks[0].data)


# --- frozen_dtype: SAM's frozen parts in bf16 (the default on CUDA) -------------------------------------------------
def test_sam_in_bfloat16_matches_float32_and_trains_the_float32_head(tmp_path):
    mask = np.zeros((48, 64), bool)
    mask[5:20, 5:40] = True
    outs, losses = {}, {}
    for dtype in ("float32", "bfloat16"):
        model = tiny_model(frozen_dtype=dtype)
        model.set_trainable()
        assert {p.dtype for p in model.output_frozen["seg"].parameters()} == {getattr(torch, dtype)}
        assert {p.dtype for p in model.heads["seg"].parameters()} == {torch.float32}
        out = _forward(model, _batch(model, tmp_path, [[encode_mask(mask)], [None, encode_mask(~mask)]]))
        sum(out.output_losses.values()).backward()  # no autocast: the bf16 embeddings meet a float32 head
        assert model.heads["seg"].projection[0].weight.grad.isfinite().all()
        outs[dtype], losses[dtype] = out.outputs["seg"][1].detach(), sum(out.output_losses.values()).item()
    assert outs["bfloat16"].dtype == torch.float32
    cosine = torch.nn.functional.cosine_similarity(outs["bfloat16"].flatten(), outs["float32"].flatten(), dim=0)
    # measured on this tiny random SAM: cosine 0.9999+, loss within 0.1%
    assert cosine > 0.999 and losses["bfloat16"] == pytest.approx(losses["float32"], rel=0.01)


def test_a_bfloat16_sam_checkpoint_loads_and_keeps_its_own_embedding_cache(tmp_path):
    model = tiny_model(frozen_dtype="bfloat16", embedding_cache=str(tmp_path / "cache"))
    model.save_pretrained(tmp_path / "ckpt")
    loaded = AnyMAL.from_pretrained(tmp_path / "ckpt")  # the frozen fingerprint is of the weights as built
    assert next(loaded.output_frozen["seg"].parameters()).dtype == torch.bfloat16
    assert fingerprint_module(loaded.output_frozen["seg"]) == fingerprint_module(tiny_model().output_frozen["seg"])
    _forward(model, _batch(model, tmp_path, [[None]]))
    float32 = tiny_model(embedding_cache=str(tmp_path / "cache"))
    _forward(float32, _batch(float32, tmp_path, [[None]]))
    assert float32.output_plugins["seg"].cache.computed == 1  # a bf16 embedding is not served to a float32 SAM
    assert len({p.parent.parent.name for p in (tmp_path / "cache").rglob("*.safetensors")}) == 2


def test_frozen_dtype_is_validated():
    with pytest.raises(ConfigError, match="frozen_dtype='int8'"):
        SegConfig(sam_config=tiny_sam_config(), frozen_dtype="int8")
