"""The Python API in the docs names every public name: the processor's (`tokenbook.processor.__all__`,
docs/guide/processor.md) and every public method of the store (`Store`, the "Python API" section of
docs/reference/schema.md). A name added without its line fails here."""

from __future__ import annotations

import re
from pathlib import Path

import tokenbook.processor
from tokenbook.collector.storage.store import Store

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _missing(names: list[str], text: str) -> list[str]:
    return [name for name in names if re.search(rf"\b{re.escape(name)}\b", text) is None]


def test_the_processor_guide_names_every_public_name() -> None:
    guide = (DOCS / "guide" / "processor.md").read_text(encoding="utf-8")
    assert _missing(list(tokenbook.processor.__all__), guide) == []


def test_the_store_api_names_every_public_method() -> None:
    schema = (DOCS / "reference" / "schema.md").read_text(encoding="utf-8")
    section = schema.split("## Python API", 1)[1].split("\n## ", 1)[0]
    public = [name for name in dir(Store) if not name.startswith("_")]
    assert len(public) > 20 and _missing(public, section) == []
