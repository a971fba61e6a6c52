"""The collector process's price catalog loads when the process first prices a call itself.

With the default ``receivers.otlp.ack: logged`` the build workers price every call and the collector
process never imports the catalog (genai-prices); the in-process fallback (no worker running) and
``ack: built`` price exactly as a catalog built at start.
"""

from __future__ import annotations

import json
import os
import signal
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from tests.collector.collector_process import CollectorProcess, SpanFactory
from tokenbook.collector.decode.pool import FORMAT_PROTOBUF, decode_for_log
from tokenbook.collector.ingest.buildpool import BuildPool, BuildSettings
from tokenbook.collector.ingest.pricing import CATALOG_MODULE, LazyCatalog
from tokenbook.collector.ingest.rows import SpanBounds, pipeline_keys
from tokenbook.collector.storage.ledger import CallRow
from tokenbook.collector.wal.requests import LoggedRequest
from tokenbook.genai.pricing.catalog import PriceCatalog
from tokenbook.genai.pricing.overrides import PriceConfigError
from tokenbook.genai.usage import Usage

TESTDATA = Path(__file__).resolve().parents[2] / "testdata"
BOUNDS = SpanBounds(max_tokens_per_call=10_000, max_span_age=86400.0, max_span_future=600.0)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CHAT = Usage(input_tokens=100, output_tokens=50, present=True)  # `SpanFactory.chats`' usage


def _chat_cost() -> Decimal:
    """What a catalog built at start charges for one of `SpanFactory.chats` (gpt-4o, now)."""
    total = PriceCatalog().price("openai", "gpt-4o", CHAT, datetime.now(UTC)).total
    assert total is not None and total > 0
    return total


def _when_built_aside(calls: list[CallRow]) -> list[CallRow]:
    """`calls` without the time they were built at (``ingested_at``, ``version``)."""
    return [c._replace(ingested_at=_EPOCH, version=0) for c in calls]


# --- in process ---------------------------------------------------------------------------------


def test_the_lazy_catalog_prices_as_the_catalog_from_its_first_price() -> None:
    lazy = LazyCatalog(TESTDATA / "prices.yaml")
    eager = PriceCatalog(TESTDATA / "prices.yaml")
    assert not lazy.loaded
    start_ns = time.time_ns()
    for provider, model in (("openai", "gpt-4o"), ("self-hosted", "llama-3.1-70b-instruct"), ("x", "nope")):
        assert lazy.quote(provider, model, CHAT, start_ns) == eager.quote(provider, model, CHAT, start_ns)
        assert lazy.context_window(provider, model) == eager.context_window(provider, model)
    assert lazy.loaded
    assert lazy.get() is lazy.get()
    assert lazy.get().overrides == eager.overrides


def test_a_bad_overrides_file_fails_at_once() -> None:
    with pytest.raises(PriceConfigError):
        LazyCatalog(TESTDATA / "prices_invalid.yaml")


def test_without_a_worker_rows_are_built_and_priced_in_process() -> None:
    """The fallback while no build worker runs: the pool's own builder loads its catalog at its first
    record, and its rows equal those of a builder whose catalog was built at start."""
    spans = SpanFactory().chats(4, tenant="fallback")
    records = decode_for_log(FORMAT_PROTOBUF, bytes(encode_spans(spans).SerializeToString()),
                             pipeline_keys((), "drop")).records  # fmt: skip
    request = LoggedRequest(None, frozenset(), records)
    settings = BuildSettings(BOUNDS, overrides=TESTDATA / "prices.yaml")
    pool = BuildPool(settings, 1)  # not started: no worker runs
    catalog = pool.local.builder.catalog
    assert isinstance(catalog, LazyCatalog) and not catalog.loaded
    built = pool.submit(request).result(timeout=30)
    assert catalog.loaded
    calls = built.calls()
    assert _when_built_aside(calls) == _when_built_aside(settings.builder().build(request).calls())
    assert [c.price_status for c in calls] == ["priced"] * 4
    # gpt-4o now: the overrides' dated entries (2026) or the catalog, as a catalog built at start says
    expected = PriceCatalog(TESTDATA / "prices.yaml").price("openai", "gpt-4o", CHAT, calls[0].timestamp)
    assert {c.total_cost for c in calls} == {expected.total}


# --- the collector process ----------------------------------------------------------------------

_MODULES_FILE = "TOKENBOOK_TEST_MODULES_FILE"
#: `tokenbook collector`, writing the names of its loaded modules to $TOKENBOOK_TEST_MODULES_FILE on
#: SIGUSR1.
_REPORTING_COLLECTOR = f"""
import json, os, signal, sys

def _report(signum, frame):
    path = os.environ[{_MODULES_FILE!r}]
    with open(path + ".part", "w") as f:
        json.dump(sorted(sys.modules), f)
    os.replace(path + ".part", path)

signal.signal(signal.SIGUSR1, _report)
from tokenbook.cli import main
sys.exit(main(sys.argv[1:]))
"""


class _ReportingCollector(CollectorProcess):
    command = ("-c", _REPORTING_COLLECTOR)

    def modules(self) -> set[str]:
        """The modules the collector process has imported by now."""
        assert self.proc is not None
        path = Path(os.environ[_MODULES_FILE])
        path.unlink(missing_ok=True)
        os.kill(self.proc.pid, signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while not path.exists():
            assert time.monotonic() < deadline, self.log()
            time.sleep(0.05)
        names: list[str] = json.loads(path.read_text(encoding="utf-8"))
        return set(names)


def _send(c: CollectorProcess, spans: list[Any]) -> None:
    exporter = OTLPSpanExporter(endpoint=c.http_url)
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    exporter.shutdown()


def _run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **config: Any) -> tuple[set[str], list[Any]]:
    """Start a collector with `config`, send 5 chats, wait for their rows; the modules it had imported
    when they were visible (and before any was sent), and the rows' statuses and costs."""
    monkeypatch.setenv(_MODULES_FILE, str(tmp_path / "modules.json"))
    c = _ReportingCollector(tmp_path / "data", **config)
    c.start()
    try:
        at_start = c.modules()
        _send(c, SpanFactory().chats(5, tenant="lazy"))
        c.wait_for("SELECT count() FROM v_calls WHERE tenant_id = 'lazy'", 5)
        loaded = c.modules()
        rows = c.query("SELECT price_status, total_cost, billed_cost FROM v_calls WHERE tenant_id = 'lazy'")
    finally:
        assert c.stop() == 0
    assert "tokenbook.collector.ingest.buildpool" in at_start  # a real report
    return at_start | {f"after:{m}" for m in loaded}, rows


@pytest.mark.e2e
def test_the_collector_process_imports_no_catalog_while_its_workers_price(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded, rows = _run(tmp_path, monkeypatch)
    for name in (CATALOG_MODULE, "genai_prices"):
        assert name not in loaded and f"after:{name}" not in loaded
    cost = _chat_cost()
    assert rows == [("priced", cost, cost)] * 5


@pytest.mark.e2e
def test_acknowledged_once_built_the_collector_prices_as_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded, rows = _run(tmp_path, monkeypatch, receivers={"otlp": {"ack": "built"}})
    assert CATALOG_MODULE in loaded  # every request is priced in the collector process: built at start
    cost = _chat_cost()
    assert rows == [("priced", cost, cost)] * 5
