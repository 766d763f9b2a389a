"""Shared fixtures: offline hub, the real assets folder (skipping clearly when absent), tiny models."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import pytest

from anymal.testing import ASSETS, LLAMA2_TOKENIZER, STORIES260K


def _require(path):
    if not path.exists():
        pytest.skip(f"real test asset {path} is absent (expected ../shared/assets beside the repo)")
    return path


@pytest.fixture(scope="session")
def assets():
    return _require(ASSETS)


@pytest.fixture(scope="session")
def llama2_tokenizer_path():
    return _require(LLAMA2_TOKENIZER)


@pytest.fixture(scope="session")
def stories260k_path():
    return _require(STORIES260K)


@pytest.fixture(scope="session")
def coco_photos(assets):
    photos = sorted((assets / "images").glob("COCO_val2014_*.jpg"))
    if len(photos) < 2:
        pytest.skip("COCO photos missing from the assets folder")
    return photos


@pytest.fixture(scope="module")
def tiny_image_model():
    from anymal.testing import tiny_anymal

    return tiny_anymal(("image",))


@pytest.fixture
def one_thread():
    """Training tests run single-threaded: on a shared 2-core box, oversubscribed torch threads stall for seconds."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
