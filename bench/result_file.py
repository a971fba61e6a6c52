"""A benchmark's result: the JSON file it writes under `bench/results/` and what it prints."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["write_result"]


def write_result(path: Path, report: Mapping[str, Any], shown: Any) -> None:
    """Write `report` to `path` as indented JSON (its folder made if needed) and print `shown` so."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(shown, indent=2))
