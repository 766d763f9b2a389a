"""Seeded global batches, sharded by index across processes.

Every process draws the same permutation (seeded by run seed and epoch), cuts it into *global* batches of
``batch_size`` and keeps its own slice of each (``batch[rank::world]``), so N processes see exactly the examples one
process would. Skipping the first batches (resume) happens here, before anything is loaded. A last global batch
smaller than the number of processes is dropped, so that no process ever gets an empty batch.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch


class ShardedBatchSampler(torch.utils.data.Sampler):
    def __init__(
        self,
        size: int,
        batch_size: int,
        seed: int,
        epoch: int = 0,
        rank: int = 0,
        world: int = 1,
        shuffle: bool = True,
        skip: int = 0,
    ) -> None:
        self.size, self.batch_size, self.rank, self.world, self.skip = size, batch_size, rank, world, skip
        self.shuffle, self.seed, self.epoch = shuffle, seed, epoch

    def global_batches(self) -> list[list[int]]:
        if self.shuffle:
            order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed * 100_003 + self.epoch))
        else:
            order = torch.arange(self.size)
        batches = [order[i : i + self.batch_size].tolist() for i in range(0, self.size, self.batch_size)]
        return [b for b in batches if len(b) >= self.world]

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.global_batches()[self.skip :]:
            yield batch[self.rank :: self.world]

    def __len__(self) -> int:
        return max(0, len(self.global_batches()) - self.skip)
