"""Sample outputs in the docs, checked against what the commands print (`shows`)."""

from __future__ import annotations

import re

__all__ = ["shows"]

_ELIDED = frozenset({"...", "…"})


def shows(shown: str, printed: str) -> bool:
    """Whether each line of `shown` is, in order, a line of `printed` (whitespace aside; a word ``...``
    stands for any text, a line of only ``...`` for lines left out)."""
    lines = iter(printed.splitlines())
    for line in shown.splitlines():
        words = line.split()
        if not words or set(words) <= _ELIDED:
            continue
        pattern = re.compile(r"\s+".join(".*" if w in _ELIDED else re.escape(w) for w in words))
        if not any(pattern.fullmatch(out.strip()) for out in lines):
            return False
    return True
