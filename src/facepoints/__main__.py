"""`python -m facepoints VERB ...`: the same as the `facepoints` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
