import io

import numpy as np
import pytest
import torch
from PIL import Image

from anymal import InputError
from anymal_image import ImagePlugin, ImagePluginConfig, PerceiverResampler, load_image

HF_TINY = {
    "model_type": "clip_vision_model",
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 3,
    "num_attention_heads": 2,
    "image_size": 32,
    "patch_size": 8,
}


def test_every_input_type_gives_the_same_pixels(coco_photos):
    plugin = ImagePlugin(ImagePlugin.tiny_config())
    path = coco_photos[0]
    pil = Image.open(path).convert("RGB")
    array = np.asarray(pil)
    reference = plugin.preprocess(str(path))
    for raw in (
        path,
        path.read_bytes(),
        pil,
        array,
        torch.from_numpy(array),
        np.moveaxis(array, -1, 0),
        array.astype(np.float32) / 255,
    ):
        assert torch.allclose(plugin.preprocess(raw), reference, atol=1e-6), type(raw)


def test_open_clip_penultimate_layer_features_match_a_hook_on_the_block(coco_photos):
    plugin = ImagePlugin(ImagePlugin.tiny_config())
    tower = plugin.build_encoder()
    batch = plugin.collate([plugin.preprocess(p) for p in coco_photos[:2]])
    captured = {}
    block = tower.visual.transformer.resblocks[-2]
    handle = block.register_forward_hook(lambda m, i, o: captured.setdefault("out", o))
    with torch.no_grad():
        feats = tower(batch)
        tower.visual(batch)
    handle.remove()
    assert feats.shape == (2, 16, 32)  # (32 / 8)^2 patch tokens, CLS dropped
    assert torch.allclose(feats, captured["out"][:, 1:], atol=1e-6)


def test_real_open_clip_architectures_are_the_papers(tmp_path):
    import open_clip

    for name, tag in (("ViT-L-14-336", "openai"), ("ViT-bigG-14", "laion2b_s39b_b160k")):
        assert tag in open_clip.list_pretrained_tags_by_model(name)
        transform = ImagePlugin(ImagePluginConfig(model_name=name, pretrained=tag)).transform
        size = open_clip.get_model_config(name)["vision_cfg"]["image_size"]
        assert transform(Image.new("RGB", (640, 480))).shape == (3, size, size)


def test_open_clip_local_checkpoint_file_loads_the_saved_weights(tmp_path, coco_photos):
    config = ImagePlugin.tiny_config()
    tower = ImagePlugin(config).build_encoder()
    import open_clip

    full = open_clip.create_model(
        tower_name := next(n for n in open_clip.list_models() if n.startswith("anymal-custom"))
    )
    full.visual.load_state_dict(tower.visual.state_dict())
    with torch.no_grad():
        for p in full.visual.parameters():
            p.mul_(1.5)
    weights = tmp_path / "tiny_clip.pt"
    torch.save(full.state_dict(), weights)
    loaded = ImagePlugin(ImagePluginConfig(**{**config.__dict__, "pretrained": str(weights)})).build_encoder()
    assert tower_name
    for key, value in full.visual.state_dict().items():
        assert torch.equal(loaded.visual.state_dict()[key], value)


def test_hf_clip_vision_backend_from_config_and_from_a_saved_folder(tmp_path, coco_photos):
    config = ImagePluginConfig(
        backend="hf", model_config=HF_TINY, num_tokens=4, resampler_dim=32, resampler_heads=2, resampler_dim_head=16
    )
    plugin = ImagePlugin(config)
    tower = plugin.build_encoder()
    batch = plugin.collate([plugin.preprocess(p) for p in coco_photos[:2]])
    feats = tower(batch)
    assert feats.shape == (2, 16, 32)
    with torch.no_grad():
        hidden = tower.model(pixel_values=batch, output_hidden_states=True).hidden_states
    assert torch.equal(feats, hidden[-2][:, 1:])
    tower.model.save_pretrained(tmp_path / "clipv")
    from transformers import CLIPImageProcessor

    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(
        tmp_path / "clipv"
    )
    from_folder = ImagePlugin(ImagePluginConfig(backend="hf", model_name=str(tmp_path / "clipv"), num_tokens=4))
    assert torch.allclose(from_folder.build_encoder()(batch), feats, atol=1e-6)


def test_hf_siglip_backend_has_no_cls_to_drop(coco_photos):
    siglip = {**HF_TINY, "model_type": "siglip_vision_model"}
    plugin = ImagePlugin(ImagePluginConfig(backend="hf", model_config=siglip, num_tokens=4))
    tower = plugin.build_encoder()
    assert tower(plugin.collate([plugin.preprocess(coco_photos[0])])).shape == (1, 16, 32)


@pytest.mark.parametrize("latents, depth", [(64, 2), (256, 6)])
def test_perceiver_resampler_sizes_of_the_paper_ablation(latents, depth):
    resampler = PerceiverResampler(in_dim=48, out_dim=40, num_latents=latents, depth=depth, dim=32, heads=2, dim_head=8)
    assert resampler(torch.randn(3, 50, 48)).shape == (3, latents, 40)
    assert len(resampler.layers) == depth


def test_resampler_output_does_not_depend_on_other_items_in_the_batch():
    resampler = PerceiverResampler(in_dim=8, out_dim=8, num_latents=4, depth=2, dim=16, heads=2, dim_head=8)
    x = torch.randn(2, 10, 8)
    assert torch.allclose(resampler(x)[:1], resampler(x[:1]), atol=1e-6)


@pytest.mark.parametrize(
    "raw, fragment",
    [
        ("/no/such/photo.jpg", "file not found: /no/such/photo.jpg"),
        (b"GIF89a-truncated", "not a readable image"),
        (np.zeros((5, 5, 7), dtype=np.uint8), "1, 3 or 4 channels"),
        (np.full((4, 4, 3), 2.0, dtype=np.float32), "[0, 1]"),
        (["a.jpg"], "expected a path, bytes"),
    ],
)
def test_bad_images_name_the_problem(raw, fragment):
    with pytest.raises(InputError) as info:
        load_image(raw)
    assert fragment in str(info.value)


def test_truncated_jpeg_file_is_named(tmp_path, coco_photos):
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(coco_photos[0].read_bytes()[:300])
    with pytest.raises(InputError, match=r"cut\.jpg"):
        load_image(truncated)
    assert load_image(io.BytesIO(coco_photos[0].read_bytes()).getvalue()).size == Image.open(coco_photos[0]).size
