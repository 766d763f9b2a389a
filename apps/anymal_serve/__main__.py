"""``python -m anymal_serve --model DIR [--host 127.0.0.1 --port 8000]``: the same as ``python -m anymal serve``."""

import sys

from anymal_serve.cli import main

if __name__ == "__main__":
    sys.exit(main())
