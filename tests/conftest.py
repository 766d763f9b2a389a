"""Shared fixtures: offline hub, the real assets folder (skipping clearly when absent), tiny models."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import pytest

from anymal.testing import LLAMA2_TOKENIZER_ASSET, STORIES260K_ASSET, require_asset


def pytest_addoption(parser):
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="rewrite the golden files (tests/plugins/*/golden_manifest.json) from this run instead of comparing",
    )


@pytest.fixture(scope="session")
def update_golden(request) -> bool:
    return bool(request.config.getoption("--update-golden"))


@pytest.fixture(scope="session")
def assets():
    """The shared real-assets folder (``anymal.testing.assets_dir()``); skips when it is absent."""
    return require_asset()


@pytest.fixture(scope="session")
def llama2_tokenizer_path():
    return require_asset(LLAMA2_TOKENIZER_ASSET)


@pytest.fixture(scope="session")
def stories260k_path():
    return require_asset(STORIES260K_ASSET)


@pytest.fixture(scope="session")
def coco_photos():
    return require_asset("images", "COCO_val2014_*.jpg", min_count=2)


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
