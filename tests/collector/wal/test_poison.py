"""One poison row never stops the ledger.

* Spans out of bounds (``limits.max_tokens_per_call``, ``limits.max_span_age``,
  ``limits.max_span_future``, a cost beyond ``Decimal(18, 12)``) are rejected before the
  acknowledgement, in ``partial_success``.
* The writer splits batches by partition month, so a request spanning 101 months is stored.
* A row that storage still refuses is isolated (bisection) and quarantined; the rows around it, and
  every row after it, reach the ledger, also after a restart.
"""

from __future__ import annotations

import time
import urllib.request
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tests.collector.collector_process import CollectorProcess, SpanFactory
from tokenbook.collector.decode.spans import SpanRecord
from tokenbook.collector.ingest.rows import RowBuilder, SpanBounds
from tokenbook.collector.metrics import IngestMetrics
from tokenbook.collector.storage.ledger import CallRow
from tokenbook.collector.storage.rowcodec import encode_record
from tokenbook.collector.storage.store import Store
from tokenbook.collector.wal.log import WriteAheadLog
from tokenbook.collector.wal.writer import LedgerWriter
from tokenbook.genai.pricing.catalog import PriceCatalog

NOW = datetime.now(UTC)


# --- bounds before the acknowledgement ---------------------------------------------------------------


def _span(start: datetime, **usage: int) -> SpanRecord:
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.input_tokens": usage.get("input", 100),
        "gen_ai.usage.output_tokens": usage.get("output", 50),
        "tenant.id": "acme",
    }
    start_ns = int(start.timestamp() * 1e9)
    return SpanRecord(
        b"\x01" * 16, start_ns.to_bytes(8, "big"), b"", "chat gpt-4o", start_ns, start_ns + 1_000_000,
        False, "svc", attrs, "",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("span", "why"),
    [
        (_span(NOW, output=10**11), "limits.max_tokens_per_call=100000000"),
        (_span(NOW - timedelta(days=31)), "limits.max_span_age"),
        (_span(NOW + timedelta(hours=2)), "limits.max_span_future"),
    ],
    ids=["tokens", "too-old", "future"],
)
def test_out_of_bounds_spans_are_rejected_with_the_reason(span: SpanRecord, why: str) -> None:
    builder = RowBuilder(PriceCatalog(), bounds=SpanBounds())
    good = _span(NOW - timedelta(days=29))
    batch = builder.build([span, good])
    assert batch.rejected == 1 and why in batch.reason
    assert [c.span_id for c in batch.calls] == [good.span_id.hex()]
    assert batch.rejected_keys == (span.trace_id + span.span_id,)


def test_backfill_accepts_old_spans_but_not_future_ones() -> None:
    builder = RowBuilder(PriceCatalog(), bounds=SpanBounds(max_span_age=0))
    batch = builder.build([_span(NOW - timedelta(days=3650)), _span(NOW + timedelta(days=1))])
    assert len(batch.calls) == 1 and batch.rejected == 1


def test_a_cost_beyond_decimal_18_12_is_rejected(tmp_path: Path) -> None:
    overrides = tmp_path / "overrides.yaml"
    overrides.write_text(
        "models:\n  - id: absurd\n    model: gpt-4o\n    provider: openai\n    source: test\n"
        '    checked: 2026-01-01\n    prices:\n      input_mtok: "2000000000"\n      output_mtok: "1"\n',
        encoding="utf-8",
    )
    builder = RowBuilder(PriceCatalog(overrides), bounds=SpanBounds())
    batch = builder.build([_span(NOW, input=10**6), _span(NOW - timedelta(seconds=1), input=1)])
    assert [c.total_cost for c in batch.calls] == [Decimal("2000.000050000000")]  # 1 input + 50 output tokens
    assert batch.rejected == 1 and "Decimal(18, 12)" in batch.reason


def test_the_default_token_bound_fits_decimal_18_12_at_the_most_expensive_catalog_price() -> None:
    from genai_prices.data_snapshot import get_snapshot

    def top(value: Any) -> Decimal:
        if value is None:
            return Decimal(0)
        if isinstance(value, int | float | Decimal):
            return Decimal(str(value))
        tiers = [Decimal(str(t.price)) for t in getattr(value, "tiers", [])]
        return max([top(getattr(value, "base", None)), *tiers])

    worst = Decimal(0)
    for provider in get_snapshot().providers:
        for model in provider.models:
            for price in model.prices if isinstance(model.prices, list) else [model.prices]:
                p = getattr(price, "prices", price)
                inputs = ("input_mtok", "cache_read_mtok", "cache_write_mtok", "input_audio_mtok")
                outputs = ("output_mtok", "output_audio_mtok")
                per_mtok = max(top(getattr(p, k, None)) for k in inputs) + max(
                    top(getattr(p, k, None)) for k in outputs
                )
                worst = max(worst, per_mtok)
    assert worst > 0
    # input-side tokens and output tokens each at most the bound: cost <= bound * (input + output price)
    assert SpanBounds().max_tokens_per_call * worst / 10**6 < Decimal(10) ** 6


# --- the writer: partitions, refused rows, quarantine --------------------------------------------------


def _call(tenant: str, i: int, when: datetime = NOW, **changes: Any) -> CallRow:
    cost = Decimal("0.000750000000")
    row = CallRow(
        when, f"{i:032x}", f"{i:016x}", "", f"ctx-{tenant}", "", "", tenant, "", "", "", "", "svc", {},
        "openai", "gpt-4o", "chat", 100, 50, 0, 0, 0, Decimal("0.000250000000"), Decimal("0.000500000000"),
        Decimal(0), Decimal(0), cost, "USD", "priced", "test", None, "", 0, "ok", "", 1.0, NOW, 1,
    )  # fmt: skip
    return row._replace(**changes)


POISON: dict[str, Any] = {
    "output_cost": Decimal("10000000.000000000000"),
    "total_cost": Decimal("10000000.000000000000"),
}


class _Running:
    """A store (its own database in the process's one chDB directory), a log and a writer."""

    def __init__(self, chdb_dir: Path, database: str, root: Path, max_bytes: int = 32 << 20) -> None:
        self.store = Store.open(data_dir=chdb_dir, database=database)
        self.store.migrate()  # as the collector does at each start
        self.wal = WriteAheadLog(root / "wal", max_bytes=1 << 26, segment_bytes=1 << 20)
        self.wal.open()
        self.metrics = IngestMetrics()
        self.writer = LedgerWriter(
            self.wal, self.store, self.metrics, max_rows=1000, max_delay=0.05, max_bytes=max_bytes
        )

    def log(self, *calls: CallRow) -> None:
        self.wal.append(*encode_record(list(calls), []))

    def count(self, tenant: str) -> int:
        sql = "SELECT count() FROM llm_calls FINAL WHERE tenant_id = {t:String}"
        return int(self.store.query(sql, {"t": tenant})[2][0][0])

    def wait(self, tenant: str, n: int, timeout: float = 20.0) -> None:
        """Wait until the writer has taken every record logged so far (inserted or quarantined: the log
        commits a record after that), then check `tenant`'s rows."""
        deadline = time.monotonic() + timeout
        while self.wal.pending_bytes:
            assert time.monotonic() < deadline, f"{self.wal.pending_bytes} bytes still in the log"
            time.sleep(0.01)
        assert self.count(tenant) == n

    def stop(self) -> None:
        if self.writer._thread.ident is not None:  # started
            self.writer.stop(drain_timeout=1.0)
            # The last refresh may outlast the drain's deadline (a slow host): wait for it, or it writes
            # into the database after the test gave it back.
            self.writer.refresher.stop(60)
        self.wal.close()
        self.store.close()


def test_a_refused_row_is_quarantined_and_the_ledger_goes_on_also_after_a_restart(
    tmp_path: Path, chdb_dir: Path, migrated_database: str
) -> None:
    run = _Running(chdb_dir, migrated_database, tmp_path)
    run.log(_call("poison", 1, **POISON), _call("victim", 2))  # one record: the poison shares the insert
    run.log(_call("victim", 3))
    months = [datetime(2015 + m // 12, 1 + m % 12, 15, tzinfo=UTC) for m in range(101)]
    run.log(*[_call("backfill", 100 + m, when) for m, when in enumerate(months)])
    run.writer.start()
    run.wait("victim", 2)
    run.wait("backfill", 101)
    assert run.count("poison") == 0
    (entry,) = run.store.query(
        "SELECT table_name, tenant_id, span_id, error_code, state FROM quarantine FINAL"
    )[2]
    assert entry == ("llm_calls", "poison", f"{1:016x}", 69, "quarantined")
    assert run.metrics.snapshot()["quarantined_rows"] == 1
    run.log(_call("victim", 4))
    run.wait("victim", 3)
    assert run.wal.pending_bytes == 0
    run.stop()

    # restart: nothing left to replay, and the ledger still moves
    again = _Running(chdb_dir, migrated_database, tmp_path)
    again.writer.start()
    again.log(_call("poison", 5, **POISON))
    again.log(_call("victim", 6))
    again.wait("victim", 4)
    assert again.store.query("SELECT count() FROM quarantine FINAL")[2][0][0] == 2
    again.stop()


def test_a_record_across_101_months_is_inserted_by_partition_groups(
    tmp_path: Path, chdb_dir: Path, migrated_database: str
) -> None:
    run = _Running(chdb_dir, migrated_database, tmp_path)
    months = [datetime(2015 + m // 12, 1 + m % 12, 15, tzinfo=UTC) for m in range(101)]
    run.log(*[_call("backfill", m, when) for m, when in enumerate(months)])
    run.log(_call("victim", 1000))
    run.writer.start()
    run.wait("victim", 1)
    run.wait("backfill", 101)
    assert run.metrics.snapshot()["insert_failures"] == 0  # split before inserting, never refused
    run.store.refresh_aggregates()  # the 101 hours: cost_hourly is partitioned by month too
    hourly = "SELECT sum(calls) FROM v_cost_hourly WHERE tenant_id = 'backfill'"
    assert run.store.query(hourly)[2][0][0] == 101
    run.stop()


def test_a_batch_ends_at_the_record_that_reaches_max_bytes(
    tmp_path: Path, chdb_dir: Path, migrated_database: str
) -> None:
    # storage.batch.max_bytes: 10 records of 20 calls, logged before the writer starts; a batch holds
    # the records until one brings it to 2 records' bytes, so 5 inserts instead of 1 (max_rows: 1000)
    size = len(encode_record([_call("bounded", i) for i in range(20)], [])[1].call_block)
    run = _Running(chdb_dir, migrated_database, tmp_path, max_bytes=2 * size - 1)
    for r in range(10):
        run.log(*[_call("bounded", 20 * r + i) for i in range(20)])
    run.writer.start()
    run.wait("bounded", 200)
    assert run.metrics.snapshot()["insert_seconds_count"] == 5
    run.stop()


def test_a_record_this_version_cannot_decode_is_set_aside(
    tmp_path: Path, chdb_dir: Path, migrated_database: str
) -> None:
    first = _Running(chdb_dir, migrated_database, tmp_path)
    first.wal.append(b"\x00not a row payload")  # e.g. written by another version
    first.log(_call("victim", 1))
    first.stop()
    again = _Running(chdb_dir, migrated_database, tmp_path)
    again.writer.start()
    again.wait("victim", 1)
    assert again.metrics.snapshot()["undecodable_records"] == 1
    (kept,) = (tmp_path / "wal" / "undecodable").iterdir()
    assert kept.read_bytes() == b"\x00not a row payload"
    again.stop()


def test_a_poison_left_in_the_log_does_not_block_the_next_start(
    tmp_path: Path, chdb_dir: Path, migrated_database: str
) -> None:
    first = _Running(chdb_dir, migrated_database, tmp_path)
    first.log(_call("poison", 1, **POISON))  # logged (and acknowledged) before the restart, never inserted
    first.log(_call("victim", 2))
    first.stop()
    again = _Running(chdb_dir, migrated_database, tmp_path)
    again.writer.start()
    again.wait("victim", 1)
    again.stop()


# --- end to end: the real collector ----------------------------------------------------------------------


def _export(collector: CollectorProcess, spans: list[Any]) -> ExportTraceServiceResponse:
    body = encode_spans(spans).SerializeToString()
    request = urllib.request.Request(
        collector.http_url, data=body, headers={"Content-Type": "application/x-protobuf"}
    )
    with urllib.request.urlopen(request, timeout=30) as r:
        response: ExportTraceServiceResponse = ExportTraceServiceResponse.FromString(r.read())
    return response


@pytest.mark.e2e  # starts a process
def test_a_poison_span_is_rejected_and_the_victim_tenant_is_stored_also_after_a_restart(
    tmp_path: Path,
) -> None:
    collector = CollectorProcess(tmp_path / "data").start()
    factory = SpanFactory()
    try:
        huge: dict[str, Any] = {"gen_ai.usage.output_tokens": 10**11}
        poison = _export(collector, factory.chats(1, tenant="poison", **huge))
        assert poison.partial_success.rejected_spans == 1
        assert "limits.max_tokens_per_call" in poison.partial_success.error_message
        victim = factory.chats(1, tenant="victim")
        assert _export(collector, victim).partial_success.rejected_spans == 0
        collector.wait_for("SELECT count() FROM v_calls WHERE tenant_id = 'victim'", 1, timeout=20)
        assert collector.stop() == 0
        collector.start()
        assert _export(collector, factory.chats(1, tenant="victim")).partial_success.rejected_spans == 0
        collector.wait_for("SELECT count() FROM v_calls WHERE tenant_id = 'victim'", 2, timeout=20)
        assert collector.scalar("SELECT count() FROM v_calls WHERE tenant_id = 'poison'") == 0
    finally:
        if collector.proc is not None:
            collector.stop()


@pytest.mark.e2e  # starts a process
def test_a_backfill_across_101_months_is_stored(tmp_path: Path) -> None:
    collector = CollectorProcess(tmp_path / "data", limits={"max_span_age": 0}).start()
    factory = SpanFactory()
    try:
        for m in range(101):
            start = int(datetime(2015 + m // 12, 1 + m % 12, 15, tzinfo=UTC).timestamp() * 1e9)
            span = factory.tracer.start_span("chat gpt-4o", start_time=start, attributes={
                "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 100,
                "gen_ai.usage.output_tokens": 50, "tenant.id": "backfill",
            })  # fmt: skip
            span.end(end_time=start + 1_000_000)
        assert _export(collector, factory.take()).partial_success.rejected_spans == 0  # one request
        assert _export(collector, factory.chats(1, tenant="victim")).partial_success.rejected_spans == 0
        collector.wait_for("SELECT count() FROM v_calls WHERE tenant_id = 'victim'", 1, timeout=20)
        collector.wait_for("SELECT count() FROM v_calls WHERE tenant_id = 'backfill'", 101, timeout=20)
    finally:
        collector.stop()


# --- tokenbook quarantine list|replay --------------------------------------------------------------------

_SEED = """
import sys
from pathlib import Path
from tests.collector.wal.test_poison import POISON, _call
from tokenbook.collector.storage.store import Store, quarantine_entry
with Store.open(data_dir=Path(sys.argv[1])) as store:
    store.migrate()
    store.quarantine([
        quarantine_entry("llm_calls", _call("fixed", 1), 252, "Too many partitions"),
        quarantine_entry("llm_calls", _call("poison", 2, **POISON), 69, "Decimal value is too big"),
    ])
"""


@pytest.mark.e2e  # starts a process
def test_quarantine_cli_lists_and_replays(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    from tests.collector.collector_process import REPO

    data = tmp_path / "data"
    subprocess.run([sys.executable, "-c", _SEED, str(data)], cwd=REPO, check=True, timeout=120)

    def rows(out: str) -> list[dict[str, Any]]:  # one JSON object a line
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tokenbook", "quarantine", *args, "--data-dir", str(data)],
            cwd=REPO, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    listed = cli("list", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    assert sorted(r["tenant_id"] for r in rows(listed.stdout)) == ["fixed", "poison"]
    replay = cli("replay")
    assert replay.returncode == 3 and "replayed 1 row(s); 1 still refused" in replay.stdout
    after = rows(cli("list", "--format", "json").stdout)
    assert [(r["tenant_id"], r["error_code"]) for r in after] == [("poison", 69)]
    everything = rows(cli("list", "--all", "--format", "json").stdout)
    assert {r["tenant_id"]: r["state"] for r in everything} == {"fixed": "replayed", "poison": "quarantined"}
