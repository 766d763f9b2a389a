"""Seeded global batches: sharded across processes, and cut within one modality set when grouped."""

import pytest

from anymal.train.sampler import ShardedBatchSampler


def test_ranks_split_each_global_batch_and_together_cover_it():
    one = list(ShardedBatchSampler(10, 4, seed=3))
    two = [list(ShardedBatchSampler(10, 4, seed=3, rank=r, world=2)) for r in range(2)]
    for batch, a, b in zip(one, *two):
        assert sorted(a + b) == sorted(batch) and a == batch[0::2]


def test_grouped_batches_hold_one_group_each_and_cover_every_example_once():
    groups = ["image"] * 7 + ["audio"] * 5 + ["imu"] * 3
    sampler = ShardedBatchSampler(len(groups), 2, seed=0, groups=groups)
    batches = list(sampler)
    assert all(len({groups[i] for i in batch}) == 1 for batch in batches)
    assert sorted(i for batch in batches for i in batch) == list(range(len(groups)))
    kinds = [groups[batch[0]] for batch in batches]
    assert kinds != sorted(kinds, key=["image", "audio", "imu"].index)  # interleaved, not group after group
    assert batches == list(ShardedBatchSampler(len(groups), 2, seed=0, groups=groups))  # seeded
    assert batches != list(ShardedBatchSampler(len(groups), 2, seed=0, epoch=1, groups=groups))


def test_one_group_keeps_the_ungrouped_order():
    plain = list(ShardedBatchSampler(9, 2, seed=5))
    assert list(ShardedBatchSampler(9, 2, seed=5, groups=["image"] * 9)) == plain


def test_groups_must_match_the_examples():
    with pytest.raises(ValueError, match="one key per example"):
        ShardedBatchSampler(3, 2, seed=0, groups=["image"])
