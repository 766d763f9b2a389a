"""Whether progress bars are wanted: tqdm's own ``TQDM_DISABLE`` switch, honoured where we pass ``disable=``.

tqdm reads ``TQDM_DISABLE`` only for arguments the caller leaves unset; our bars set ``disable`` (off on non-main
ranks, or when a caller asks for no progress), so they consult this too. ``--no-progress`` runs (logs, CI) set it.
"""

from __future__ import annotations

import os


def bars_disabled_by_env() -> bool:
    """True when ``TQDM_DISABLE`` is set to something other than empty, 0 or false."""
    return os.environ.get("TQDM_DISABLE", "").strip().lower() not in ("", "0", "false", "no")
