"""Fixtures of the receiver tests: a real ingestor over a real write-ahead log, no store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tokenbook.collector.decode.pool import DecoderPool
from tokenbook.collector.ingest.dedup import RecentSpanKeys
from tokenbook.collector.ingest.ingestor import Ingestor
from tokenbook.collector.ingest.rows import RowBuilder, pipeline_keys
from tokenbook.collector.metrics import IngestMetrics
from tokenbook.collector.wal.log import WriteAheadLog
from tokenbook.genai.pricing.catalog import PriceCatalog


@pytest.fixture
def ingestor(tmp_path: Path) -> Iterator[Ingestor]:
    """An `Ingestor` logging to a `WriteAheadLog` in `tmp_path` (decoding in-process, content dropped);
    its rows stay in the log."""
    wal = WriteAheadLog(tmp_path / "wal", max_bytes=1 << 26, segment_bytes=1 << 22)
    wal.open()
    yield Ingestor(
        RowBuilder(PriceCatalog()),
        DecoderPool(pipeline_keys((), "drop"), 0),
        RecentSpanKeys(100_000),
        wal,
        IngestMetrics(),
        max_inflight_spans=100_000,
        storage_up=lambda: True,
    )
    wal.close()
