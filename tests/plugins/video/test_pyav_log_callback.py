"""PyAV decoding never deadlocks when PyAV's Python log callback is on.

torchvision 0.24-0.25 turn the callback on at import (``av.logging.set_level(ERROR)``; open_clip imports
torchvision). Freeing a threaded decoder then deadlocked: the main thread held the GIL waiting for the decoder's
worker threads, one of which waited for the GIL inside the callback (seen as a hung test run). The video plugin
turns the callback off while its decoders live and restores the level after.
"""

import subprocess
import sys

from anymal.testing import require_asset

SCRIPT = """
import av, numpy as np
av.logging.set_level(av.logging.ERROR)  # what importing torchvision 0.24 does
from anymal_video.reader import load_video
path = {path!r}
for _ in range(30):
    load_video(path, lambda t, f: np.array([3, 200, 300]), decoder="pyav")
    load_video(open(path, "rb").read(), lambda t, f: np.array([3, 200, 300]), decoder="pyav", stream_index=3)
print("level", av.logging.get_level())
"""


def test_decoding_with_the_log_callback_on_finishes_and_restores_the_level():
    clip = require_asset("video/nasa_13013.mp4")
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(path=str(clip))], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().endswith("level 16")  # av.logging.ERROR, as the caller set it
