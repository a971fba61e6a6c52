"""`tokenbook report --context` and `tokenbook reprice` against a running collector process.

The collector owns the embedded store, so both commands go through its admin API: `report` as a
read-only query, `reprice` as `POST /v1/reprice`, after which the collector prices with the edited
overrides file too. Spans arrive through the official OTLP/HTTP exporter.
"""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from tests.collector.collector_process import REPO, CollectorProcess, SpanFactory

pytestmark = pytest.mark.e2e  # starts processes

MODEL = "tokenbook-test-llm"  # priced only by the overrides file
PRICES = """models:
  - id: test-llm
    model: {model}
    source: "test price sheet"
    checked: 2026-11-01
    prices: {{input_mtok: "{input}", output_mtok: "{output}"}}
"""


def _prices(path: Path, input_mtok: str, output_mtok: str) -> None:
    path.write_text(PRICES.format(model=MODEL, input=input_mtok, output=output_mtok), encoding="utf-8")


def _cost(input_mtok: str, output_mtok: str, calls: int) -> Decimal:
    """`calls` SpanFactory chats (100 input, 50 output tokens each) at these prices."""
    return calls * (100 * Decimal(input_mtok) + 50 * Decimal(output_mtok)) / 1_000_000


def _tokenbook(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tokenbook", *args], capture_output=True, text=True, cwd=REPO, timeout=120
    )


def _send(collector: CollectorProcess, spans: list) -> None:
    exporter = OTLPSpanExporter(endpoint=collector.http_url)
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    exporter.shutdown()


@pytest.fixture
def collector(tmp_path: Path):
    overrides = tmp_path / "prices.yaml"
    _prices(overrides, "1.00", "2.00")
    c = CollectorProcess(tmp_path / "data", pricing={"overrides": str(overrides)}).start()
    try:
        yield c, overrides
    finally:
        if c.proc is not None:
            c.stop()


def test_report_context_and_reprice_through_the_running_collector(collector) -> None:
    c, overrides = collector
    factory = SpanFactory()
    spans = factory.chats(14, tenant="acme", model=MODEL)  # contexts ctx-acme-0 .. ctx-acme-6, 2 calls each
    _send(c, spans)
    c.wait_for("SELECT count() FROM v_calls", 14)
    c.wait_for("SELECT sum(calls) FROM v_context_costs", 14)

    report = _tokenbook(
        "report", "--context", "ctx-acme-3", "--format", "json", "--data-dir", str(c.data_dir)
    )
    assert report.returncode == 0, report.stderr
    rows = [json.loads(line) for line in report.stdout.splitlines()]
    assert len(rows) == 2
    assert [r["timestamp"] for r in rows] == sorted(r["timestamp"] for r in rows)  # in time order
    assert sum(Decimal(r["total_cost"]) for r in rows) == _cost("1.00", "2.00", 2)

    _prices(overrides, "3.00", "4.00")  # the negotiated price changed
    done = _tokenbook("reprice", "--since", "1h", "--data-dir", str(c.data_dir))
    assert done.returncode == 0, done.stderr
    assert "re-priced 14 of 14 calls" in done.stdout
    again = _tokenbook("reprice", "--since", "1h", "--data-dir", str(c.data_dir))
    assert "re-priced 0 of 14 calls" in again.stdout  # nothing double counted

    assert c.scalar("SELECT sum(total_cost) FROM v_calls") == _cost("3.00", "4.00", 14)
    c.wait_for("SELECT sum(total_cost) FROM v_context_costs", _cost("3.00", "4.00", 14))
    _send(c, factory.chats(1, tenant="globex", model=MODEL))  # new calls use the reloaded prices
    c.wait_for("SELECT sum(total_cost) FROM v_calls WHERE tenant_id = 'globex'", _cost("3.00", "4.00", 1))

    refused = _tokenbook(
        "reprice", "--since", "1h", "--overrides", str(overrides), "--data-dir", str(c.data_dir)
    )
    assert refused.returncode == 1 and "edit that file" in refused.stderr
