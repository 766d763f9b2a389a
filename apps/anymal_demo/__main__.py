"""``python -m anymal_demo [--quick] [--out DIR] [key=value ...]``: the same as ``python -m anymal demo``."""

import sys

from anymal_demo.cli import main

if __name__ == "__main__":
    sys.exit(main())
