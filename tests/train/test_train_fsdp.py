"""FSDP2: two CPU processes with every weight sharded train what one process trains, save whole checkpoints that
``AnyMAL.from_pretrained`` loads, and resume from them.

accelerate enables FSDP only on accelerator devices, so ``fsdp_worker.py`` switches its state to FSDP2 after
anymal builds the accelerator (see that file); ``fully_shard`` itself runs over gloo on CPU.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from anymal import AnyMAL
from anymal.checkpoint import read_trainable_state
from anymal.train import train

TORCHRUN = os.path.join(os.path.dirname(sys.executable), "torchrun")
WORKER = Path(__file__).with_name("fsdp_worker.py")
# LoRA dropout off: dropout draws from each process's RNG, so sharded and single runs would differ by design
INSTRUCT = ("stage=instruct", "lora.rank=4", "lora.target_modules=[q_proj,v_proj]", "lora.lr=5e-3", "lora.dropout=0")

pytestmark = [
    pytest.mark.integration,  # two torchrun processes per run: make test-integration
    pytest.mark.skipif(not os.path.exists(TORCHRUN), reason="torchrun is not installed"),
]


def _fsdp(config_path: Path, *extra: str, port: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    command = [TORCHRUN, "--nproc_per_node", "2", "--master_port", str(port), str(WORKER), "--config"]
    result = subprocess.run([*command, str(config_path), *extra], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stderr.count("sharded: encoders projectors") == 2  # both ranks' trainable modules are DTensors
    return result


def _losses(run: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines() if "loss" in line]


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, make_config):
    """The same LoRA + projector run on one process and on two FSDP2 processes (checkpoint at step 2)."""
    root = tmp_path_factory.mktemp("fsdp")
    common = ("max_steps=4", "batch_size=4", "log_every=1", "save_every=2", "keep_last=2", *INSTRUCT)
    single = train(make_config(root / "single", *common))
    config = make_config(root / "fsdp", *common)
    path = root / "fsdp.yaml"
    path.write_text(yaml.safe_dump(config.to_dict()))
    result = _fsdp(path, port=29541)
    return root, single, path, result


def test_sharded_training_matches_one_process(runs):
    root, single, _, result = runs
    assert result.stdout.count("done: 4 steps") == 2  # both ranks ran
    fsdp_run = root / "fsdp" / "run"
    assert torch.allclose(torch.tensor(_losses(fsdp_run)), torch.tensor(single.losses), atol=1e-5)
    one, two = root / "single" / "run" / "final", fsdp_run / "final"
    assert _max_diff(read_trainable_state(one), read_trainable_state(two)) < 1e-5
    lora_one = load_file(one / "adapter" / "adapter_model.safetensors")
    lora_two = load_file(two / "adapter" / "adapter_model.safetensors")
    # Adam divides by sqrt(v): on LoRA's tiny early gradients float reordering shows up a little more
    assert _max_diff(lora_one, lora_two) < 5e-5
    assert any(v.abs().sum() > 0 for k, v in lora_two.items() if "lora_B" in k)  # gathered, not an empty shard


def test_sharded_checkpoint_loads_with_from_pretrained(runs):
    root, *_ = runs
    final = root / "fsdp" / "run" / "final"
    fingerprints = json.loads((final / "fingerprints.json").read_text())
    reference = json.loads((root / "single" / "run" / "final" / "fingerprints.json").read_text())
    assert fingerprints == reference  # taken from whole frozen weights, not from one rank's shards
    model = AnyMAL.from_pretrained(final)
    stored = read_trainable_state(final)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in stored.items())


def test_sharded_run_resumes_from_its_whole_checkpoint(runs):
    root, _, path, _ = runs
    run = root / "fsdp" / "run"
    expected = read_trainable_state(run / "final")
    step2 = run / "checkpoints" / "step-00000002"
    assert step2.is_dir()
    shutil.rmtree(run / "final")
    shutil.rmtree(run / "checkpoints" / "step-00000004")
    (run / "metrics.jsonl").unlink()
    _fsdp(path, "--resume", port=29542)  # loads step 2's whole tensors into two ranks' shards
    assert _max_diff(read_trainable_state(run / "final"), expected) < 1e-6
    assert len(_losses(run)) == 2  # only steps 3 and 4 ran again


def test_qlora_on_a_4bit_llm_shards_and_matches_one_process(make_config, tmp_path):
    common = ("max_steps=3", "batch_size=4", "log_every=1", *INSTRUCT, "model.llm.quantization.mode=4bit")
    single = train(make_config(tmp_path / "single", *common))
    path = tmp_path / "fsdp.yaml"
    path.write_text(yaml.safe_dump(make_config(tmp_path / "fsdp", *common).to_dict()))
    _fsdp(path, port=29543)
    assert torch.allclose(torch.tensor(_losses(tmp_path / "fsdp" / "run")), torch.tensor(single.losses), atol=1e-5)
    adapter = Path("final") / "adapter" / "adapter_model.safetensors"
    one, two = load_file(tmp_path / "single" / "run" / adapter), load_file(tmp_path / "fsdp" / "run" / adapter)
    assert _max_diff(one, two) < 5e-5
