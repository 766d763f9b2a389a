"""Fixtures of the server's tests (helpers live in serve_helpers.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def saved_model(tmp_path_factory):
    """A tiny model with image, audio, IMU and video, saved and loaded back as the server loads it."""
    from anymal.testing import tiny_anymal
    from anymal_serve.engine import load_model

    folder = tmp_path_factory.mktemp("served_model")
    tiny_anymal(("image", "audio", "imu", "video"), apply_chat_template=True).save_pretrained(folder)
    return load_model(str(folder)), folder
