"""Durability: kill -9 while an exporter sends, re-sends after a restart, and a storage outage
absorbed by the write-ahead log (503 once the spool is full, drained when storage returns)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from tests.collector.collector_process import REPO, CollectorProcess, SpanFactory

pytestmark = pytest.mark.e2e  # starts processes

CHAT_COST = Decimal("0.00075")


def _ids(spans) -> list[str]:
    return [format(s.context.span_id, "016x") for s in spans]


def test_kill_9_loses_no_acknowledged_span_and_resends_count_once(tmp_path: Path) -> None:
    collector = CollectorProcess(tmp_path / "data").start()
    factory = SpanFactory()
    batches = [factory.chats(50, tenant="kill") for _ in range(30)]
    acked: list[Any] = []
    exporter = GrpcExporter(endpoint=collector.grpc_endpoint, insecure=True, timeout=60)

    def send() -> None:
        for batch in batches:
            if exporter.export(batch) == SpanExportResult.SUCCESS:
                acked.extend(batch)

    sender = threading.Thread(target=send)
    sender.start()
    while len(acked) < 400 and sender.is_alive():
        time.sleep(0.005)
    collector.kill()  # SIGKILL while the exporter is sending; it retries until we are back
    killed_at = len(acked)
    collector.start()
    sender.join()
    assert killed_at < len(acked)  # some exports were acknowledged only after the restart

    ids = _ids(acked)
    collector.wait_for("SELECT count() FROM v_calls WHERE span_id IN {ids:Array(String)}", len(ids), ids=ids)
    present = collector.scalar("SELECT count() FROM v_calls WHERE tenant_id = 'kill'")
    assert present == collector.scalar("SELECT uniqExact(span_id) FROM v_calls WHERE tenant_id = 'kill'")
    assert (
        collector.scalar("SELECT sum(total_cost) FROM v_calls WHERE tenant_id = 'kill'")
        == present * CHAT_COST
    )

    # re-send everything after a clean restart, once the dedup memory is warmed from the store (in the
    # background: a span sent before is stored once all the same, tests/collector/ingest/test_warm_window.py)
    assert collector.stop() == 0

    def warm_ups() -> int:
        return sum(x.get("msg") == "dedup memory warmed from storage" for x in collector.log_lines())

    earlier = warm_ups()  # the log file holds every start
    collector.start()
    deadline = time.monotonic() + 60
    while warm_ups() == earlier and time.monotonic() < deadline:
        time.sleep(0.1)
    before = collector.metric("deduplicated_spans_total")
    for batch in batches:
        assert exporter.export(batch) == SpanExportResult.SUCCESS
    everything = _ids([s for b in batches for s in b])
    collector.wait_for("SELECT count() FROM v_calls WHERE tenant_id = 'kill'", len(everything))
    assert (
        collector.scalar("SELECT sum(total_cost) FROM v_calls WHERE tenant_id = 'kill'")
        == len(everything) * CHAT_COST
    )
    collector.wait_for("SELECT sum(calls) FROM v_context_costs WHERE tenant_id = 'kill'", len(everything))
    assert collector.metric("deduplicated_spans_total") - before >= present
    assert collector.stop() == 0


# --- storage outage ------------------------------------------------------------------------------


class FlakyStore:
    """A real `Store` with a switchable outage: while `down`, writes fail as a dead server would."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.down = False

    def write(self, calls, steps, *, blocks=None) -> None:
        from tokenbook.collector.storage.store import StoreUnavailable

        if self.down:
            raise StoreUnavailable("connection refused (simulated outage)")
        self.store.write(calls, steps, blocks=blocks)

    def refresh_aggregates(self, *, hourly: bool = True) -> int:
        result: int = self.store.refresh_aggregates(hourly=hourly)
        return result

    def refresh_pending(self) -> bool:
        pending: bool = self.store.refresh_pending()
        return pending


def _post(url: str, body: bytes) -> tuple[int, str | None]:
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/x-protobuf"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, None
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Retry-After")


def outage_scenario(data_dir: str) -> dict[str, Any]:
    """Runs in a child process (one chDB directory per process): real Store, log, writer, receiver."""
    from tokenbook.collector.decode.pool import DecoderPool
    from tokenbook.collector.ingest.dedup import RecentSpanKeys
    from tokenbook.collector.ingest.ingestor import Ingestor
    from tokenbook.collector.ingest.rows import RowBuilder, pipeline_keys
    from tokenbook.collector.metrics import IngestMetrics
    from tokenbook.collector.receive import HttpReceiver
    from tokenbook.collector.storage.store import Store
    from tokenbook.collector.wal.log import WriteAheadLog
    from tokenbook.collector.wal.writer import LedgerWriter
    from tokenbook.genai.pricing.catalog import PriceCatalog

    store = Store.open(data_dir=data_dir)
    store.migrate()
    flaky = FlakyStore(store)
    metrics = IngestMetrics()
    wal = WriteAheadLog(Path(data_dir) / "wal", max_bytes=150_000, segment_bytes=40_000)
    wal.open()
    writer = LedgerWriter(wal, flaky, metrics, max_rows=500, max_delay=0.05)
    writer.start()
    ingestor = Ingestor(
        RowBuilder(PriceCatalog()),
        DecoderPool(pipeline_keys((), "drop"), 0),
        RecentSpanKeys(100_000),
        wal,
        metrics,
        max_inflight_spans=100_000,
        storage_up=lambda: writer.storage_up,
    )
    http = HttpReceiver(ingestor, "127.0.0.1:0", max_request_bytes=1 << 20)
    http.start()
    url = f"http://127.0.0.1:{http.port}/v1/traces"
    factory = SpanFactory()

    flaky.down = True
    accepted, statuses, retry_after = 0, [], None
    for _ in range(500):
        status, retry_after = _post(url, encode_spans(factory.chats(20, tenant="outage")).SerializeToString())
        statuses.append(status)
        if status != 200:
            break
        accepted += 20
        while writer.storage_up:  # the first failed insert marks storage down
            time.sleep(0.01)
    result: dict[str, Any] = {
        "accepted": accepted,
        "last_status": statuses[-1],
        "retry_after": retry_after,
        "rows_during_outage": store.query("SELECT count() FROM llm_calls")[2][0][0],
        "spooled_bytes": wal.pending_bytes,
    }
    flaky.down = False  # storage returns: the log drains
    deadline = time.monotonic() + 60
    while wal.pending_bytes and time.monotonic() < deadline:
        time.sleep(0.05)
    result["after_status"] = _post(url, encode_spans(factory.chats(20, tenant="after")).SerializeToString())[
        0
    ]
    http.stop()
    writer.stop(30)
    wal.close()
    result["rows_after"] = store.query("SELECT count() FROM v_calls WHERE tenant_id = 'outage'")[2][0][0]
    result["total_after"] = str(
        store.query("SELECT sum(total_cost) FROM v_calls WHERE tenant_id = 'outage'")[2][0][0]
    )
    result["insert_failures"] = metrics.snapshot()["insert_failures"]
    store.close()
    return result


def test_storage_outage_is_absorbed_by_the_log_then_503(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, sys; from tests.collector.test_durability import outage_scenario; "
            "print(json.dumps(outage_scenario(sys.argv[1])))",
            str(tmp_path / "data"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["accepted"] >= 100  # the log absorbed a real amount of traffic
    assert result["last_status"] == 503 and result["retry_after"] is not None
    assert result["rows_during_outage"] == 0 and result["spooled_bytes"] > 0
    assert result["insert_failures"] > 0
    assert result["after_status"] == 200
    assert result["rows_after"] == result["accepted"]
    assert Decimal(result["total_after"]) == result["accepted"] * CHAT_COST
