"""Hypothesis profiles: `fast`, the default (the inner loop: a fifth of each property's examples), and
`ci`, the full example counts (`make test` passes ``--hypothesis-profile=ci``; also
``HYPOTHESIS_PROFILE=ci``). Importing this module registers them (`tests/conftest.py` imports it
before ``--hypothesis-profile`` is applied).

A property states its full count with `examples(n)`: ``@settings(max_examples=examples(400))`` runs
400 examples under `ci` and 80 under `fast`. A property without a count runs Hypothesis' default
(100) under `ci` and 20 under `fast`.
"""

from __future__ import annotations

import os
from typing import Final

from hypothesis import settings

__all__ = ["CI", "FAST", "examples"]

CI: Final = "ci"
FAST: Final = "fast"
_FULL: Final = 100  # Hypothesis' default max_examples: the `ci` profile's, the scale of `examples`


def _register() -> None:
    """Register both profiles and load `$HYPOTHESIS_PROFILE` (default `fast`); pytest's
    ``--hypothesis-profile`` then loads the one it names."""
    settings.register_profile(CI, max_examples=_FULL)
    settings.register_profile(FAST, max_examples=_FULL // 5)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", FAST))


def examples(full: int) -> int:
    """`full` under the `ci` profile, in proportion under another (at least 1)."""
    return max(1, full * settings().max_examples // _FULL)  # settings(): the loaded profile's


_register()
