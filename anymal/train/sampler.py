"""Seeded global batches, sharded by index across processes.

Every process draws the same permutation (seeded by run seed and epoch), cuts it into *global* batches of
``batch_size`` and keeps its own slice of each (``batch[rank::world]``), so N processes see exactly the examples one
process would. Skipping the first batches (resume) happens here, before anything is loaded. A last global batch
smaller than the number of processes is dropped, so that no process ever gets an empty batch.

With ``groups`` (a key per example, e.g. its modalities), batches are cut within each group, and the order of
all batches is then shuffled (seeded), so every batch holds one group: the AnyMAL alignment recipe, one modality
per batch, when several modalities align together.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

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
        groups: Sequence[str] | None = None,
    ) -> None:
        if groups is not None and len(groups) != size:
            raise ValueError(f"groups: expected one key per example ({size}), got {len(groups)}")
        self.size, self.batch_size, self.rank, self.world, self.skip = size, batch_size, rank, world, skip
        self.shuffle, self.seed, self.epoch, self.groups = shuffle, seed, epoch, groups

    def _generator(self, salt: int = 0) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed * 100_003 + self.epoch + salt * 7_919)

    def global_batches(self) -> list[list[int]]:
        order = torch.randperm(self.size, generator=self._generator()) if self.shuffle else torch.arange(self.size)
        chunks: dict[str, list[int]] = {}
        for index in order.tolist():
            chunks.setdefault(self.groups[index] if self.groups is not None else "", []).append(index)
        batches = [
            chunk[i : i + self.batch_size] for chunk in chunks.values() for i in range(0, len(chunk), self.batch_size)
        ]
        batches = [b for b in batches if len(b) >= self.world]
        if len(chunks) > 1 and self.shuffle:  # interleave the groups' batches (one group: the plain order)
            batches = [batches[i] for i in torch.randperm(len(batches), generator=self._generator(1)).tolist()]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.global_batches()[self.skip :]:
            yield batch[self.rank :: self.world]

    def __len__(self) -> int:
        return max(0, len(self.global_batches()) - self.skip)
