"""IMU alignment learns: after stage 1 the model names the activity of the BasicMotions windows it was taught.

The whole AnyMAL recipe on real smartwatch recordings: the IMU encoder is pretrained against a (tiny, seeded) text
tower by the plugin's contrastive task through the training CLI's code path, then frozen while only the IMU
projector is aligned to the real pretrained stories260K LLaMA (frozen, with its own tokenizer) on captions such as
"The person is walking."; the saved checkpoint then captions each window greedily.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from anymal import AnyMAL
from anymal.testing import require_asset
from anymal.train import load_train_config, train
from anymal.train.dataset import read_examples
from anymal.train.pretrain import load_pretrain_config, run_pretraining

REPO = Path(__file__).resolve().parents[2]
BASIC_MOTIONS = "imu/BasicMotions_TRAIN.npz"
PRETRAIN_CONFIG = REPO / "configs" / "pretrain" / "imu_contrastive_tiny.yaml"
pytestmark = pytest.mark.integration  # the whole recipe: pretrain, align, caption (make test-integration)
RATE = 10.0  # BasicMotions: 10 Hz, 100 samples (10 s) per recording

ACTIVITY = {"Standing": "standing", "Walking": "walking", "Running": "running", "Badminton": "playing badminton"}
KEYWORD = {"Standing": "standing", "Walking": "walking", "Running": "running", "Badminton": "badminton"}
PHRASINGS = ("The person is {activity}.", "Someone is {activity}.", "A person is {activity}.")


@pytest.fixture(scope="module")
def motions() -> tuple[np.ndarray, list[str]]:
    """The 40 recordings as ``[N, C, T]`` float32 and their activity labels."""
    with np.load(require_asset(BASIC_MOTIONS), allow_pickle=False) as data:
        return data["X"], [str(label) for label in data["y"]]


def write_pairs(folder: Path, signals: np.ndarray, labels: list[str]) -> Path:
    """Each window as a ``[T, 6]`` .npy file plus one JSONL row per caption phrasing (like COCO's 5 captions)."""
    rows = []
    for i, (signal, label) in enumerate(zip(signals, labels)):
        np.save(folder / f"window_{i:02d}.npy", np.ascontiguousarray(signal.T))
        rows += [{"imu": f"window_{i:02d}.npy", "caption": p.format(activity=ACTIVITY[label])} for p in PHRASINGS]
    path = folder / "pairs.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def named_activity(text: str) -> str | None:
    """The activity a caption names first (``None`` if it names none)."""
    lowered = text.lower()
    hits = sorted((lowered.find(word), label) for label, word in KEYWORD.items() if word in lowered)
    return hits[0][1] if hits else None


def test_imu_alignment_names_the_activity_of_taught_windows(motions, stories260k_path, tmp_path, one_thread):
    signals, labels = motions
    if not (stories260k_path / "tokenizer.model").is_file():
        pytest.skip(f"{stories260k_path} has no tokenizer.model (llama2.c's 512-token SentencePiece model)")

    # 1. pretrain the IMU encoder with the plugin's contrastive task, from the shipped tiny config
    pretrain = load_pretrain_config(
        PRETRAIN_CONFIG, [f"output_dir={tmp_path / 'pretrain'}", f"options.data={require_asset(BASIC_MOTIONS)}"]
    )
    encoder = run_pretraining(pretrain)
    assert encoder.metrics["retrieval_acc_after"] == 1.0  # windows -> their activity's caption, 4-way
    imu_config = yaml.safe_load((tmp_path / "pretrain" / "config.yaml").read_text())["plugin_config"]
    imu_config.update(checkpoint=encoder.checkpoint, default_sample_rate=RATE, num_tokens=16, projector_rank=64)

    # 2. stage-1 alignment: frozen stories260K, frozen pretrained encoder, only the projector learns
    pairs = write_pairs(tmp_path, signals, labels)
    config = load_train_config(
        None,
        [
            f"model.llm.name_or_path={stories260k_path}",
            f"data=[{{kind: pairs, path: '{pairs}', modality: imu, media_key: imu}}]",
            f"output_dir={tmp_path / 'align'}",
            "stage=align",
            "train_modalities=[imu]",
            "max_steps=150",
            "batch_size=8",
            "lr=1e-2",
            "warmup_steps=5",
        ],
    )
    config.model["modalities"] = {"imu": imu_config}
    result = train(config)
    first, last = np.mean(result.losses[:10]), np.mean(result.losses[-10:])
    assert last < first - 2.5, (first, last)  # nats per caption token

    # 3. greedy captions of every taught window, asked with each instruction the training data used
    model = AnyMAL.from_pretrained(str(tmp_path / "align" / "final")).eval()
    examples, _ = read_examples(config.data, ["imu"], "raise", config.seed)
    prompts = sorted({example.turns[0].text for example in examples})  # "<imu>\n<instruction>"
    windows = [(np.ascontiguousarray(signal.T), RATE) for signal in signals]
    per_prompt = {}
    for prompt in prompts:
        texts = model.generate(prompt=[prompt] * len(windows), imu=windows, max_new_tokens=20, do_sample=False).texts
        per_prompt[prompt] = float(np.mean([named_activity(text) == label for text, label in zip(texts, labels)]))
    accuracy = float(np.mean(list(per_prompt.values())))
    print(f"\nIMU activity naming accuracy on the 40 taught windows: {accuracy:.1%} (chance 25%); {per_prompt}")
    assert accuracy >= 0.8, per_prompt
    assert min(per_prompt.values()) >= 0.5, per_prompt
