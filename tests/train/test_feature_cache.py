"""The frozen-feature cache: reused across runs, invalidated by content or encoder changes, same training."""

import dataclasses
import shutil

import torch

from anymal.checkpoint import read_trainable_state
from anymal.data import MediaRef
from anymal.testing import tiny_anymal
from anymal.train import train
from anymal.train.feature_cache import FeatureCache
from anymal_image import ImagePlugin


def test_cached_features_train_like_the_encoder_and_are_reused(make_config, pairs, tmp_path):
    plain = train(make_config(tmp_path / "plain", "max_steps=5"))
    cache_dir = tmp_path / "cache"
    first = train(make_config(tmp_path / "c1", "max_steps=5", f"feature_cache={cache_dir}"))
    files = sorted(cache_dir.rglob("*.safetensors"))
    assert len(files) == pairs[1]  # one per readable photo
    mtimes = [f.stat().st_mtime_ns for f in files]
    second = train(make_config(tmp_path / "c2", "max_steps=5", f"feature_cache={cache_dir}"))
    assert [f.stat().st_mtime_ns for f in sorted(cache_dir.rglob("*.safetensors"))] == mtimes  # nothing re-encoded
    assert first.losses == second.losses
    assert torch.allclose(torch.tensor(plain.losses), torch.tensor(first.losses), atol=1e-4)
    a = read_trainable_state(tmp_path / "plain" / "run" / "final")
    b = read_trainable_state(tmp_path / "c2" / "run" / "final")
    assert all(torch.allclose(a[k], b[k], atol=1e-4) for k in a)
    assert first.skipped == {"rows": 2}


def test_cache_is_invalidated_by_content_and_encoder_changes(tmp_path, coco_photos):
    model = tiny_anymal(("image",))
    cache = FeatureCache(tmp_path / "cache", model)
    photo = tmp_path / "photo.jpg"
    shutil.copy(coco_photos[0], photo)
    ref = MediaRef(path=photo)
    features = model.encode_features("image", model.preprocess("image", [str(photo)]))
    cache.put("image", ref, features)
    assert torch.equal(cache.get("image", ref), features)
    shutil.copy(coco_photos[1], photo)  # same path, new content
    assert cache.get("image", ref) is None
    other_config = dataclasses.replace(ImagePlugin.tiny_config(), init_seed=3)
    other = FeatureCache(tmp_path / "cache", tiny_anymal({"image": other_config}))
    assert other.encoder_key("image") != cache.encoder_key("image")
    inline = MediaRef(data=coco_photos[0].read_bytes())
    cache.put("image", inline, features)
    assert torch.equal(cache.get("image", MediaRef(data=coco_photos[0].read_bytes())), features)


def test_unreadable_inputs_are_listed_with_their_row(tmp_path):
    import json

    from anymal.testing import write_toy_input
    from anymal.train.config import DataSpec
    from anymal.train.dataset import read_examples

    good = write_toy_input(tmp_path / "good.txt", torch.arange(8.0))
    (tmp_path / "bad.txt").write_text("not numbers at all\n")
    rows = [{"toy": str(good), "caption": "fine"}, {"toy": str(tmp_path / "bad.txt"), "caption": "broken"}]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    model = tiny_anymal(("toy",))
    spec = DataSpec(kind="pairs", path=str(tmp_path / "pairs.jsonl"), modality="toy", media_key="toy")
    examples, _ = read_examples([spec], model.plugins, "skip", seed=0)
    cache = FeatureCache(tmp_path / "cache", model)
    stats = cache.precompute(examples, show_progress=False)
    assert stats == {"encoded": 1, "failed": 1}
    assert len(cache.failures) == 1 and cache.failures[0].startswith(f"{tmp_path / 'pairs.jsonl'}:2 (toy): ")
