"""``python -m clipsim.cli``: the same as the ``clipsim`` console script."""

import sys

from clipsim.cli import main

sys.exit(main())
