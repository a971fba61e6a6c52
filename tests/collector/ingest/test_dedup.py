"""The dedup memory keys spans by tenant too: storage keeps one row per (tenant, trace, span)."""

from __future__ import annotations

from pathlib import Path

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

from tests.collector.collector_process import SpanFactory
from tokenbook.collector.decode.pool import DecoderPool
from tokenbook.collector.ingest.dedup import RecentSpanKeys
from tokenbook.collector.ingest.ingestor import Ingestor
from tokenbook.collector.ingest.rows import RowBuilder, pipeline_keys
from tokenbook.collector.metrics import IngestMetrics
from tokenbook.collector.wal.log import WriteAheadLog
from tokenbook.genai.pricing.catalog import PriceCatalog


def test_the_same_span_ids_from_two_tenants_are_both_kept(tmp_path: Path) -> None:
    """Failed before: tenant B's span was dropped as a duplicate of tenant A's."""
    wal = WriteAheadLog(tmp_path / "wal", max_bytes=1 << 24, segment_bytes=1 << 20)
    wal.open()
    calls: list[str] = []
    ingestor = Ingestor(
        RowBuilder(PriceCatalog()),
        DecoderPool(pipeline_keys((), "drop"), 0),
        RecentSpanKeys(1000),
        wal,
        IngestMetrics(),
        max_inflight_spans=1000,
        storage_up=lambda: True,
        on_calls=lambda batch: calls.extend(c.tenant_id for c in batch),
    )
    try:
        request = encode_spans(SpanFactory().chats(1, tenant="a"))
        ingestor.export_protobuf(request.SerializeToString())
        ingestor.export_protobuf(request.SerializeToString())  # a re-delivery: dropped
        ingestor.export_protobuf(request.SerializeToString(), tenant="b")  # same IDs, another tenant
        assert calls == ["a", "b"]
        assert ingestor.metrics.snapshot()["deduplicated_spans"] == 1
    finally:
        wal.close()


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_the_horizon_follows_the_warm_up_and_the_evictions() -> None:
    clock = _Clock(1000.0)
    keys = RecentSpanKeys(4, clock=clock)
    assert keys.horizon == 1000.0  # nothing logged before creation is known
    keys.known_since(400.0)  # the warm-up read the spans logged since 400
    assert keys.horizon == 400.0
    keys.remember([b"a", b"b"])  # logged at 1000
    clock.now = 1001.5
    keys.remember([b"c", b"d"])  # logged at 1001
    assert keys.horizon == 400.0  # nothing evicted yet
    clock.now = 1005.2
    keys.remember([b"e"])  # evicts "a", logged in second 1000: only from 1001 on is everything known
    assert keys.horizon == 1001.0 and b"a" not in keys
    keys.remember([b"f"])  # evicts "b" (second 1000 too)
    assert keys.horizon == 1001.0
    keys.remember([b"g"])  # evicts "c", logged in second 1001
    assert keys.horizon == 1002.0
