"""A collector whose ClickHouse server is down at start: it serves anyway, and catches up once it answers.

The real collector process points at a port where nothing listens yet; spans are acknowledged into the
write-ahead log while ``/readyz`` answers 503 with the reason. Then the ClickHouse HTTP test server
(`tests/clickhouse_http`) starts on that port: the collector connects, migrates, drains the log (each
span stored once) and ``/readyz`` turns 200.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from tests.clickhouse_http.fixture import ClickHouseHTTPProcess
from tests.collector.collector_process import CollectorProcess, SpanFactory, free_port
from tokenbook.collector.storage.store import Store

pytestmark = pytest.mark.server

CHAT_COST = Decimal("0.00075")  # gpt-4o: 100 x $2.50/M + 50 x $10/M (tests/genai/test_golden_prices.py)


def _get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _wait_ready(collector: CollectorProcess, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    status, doc = _get(collector.admin_url + "/readyz")
    while status != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
        status, doc = _get(collector.admin_url + "/readyz")
    assert status == 200, f"/readyz still {status} {doc}:\n{collector.log()}"
    return doc


def test_collector_starts_without_its_server_and_drains_once_it_answers(tmp_path: Path) -> None:
    port = free_port()  # nothing listens here until the server starts below
    url = f"http://default@127.0.0.1:{port}"
    database = f"tb_late_{uuid.uuid4().hex[:8]}"
    collector = CollectorProcess(
        tmp_path / "data", storage={"clickhouse": {"url": url, "database": database}}
    ).start()
    server: ClickHouseHTTPProcess | None = None
    try:
        assert _get(collector.admin_url + "/healthz") == (200, {"status": "ok"})
        status, doc = _get(collector.admin_url + "/readyz")
        assert status == 503
        assert doc["reason"].startswith("storage unreachable: ") and doc["reason"].endswith("; retrying")
        assert "127.0.0.1" in doc["reason"]

        spans = SpanFactory()
        acme, globex = spans.chats(20, tenant="acme"), spans.chats(10, tenant="globex")
        http = HttpExporter(endpoint=collector.http_url)
        assert http.export(acme) == SpanExportResult.SUCCESS  # a 200: acknowledged into the log
        assert http.export(acme[:5]) == SpanExportResult.SUCCESS  # re-delivered: stored once
        http.shutdown()
        grpc = GrpcExporter(endpoint=collector.grpc_endpoint, insecure=True)
        assert grpc.export(globex) == SpanExportResult.SUCCESS
        grpc.shutdown()
        assert collector.metric("spooled_bytes") > 0
        assert _get(collector.admin_url + "/readyz")[0] == 503  # still nothing on the port

        server = ClickHouseHTTPProcess(tmp_path / "clickhouse", port=port).start()
        assert server.port == port
        _wait_ready(collector, timeout=60)
        collector.wait_for("SELECT count() FROM v_calls", 30, timeout=60)
        collector.wait_for("SELECT sum(calls) FROM v_context_costs", 30, timeout=60)
        assert collector.metric("spooled_bytes") == 0
        messages = [line["msg"] for line in collector.log_lines()]
        assert "storage is up; draining the write-ahead log" in messages
    finally:
        code = collector.stop()
        if server is not None:
            try:
                with Store.open(server.url, database=database) as store:
                    _, _, rows = store.query(
                        "SELECT tenant_id, count(), uniqExact(trace_id, span_id), sum(total_cost)"
                        " FROM llm_calls FINAL GROUP BY tenant_id ORDER BY 1"
                    )
            finally:
                server.stop()
    assert code == 0
    assert rows == [("acme", 20, 20, 20 * CHAT_COST), ("globex", 10, 10, 10 * CHAT_COST)]
