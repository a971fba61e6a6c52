"""After a restart the receivers serve before the dedup memory is warmed from storage. A span delivered
again in that window is not known to the memory yet: it is logged and stored again, and still counts
once, in the ledger, in its totals and in the budget counters (which check the ledger before counting
a span the memory may have forgotten). Real parts: the ingest path, the write-ahead log, the writer,
the embedded store and the budget evaluator.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

from tests.collector.collector_process import SpanFactory
from tokenbook.collector.budgets import BudgetEvaluator, parse_budgets
from tokenbook.collector.decode.pool import DecoderPool
from tokenbook.collector.ingest.dedup import RecentSpanKeys
from tokenbook.collector.ingest.ingestor import Ingestor
from tokenbook.collector.ingest.rows import RowBuilder, SpanBounds, pipeline_keys
from tokenbook.collector.metrics import IngestMetrics
from tokenbook.collector.storage.store import Store
from tokenbook.collector.wal.log import WriteAheadLog
from tokenbook.collector.wal.writer import LedgerWriter
from tokenbook.genai.pricing.catalog import PriceCatalog

QUOTA = {"name": "daily", "window": "1d", "limit": {"tokens": 10**9}}
CHAT_TOKENS = 150  # SpanFactory.chats: 100 input + 50 output
CHAT_COST = Decimal("0.00075")


@pytest.fixture
def store(migrated_store: Store) -> Store:
    return migrated_store


class _Life(NamedTuple):
    """One run of the collector's ingest path on `store`."""

    ingestor: Ingestor
    writer: LedgerWriter
    wal: WriteAheadLog
    budgets: BudgetEvaluator

    def send(self, body: bytes) -> None:
        self.ingestor.export_protobuf(body)

    def end(self) -> None:
        assert self.writer.stop(30)
        self.wal.close()


def _life(store: Store, spool: Path) -> _Life:
    """A (re)start: a cold dedup memory, the budget counters rebuilt from the ledger."""
    config, problems = parse_budgets({"quotas": [QUOTA]})
    assert problems == []
    budgets = BudgetEvaluator(config, publish=lambda event: None)
    budgets.rebuild(store)
    metrics = IngestMetrics()
    wal = WriteAheadLog(spool, max_bytes=1 << 24, segment_bytes=1 << 20)
    wal.open()
    writer = LedgerWriter(wal, store, metrics, max_rows=500, max_delay=0.05)
    writer.start()
    ingestor = Ingestor(
        RowBuilder(PriceCatalog(), bounds=SpanBounds()),  # the collector's default limits.*
        DecoderPool(pipeline_keys((), "drop"), 0),
        RecentSpanKeys(1000),
        wal,
        metrics,
        max_inflight_spans=1000,
        storage_up=lambda: writer.storage_up,
        on_calls=budgets.observe,
        on_unsure_calls=budgets.defer,
    )
    return _Life(ingestor, writer, wal, budgets)


def _used_tokens(budgets: BudgetEvaluator) -> Any:
    return budgets.status({"tenant": "warm"})["quotas"][0]["used"]["tokens"]


def _ledger(store: Store) -> tuple[Any, ...]:
    sql = (
        "SELECT count(), sum(total_cost), sum(input_tokens + output_tokens) FROM v_calls"
        " WHERE tenant_id = 'warm'"
    )
    return tuple(store.query(sql)[2][0])


def test_a_duplicate_in_the_warm_window_counts_once(store: Store, tmp_path: Path) -> None:
    factory = SpanFactory()
    first = encode_spans(factory.chats(2, tenant="warm")).SerializeToString()
    before = _life(store, tmp_path / "spool-1")
    before.send(first)
    before.end()  # stored
    before.budgets.verify_pending(store)  # counted once the ledger shows it new (as in any start)
    assert _used_tokens(before.budgets) == 2 * CHAT_TOKENS

    after = _life(store, tmp_path / "spool-2")  # the restart: counters rebuilt, memory not warmed yet
    assert _used_tokens(after.budgets) == 2 * CHAT_TOKENS
    after.send(first)  # re-delivered in the warm window: unknown to the memory, logged again
    after.send(encode_spans(factory.chats(1, tenant="warm")).SerializeToString())  # a new span
    assert after.ingestor.metrics.snapshot()["deduplicated_spans"] == 0
    assert after.budgets.unsure_pending == 3  # not counted before the ledger is checked
    assert after.writer.stop(30)  # stored (the duplicate as a second version of the same row)
    assert after.budgets.verify_pending(store) == 3
    assert _used_tokens(after.budgets) == 3 * CHAT_TOKENS  # the duplicate counted once
    assert after.budgets.redelivered == 2
    assert _ledger(store) == (3, 3 * CHAT_COST, 3 * CHAT_TOKENS)

    # The warm-up completes: the memory now knows the stored spans and drops a re-delivery at once.
    now = datetime.now(UTC)
    dedup = after.ingestor.dedup
    assert dedup.warm(store.span_key_slices(now - timedelta(hours=1), now, 100)) == 3
    assert dedup.horizon <= (now - timedelta(hours=1)).timestamp()
    restarted = after.writer.__class__(after.wal, store, after.ingestor.metrics, max_rows=500, max_delay=0.05)
    restarted.start()
    after.send(first)
    assert after.ingestor.metrics.snapshot()["deduplicated_spans"] == 2
    assert restarted.stop(30)
    after.wal.close()
    assert _used_tokens(after.budgets) == 3 * CHAT_TOKENS and after.budgets.unsure_pending == 0
    assert _ledger(store) == (3, 3 * CHAT_COST, 3 * CHAT_TOKENS)


class _WarmsDuringRemember(RecentSpanKeys):
    """The warm-up lands right after a request's keys are remembered, before its budget counting."""

    def __init__(self, store: Store) -> None:
        super().__init__(1000)
        self.store = store

    def remember(self, keys: Iterable[bytes], *, unseen_at: int | None = None) -> list[bytes]:
        added = super().remember(keys, unseen_at=unseen_at)
        now = datetime.now(UTC)
        if len(self) == len(added):  # once
            self.warm(
                self.store.span_key_slices(
                    now - timedelta(hours=3), datetime.fromtimestamp(self.created, UTC), 100
                )
            )
        return added


def test_the_warm_up_landing_mid_request_does_not_count_a_duplicate(store: Store, tmp_path: Path) -> None:
    """Failed before: the horizon was read after `remember`, already lowered by the warm-up, so the
    re-delivered span counted as certainly new."""
    first = encode_spans(SpanFactory().chats(1, tenant="warm")).SerializeToString()
    before = _life(store, tmp_path / "spool-1")
    before.send(first)
    before.end()
    after = _life(store, tmp_path / "spool-2")
    after.ingestor.dedup = _WarmsDuringRemember(store)
    after.send(first)
    assert after.ingestor.dedup.horizon < after.ingestor.dedup.created  # the warm-up landed
    assert after.writer.stop(30)
    after.wal.close()
    after.budgets.verify_pending(store)
    assert _used_tokens(after.budgets) == CHAT_TOKENS  # from the rebuild alone
    assert _ledger(store) == (1, CHAT_COST, CHAT_TOKENS)
