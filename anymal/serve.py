"""``python -m anymal.serve --model DIR``: the OpenAI-compatible server (the same as ``python -m anymal serve``).

The server is an application (``anymal_serve``) on top of the library; this module only forwards to the
command line, which imports it when the command runs.
"""

from __future__ import annotations

import sys

from anymal.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
