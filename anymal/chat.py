"""``python -m anymal.chat --model DIR``: a terminal chat with a saved model (as ``python -m anymal chat``).

The chat belongs to the serving application (``anymal_serve.chat``); this module only forwards to the command
line, which imports it when the command runs.
"""

from __future__ import annotations

import sys

from anymal.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["chat", *sys.argv[1:]]))
