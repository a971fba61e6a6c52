"""The docs name every public name: the processor's (`tokenbook.processor.__all__`,
docs/guide/processor.md), the collector's (`tokenbook.collector.__all__`, docs/guide/collector.md),
every public method of the store (`Store`, the "Python API" section of
docs/reference/schema.md) and every metric of the collector's ingest (docs/guide/collector.md). A name
added without its line fails here."""

from __future__ import annotations

import re
from pathlib import Path

import tokenbook.collector
import tokenbook.processor
from tokenbook.collector import metrics
from tokenbook.collector.storage.store import Store

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _missing(names: list[str], text: str) -> list[str]:
    return [name for name in names if re.search(rf"\b{re.escape(name)}\b", text) is None]


def test_the_processor_guide_names_every_public_name() -> None:
    guide = (DOCS / "guide" / "processor.md").read_text(encoding="utf-8")
    assert _missing(list(tokenbook.processor.__all__), guide) == []


def test_the_collector_guide_names_every_public_name() -> None:
    guide = (DOCS / "guide" / "collector.md").read_text(encoding="utf-8")
    section = guide.split("### From Python", 1)[1].split("\n## ", 1)[0]
    assert _missing(list(tokenbook.collector.__all__), section) == []


def test_the_store_api_names_every_public_method() -> None:
    schema = (DOCS / "reference" / "schema.md").read_text(encoding="utf-8")
    section = schema.split("## Python API", 1)[1].split("\n## ", 1)[0]
    public = [name for name in dir(Store) if not name.startswith("_")]
    assert len(public) > 20 and _missing(public, section) == []


def test_the_collector_guide_names_every_collector_metric() -> None:
    """Each counter and latency summary of `IngestMetrics` is in the admin API's `/metrics` row of
    docs/guide/collector.md (written out, or as its ``_<name>`` suffix after the first)."""
    guide = (DOCS / "guide" / "collector.md").read_text(encoding="utf-8")
    names = [f"{name}_total" for name in metrics._COUNTERS] + list(metrics._SUMMARIES)
    missing = [n for n in names if f"tokenbook_collector_{n}" not in guide and f"`_{n}`" not in guide]
    assert len(names) > 20 and missing == []
