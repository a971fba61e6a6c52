"""`tokenbook collector` ends with exit code 0 after a clean stop, every time.

The embedded engine tears itself down at interpreter exit; after the collector had stopped (drained,
its store closed, its logs written), that teardown sometimes crashed the process with SIGSEGV, so a
clean stop read as a crash (exit -11) to the test, to systemd and to Kubernetes. Spans arrive through
the official OTLP/HTTP exporter; the collector is started and stopped several times, as one stop in a
few crashed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from tests.collector.collector_process import CollectorProcess, SpanFactory

pytestmark = pytest.mark.e2e  # starts processes

STOPS = 6


def test_a_collector_that_stopped_cleanly_exits_0_every_time(tmp_path: Path) -> None:
    codes: list[int] = []
    for i in range(STOPS):
        collector = CollectorProcess(tmp_path / f"data-{i}").start()
        try:
            exporter = OTLPSpanExporter(endpoint=collector.http_url)
            assert exporter.export(SpanFactory().chats(2, tenant="acme")) is SpanExportResult.SUCCESS
            exporter.shutdown()
            collector.wait_for("SELECT count() FROM v_calls WHERE tenant_id = 'acme'", 2, timeout=20)
        finally:
            codes.append(collector.stop())
        assert "collector stopped" in collector.log()
    assert codes == [0] * STOPS
