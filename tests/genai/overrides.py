"""A price override file for the tests that price what the catalog leaves unpriced."""

from __future__ import annotations

from pathlib import Path


def override_file(folder: Path, *, entry: str, provider: str, model: str, source: str) -> Path:
    """A price override file in `folder` with one entry, `entry`, pricing `model` of `provider` at
    0.15 / 0.60 per million input / output tokens, its source `source`."""
    path = folder / "prices.yaml"
    path.write_text(
        "models:\n"
        f"  - id: {entry}\n"
        f"    model: {model}\n"
        f"    provider: {provider}\n"
        f"    source: {source}\n"
        "    checked: 2026-10-01\n"
        "    prices: {input_mtok: '0.15', output_mtok: '0.60'}\n",
        encoding="utf-8",
    )
    return path
