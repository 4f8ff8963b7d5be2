"""``python -m clipsim.cli``: the same as the ``clipsim`` console script."""

from clipsim.cli import entry

entry()
