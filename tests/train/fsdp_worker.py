"""``torchrun`` entry point that runs ``python -m anymal.train`` under accelerate's FSDP2 on CPU (gloo).

accelerate only turns FSDP on for accelerator devices (CUDA, XPU, ...): on a CPU-only machine it always picks
DDP. PyTorch's ``fully_shard`` itself runs on CPU over gloo, so this worker builds anymal's accelerator as usual
and then switches accelerate's shared state to FSDP2, the same state ``accelerate launch --use_fsdp
--fsdp_version 2`` produces on GPUs. Everything after that (accelerate's FSDP2 preparation, the sharded
parameters, anymal's gathering and re-sharding for checkpoints) is the real code path.
"""

import sys

from accelerate import FullyShardedDataParallelPlugin
from accelerate.utils import DistributedType

import anymal.train.loop as loop
from anymal.train.__main__ import main

_make_accelerator = loop.make_accelerator


def fsdp2_on_cpu(config):
    accelerator = _make_accelerator(config)
    accelerator.state.fsdp_plugin = FullyShardedDataParallelPlugin(
        fsdp_version=2,
        auto_wrap_policy="transformer_based_wrap",  # layer classes from AnyMAL._no_split_modules
        reshard_after_forward=True,
    )
    accelerator.state.distributed_type = DistributedType.FSDP
    prepare = accelerator.prepare

    def prepare_and_report(*objects):
        prepared = prepare(*objects)
        report_sharded(prepared[0])
        return prepared

    accelerator.prepare = prepare_and_report
    return accelerator


def report_sharded(model) -> None:
    """Prints ``sharded: <module> ...`` (to stderr) for each of anymal's top-level trainable modules whose
    parameters all became DTensors, so that a test can tell the run really was sharded."""
    from torch.distributed.tensor import DTensor

    owners: dict[str, list[bool]] = {}
    for name, param in model.named_parameters():
        owner = name.split(".")[0]
        if owner != "llm":
            owners.setdefault(owner, []).append(isinstance(param, DTensor))
    sharded = sorted(owner for owner, kinds in owners.items() if all(kinds))
    print("sharded: " + " ".join(sharded), file=sys.stderr, flush=True)


if __name__ == "__main__":
    loop.make_accelerator = fsdp2_on_cpu
    sys.exit(main(sys.argv[1:]))
