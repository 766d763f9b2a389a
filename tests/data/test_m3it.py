"""M3IT end to end on a small local M3IT-format collection built from the real photos in the shared assets: the
instance schema, the task registry, instruction pools, caps, weights, held-out filtering, eval rows, and a tiny
Ying-VLM run through ``python -m anymal.train`` on it."""

import base64
import json
import os
import subprocess
import sys
from collections import Counter

import pytest
import yaml

from anymal import ConfigError, DataError
from anymal.data import read_dataset
from anymal.data.m3it import M3ITInstance, m3it_eval_rows, read_m3it_tasks, write_m3it_task
from anymal.data.m3it_tasks import CATEGORIES, M3IT_TASKS, get_m3it_task, m3it_tasks

COCO_POOL = ["Describe the image briefly.", "Write a caption for this photo.", "What does the picture show?"]


@pytest.fixture(scope="module")
def collection(tmp_path_factory, assets):
    """coco (CAP, held in): five photos with their captions; vqa-v2 (VQA, held in): counting questions on the COCO
    image whose annotations are in the assets (two cats, two remotes); winoground (held out): caption matching."""
    root = tmp_path_factory.mktemp("m3it")
    captions = json.loads((assets / "images" / "captions.json").read_text())
    photos = sorted(n for n, i in captions.items() if isinstance(i, dict) and i.get("clipcap_generated_caption"))
    coco = [
        M3ITInstance(
            COCO_POOL[0], captions[n]["clipcap_generated_caption"], images=((assets / "images" / n).read_bytes(),)
        )
        for n in photos[:5]
    ]
    cats = (assets / "images" / "coco_000000039769.png").read_bytes()
    vqa = [
        M3ITInstance(
            "Answer the question about the image.", "There are two cats.", "How many cats are there?", (cats,)
        ),
        M3ITInstance("Answer the question about the image.", "There are two remotes.", "How many remotes?", (cats,)),
    ]
    match = "Does the caption match the image? Answer yes or no."
    wino = [
        M3ITInstance(match, "Yes.", "Two cats lying on a pink couch.", (cats,), {"source": "assets"}),
        M3ITInstance(match, "No.", captions[photos[5]]["clipcap_generated_caption"], (cats,)),
    ]
    write_m3it_task(root / "coco", coco, COCO_POOL)
    write_m3it_task(root / "vqa", vqa, ["Answer the question about the image.", "Look at the image and answer."])
    write_m3it_task(root / "winoground", wino, [match])
    manifest = {
        "held_out": "exclude",
        "resample_instructions": True,
        "seed": 0,
        "tasks": [
            {"name": "coco", "path": "coco/train.jsonl", "instructions": "coco/instructions.json", "weight": 1.0},
            {"name": "vqa-v2", "path": "vqa/train.jsonl", "instructions": "vqa/instructions.json", "weight": 2.0},
            {"name": "winoground", "path": "winoground/train.jsonl", "instructions": "winoground/instructions.json"},
        ],
    }
    (root / "tasks.yaml").write_text(yaml.safe_dump(manifest))
    return root / "tasks.yaml"


def test_registry_has_the_papers_40_tasks_27_held_in():
    assert len(M3IT_TASKS) == 40
    assert len(m3it_tasks(held_out=False)) == 27
    assert {t.name for t in m3it_tasks(held_out=True) if t.category not in ("Chinese", "Video")} == {
        "winoground",
        "viquae",
    }
    assert Counter(t.category for t in M3IT_TASKS.values()) == dict(
        CAP=3, REA=5, VQA=7, KVQA=4, CLS=7, GEN=3, Chinese=5, Video=6
    )
    assert {t.name for t in M3IT_TASKS.values() if t.translated} == {
        "okvqa", "imagenet", "winoground", "vqa-v2", "vist", "msrvtt", "msrvtt-qa"
    }  # fmt: skip
    assert set(CATEGORIES) == {t.category for t in M3IT_TASKS.values()}
    with pytest.raises(ConfigError, match="not registered; known: a-okvqa"):
        get_m3it_task("vqa2")


def test_collection_reads_held_in_tasks_into_training_records_with_pooled_instructions(collection):
    reader = read_dataset("m3it_tasks", collection, on_error="raise")
    assert reader.selected == ["coco", "vqa-v2"]  # winoground is held out
    examples = list(reader)
    assert Counter(e.id.split(":")[0] for e in examples) == {"coco": 5, "vqa-v2": 2}
    first = next(e for e in examples if e.id.startswith("vqa-v2"))
    user, answer = first.turns[0].text, first.turns[1].text
    assert (
        user.startswith("<image>\n") and user.endswith("\nHow many cats are there?") and answer == "There are two cats."
    )
    assert first.media["image"][0].read_bytes()[:4] == b"\x89PNG"  # the base64 decoded back to the PNG file
    # instructions are drawn from each task's pool, anew per epoch, reproducibly
    pool_used = {e.turns[0].text.split("\n")[1] for e in examples if e.id.startswith("coco")}
    assert pool_used <= set(COCO_POOL)
    draws = []
    for epoch in range(6):
        reader.set_epoch(epoch)
        draws.append([e.turns[0].text for e in reader if e.id.startswith("coco")])
    assert len({tuple(d) for d in draws}) > 1
    reader.set_epoch(2)
    assert [e.turns[0].text for e in reader if e.id.startswith("coco")] == draws[2]


def test_caps_weights_pool_size_and_held_out_policies(collection):
    data = yaml.safe_load(collection.read_text())
    variant = collection.parent / "variant.yaml"
    variant.write_text(yaml.safe_dump({**data, "max_examples_per_task": 1, "instruction_pool_size": 1}))
    examples = list(read_m3it_tasks(variant))
    assert Counter(e.id.split(":")[0] for e in examples) == {"coco": 1, "vqa-v2": 1}
    assert examples and all(COCO_POOL[0] in e.turns[0].text for e in examples if e.id.startswith("coco"))
    variant.write_text(yaml.safe_dump({**data, "held_out": "only"}))
    assert read_m3it_tasks(variant).selected == ["winoground"]
    variant.write_text(yaml.safe_dump({**data, "held_out": "include", "categories": ["VQA"]}))
    assert read_m3it_tasks(variant).selected == ["vqa-v2"]
    # weights: vqa-v2 (weight 2) is drawn about twice as often while both last
    variant.write_text(yaml.safe_dump({**data, "resample_instructions": False}))
    reader = read_m3it_tasks(variant)
    order = [e.id.split(":")[0] for e in reader]
    assert order.count("vqa-v2") == 2 and reader.counts == {"coco": 5, "vqa-v2": 2}


def test_bad_manifests_and_instances_name_what_is_wrong(collection, tmp_path):
    data = yaml.safe_load(collection.read_text())
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**data, "tasks": [{"name": "cocoo", "path": "x.jsonl"}]}))
    with pytest.raises(ConfigError, match="'cocoo' is not registered"):
        read_m3it_tasks(bad)
    bad.write_text(yaml.safe_dump({**data, "held_out": "sometimes"}))
    with pytest.raises(ConfigError, match="held_out"):
        read_m3it_tasks(bad)
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"instruction": "x", "outputs": "y", "image_base64_str": "notalist"}) + "\n")
    task = {"name": "coco", "path": str(rows)}
    bad.write_text(yaml.safe_dump({"tasks": [task]}))
    with pytest.raises(DataError, match=r"rows.jsonl:1.*image_base64_str.*list of base64 images"):
        list(read_m3it_tasks(bad))
    rows.write_text(json.dumps({"instruction": "x", "outputs": "y", "meta": [1]}) + "\n")
    with pytest.raises(DataError, match=r"rows.jsonl:1.*meta"):
        list(read_m3it_tasks(bad))
    bad.write_text(yaml.safe_dump({"tasks": [{**task, "instructions": ["ok", ""]}]}))
    with pytest.raises(ConfigError, match=r"tasks\.coco\.instructions"):
        read_m3it_tasks(bad)


def test_eval_rows_for_the_held_out_tasks_score_with_rouge_l(collection):
    from anymal.eval import evaluate
    from anymal.testing import tiny_anymal

    rows = m3it_eval_rows(collection, held_out="only")
    assert [r["task"] for r in rows] == ["winoground", "winoground"] and rows[0]["category"] == "REA"
    assert rows[0]["answers"] == ["Yes."] and base64.b64decode(rows[0]["media"]["image"][0])[:4] == b"\x89PNG"
    model = tiny_anymal(("image",))
    result = evaluate(model, "m3it", rows, max_new_tokens=2, progress=False)
    assert result["n_items"] == 2 and 0.0 <= result["metrics"]["rouge_l"] <= 1.0


def test_eval_cli_reads_a_collection_manifest_with_stored_instructions(collection, tmp_path):
    from anymal.eval.__main__ import main
    from anymal.eval.items import read_eval_items
    from anymal.testing import tiny_anymal

    data = yaml.safe_load(collection.read_text())
    manifest = collection.parent / "held_out.yaml"
    manifest.write_text(yaml.safe_dump({**data, "held_out": "only"}))
    items = read_eval_items(manifest, kind="m3it_tasks")
    assert [i.id for i in items] == ["winoground:1", "winoground:2"]
    assert (
        items[0].prompt
        == "<image>\nDoes the caption match the image? Answer yes or no.\nTwo cats lying on a pink couch."
    )
    assert items[0].references == ["Yes."]
    tiny_anymal(("image",)).save_pretrained(tmp_path / "model")
    out = tmp_path / "scores.json"
    argv = ["--model", str(tmp_path / "model"), "--task", "m3it", "--data", str(manifest), "--data-kind", "m3it_tasks"]
    assert main([*argv, "--out", str(out), "--no-progress", "--max-new-tokens", "2"]) == 0
    scores = json.loads(out.read_text())
    assert scores["n_items"] == 2 and 0.0 <= scores["metrics"]["rouge_l"] <= 1.0


@pytest.mark.integration  # a training subprocess: make test-integration
def test_tiny_ying_vlm_trains_on_the_collection_through_the_cli_and_generates(
    collection, tmp_path, assets, stories260k_path
):
    from anymal import AnyMAL
    from anymal.presets import build

    preset = build("ying_vlm", "tiny")
    config = tmp_path / "ying.yaml"
    config.write_text(preset.to_yaml())
    data = json.dumps([{"kind": "m3it_tasks", "path": str(collection)}])
    command = [sys.executable, "-m", "anymal.train", "--config", str(config), f"output_dir={tmp_path / 'run'}"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    # three passes over the 7 held-in instances, on the frozen pretrained stories260K (a random LLM barely moves)
    steps = ["max_steps=24", "lr=1e-2", f"model.llm.name_or_path={stories260k_path}"]
    done = subprocess.run([*command, f"data={data}", *steps], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert len(losses) == 24
    first, last = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
    print(f"tiny Ying-VLM on the M3IT collection: loss {first:.3f} -> {last:.3f} over 24 steps")
    assert last < 0.9 * first, (first, last)  # answer tokens, LLM frozen: the Q-Former, projection and LoRA learn
    model = AnyMAL.from_pretrained(tmp_path / "run" / "final")
    assert type(model.projectors["image"]).__name__ == "QFormerProjector"
    prompt = "<image>\nAnswer the question about the image.\nHow many cats are there?"
    out = model.generate(
        prompt=prompt, image=str(assets / "images" / "coco_000000039769.png"), chat=True, max_new_tokens=3
    )
    assert len(out.sequences[0]) == 3
