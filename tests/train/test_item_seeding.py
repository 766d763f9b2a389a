"""Random preprocessing in training (video segment sampling) is a function of run seed, epoch and item index:
the same with or without data-loader workers, and on a resumed run."""

import dataclasses

import pytest
import torch

from anymal.data import Example, MediaRef
from anymal.processing import Turn
from anymal.testing import require_asset, tiny_anymal
from anymal.train.dataset import Collator, TrainingDataset


@pytest.fixture(scope="module")
def dataset():
    nasa = require_asset("video/nasa_13013.mp4")
    from anymal_image import ImagePlugin
    from anymal_video import VideoPlugin

    video = dataclasses.replace(VideoPlugin.tiny_config(), sampling="segment")
    model = tiny_anymal({"image": ImagePlugin.tiny_config(), "video": video})
    example = Example([Turn("user", "<video>"), Turn("assistant", "a launch")], {"video": [MediaRef(path=nasa)]})
    return TrainingDataset([example] * 4, model, chat=False, on_error="raise", seed=7)


def _frames(item) -> list[int]:
    return item["media"]["video"][0]["frame_indices"].tolist()


def test_an_items_random_segments_depend_on_seed_epoch_and_index_only(dataset):
    first = [_frames(dataset[i]) for i in range(4)]
    assert [_frames(dataset[i]) for i in reversed(range(4))] == first[::-1]  # access order does not matter
    assert len({tuple(f) for f in first}) > 1  # items draw their own segments
    dataset.epoch = 1
    try:
        assert [_frames(dataset[i]) for i in range(4)] != first  # a new epoch draws new ones
    finally:
        dataset.epoch = 0


def test_data_loader_workers_draw_what_the_main_process_draws(dataset):
    def indices(workers: int) -> list[torch.Tensor]:
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=2, collate_fn=Collator(dataset_model(dataset)), num_workers=workers
        )
        return [batch["modality_inputs"]["video"]["frame_indices"] for batch in loader]

    main, workers = indices(0), indices(2)
    assert all(torch.equal(a, b) for a, b in zip(main, workers, strict=True))


def dataset_model(dataset):
    class _Model:  # what Collator needs: the plugins
        plugins = dataset.plugins

    return _Model()
