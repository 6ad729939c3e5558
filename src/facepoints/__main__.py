"""`python -m facepoints VERB ...`: the same as the `facepoints` command."""

import sys

from .cli import main

sys.exit(main())
