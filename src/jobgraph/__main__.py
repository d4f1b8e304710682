"""``python -m jobgraph`` is the ``jobgraph`` command."""

from .cli import entry

entry()
