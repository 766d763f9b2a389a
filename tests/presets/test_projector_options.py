"""The image plugin's projector and adapter options the seed-system presets are made of (Pink, Qwen-VL, Ying-VLM)."""

import dataclasses

import pytest
import torch

from anymal import ConfigError
from anymal.testing import tiny_anymal
from anymal_image import ImagePlugin
from anymal_image.adapters import BottleneckAdapter
from anymal_image.projectors import CrossAttention2D, resize_positions, sincos_2d

TINY_QFORMER = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}


def _model(**options):
    return tiny_anymal({"image": dataclasses.replace(ImagePlugin.tiny_config(), **options)})


@pytest.fixture(scope="module")
def photo(assets):
    return str(sorted((assets / "images").glob("COCO_val2014_*.jpg"))[0])


def test_pink_adapters_start_as_the_identity_and_train_through_the_frozen_vit_and_llm(photo):
    plain = _model(projector_type="linear", num_tokens=16)
    pink = _model(projector_type="linear", num_tokens=16, vision_adapter_dim=4, llm_adapter_dim=4)
    pink.projectors["image"].head.load_state_dict(plain.projectors["image"].state_dict())
    batch = plain.preprocess("image", [photo])
    ids = [[1, 5, 6, 7]]
    with torch.no_grad():  # W_u = 0: the adapted model computes exactly what the plain one does
        assert torch.allclose(plain.modality_tokens({"image": batch})[0], pink.modality_tokens({"image": batch})[0])
        assert torch.allclose(plain.llm(torch.tensor(ids)).logits, pink.llm(torch.tensor(ids)).logits)
    pink.set_trainable()
    tokens = pink.modality_tokens({"image": batch})[0]
    (tokens.square().mean() + pink.llm(torch.tensor(ids)).logits.square().mean()).backward()
    projector = pink.projectors["image"]
    vit_up = projector.vit.adapters[0].up.weight.grad
    llm_up = [a.up.weight.grad for a in projector.llm_adapters]
    assert vit_up is not None and vit_up.abs().sum() > 0  # gradient reached the ViT adapter through frozen blocks
    assert len(llm_up) == 2 and all(g is not None and g.abs().sum() > 0 for g in llm_up)
    assert all(p.grad is None for p in pink.encoders.parameters())  # the tower itself stays frozen
    assert all(p.grad is None for n, p in pink.llm.named_parameters())
    with torch.no_grad():
        projector.llm_adapters[0].up.weight.fill_(0.1)
        changed = pink.llm(torch.tensor(ids)).logits
    assert not torch.allclose(changed, plain.llm(torch.tensor(ids)).logits)
    pink.remove_plugin("image")  # the hooks go with the plugin
    with torch.no_grad():
        assert torch.allclose(pink.llm(torch.tensor(ids)).logits, plain.llm(torch.tensor(ids)).logits)


def test_pink_adapters_save_and_load_with_the_projector(tmp_path, photo):
    model = _model(projector_type="linear", num_tokens=16, vision_adapter_dim=4, llm_adapter_dim=4)
    with torch.no_grad():
        for adapter in model.projectors["image"].modules():
            if isinstance(adapter, BottleneckAdapter):
                adapter.up.weight.normal_()
    model.save_pretrained(tmp_path / "ckpt")
    loaded = type(model).from_pretrained(tmp_path / "ckpt")
    batch = model.preprocess("image", [photo])
    with torch.no_grad():
        assert torch.equal(model.modality_tokens({"image": batch})[0], loaded.modality_tokens({"image": batch})[0])
        ids = torch.tensor([[1, 5, 6]])
        assert torch.equal(model.llm(ids).logits, loaded.llm(ids).logits)


def test_linear_projector_passes_every_patch_through_and_checks_the_count():
    with pytest.raises(ConfigError, match=r"num_tokens=4: .*set num_tokens=16"):
        _model(projector_type="linear", num_tokens=4)
    with pytest.raises(ConfigError, match="projector_type"):
        dataclasses.replace(ImagePlugin.tiny_config(), projector_type="mlp9")


def test_qwen_cross_attention_positions_are_2d_sincos_on_queries_and_keys_not_values():
    table = sincos_2d(8, 4)
    assert table.shape == (16, 8)
    # first half encodes the column, second half the row: cells of one column share the first half
    assert (table[0, :4] == table[4, :4]).all() and (table[0, 4:] == table[1, 4:]).all()
    assert not (table[0] == table[5]).all()
    resized = resize_positions(torch.from_numpy(table), 64)
    assert resized.shape == (64, 8)
    adapter = CrossAttention2D(in_dim=6, out_dim=8, num_queries=4, heads=2).eval()
    feats = torch.randn(1, 16, 6)
    shuffled = feats[:, torch.randperm(16)]
    # keys carry positions: the same features in other places give other tokens
    assert not torch.allclose(adapter(feats), adapter(shuffled))
    with pytest.raises(ConfigError, match="square"):
        CrossAttention2D(6, 8, num_queries=5)


def test_qformer_projector_gives_num_tokens_per_image(photo):
    model = _model(projector_type="qformer", num_tokens=4, qformer_config=TINY_QFORMER)
    out = model.modality_tokens({"image": model.preprocess("image", [photo, photo])})[0]
    assert out.shape == (2, 4, 32)
    assert type(model.projectors["image"].qformer).__name__ == "Blip2QFormerModel"


TINY_HF = {
    "clip": {"model_type": "clip_vision_model", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 3,
             "num_attention_heads": 2, "image_size": 32, "patch_size": 8},
    "blip2": {"model_type": "blip_2_vision_model", "hidden_size": 32, "intermediate_size": 64,
              "num_hidden_layers": 3, "num_attention_heads": 2, "image_size": 32, "patch_size": 8,
              "initializer_range": 0.02},  # BLIP-2's default 1e-10 draws a tower that outputs about zero
}  # fmt: skip


@pytest.mark.parametrize("tower", ["open_clip", "clip", "blip2"])
@pytest.mark.parametrize(("feature_layer", "keep_cls"), [(-2, False), (-1, True)])
def test_adapted_vit_at_init_reproduces_the_towers_own_features(tower, feature_layer, keep_cls):
    """Stem, then the blocks up to the feature layer, then the token selection: with W_u = 0 this is exactly what
    the tower returns, for open_clip and transformers towers (CLIP, BLIP-2)."""
    from anymal_image.adapters import AdaptedViT
    from anymal_image.encoders import build_tower

    options = {"feature_layer": feature_layer, "keep_cls_token": keep_cls}
    if tower != "open_clip":
        options.update(backend="hf", model_name=f"tiny-{tower}", pretrained=None, model_config=TINY_HF[tower])
    built = build_tower(dataclasses.replace(ImagePlugin.tiny_config(), **options)).eval()
    adapted = AdaptedViT(built, bottleneck=4, activation="silu")
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = built(pixels)
        assert expected.shape[1] == built.n_tokens == 16 + int(keep_cls)
        assert torch.allclose(adapted(built.stem(pixels)), expected, atol=1e-6)
        adapted.adapters[0].up.weight.fill_(0.5)
        assert not torch.allclose(adapted(built.stem(pixels)), expected, atol=1e-3)
        assert torch.allclose(built(pixels), expected)  # the tower's own forward never runs the adapters
