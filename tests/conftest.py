"""Shared fixtures: every test runs with a fresh event loop and leaves no child behind."""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(__file__)
if HERE not in sys.path:
    # Worker processes import test helpers by module name (spawn start method).
    sys.path.insert(0, HERE)
