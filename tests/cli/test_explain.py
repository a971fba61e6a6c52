"""`tokenbook explain`: every recorded span of a trace, billed or not, with its rule and profile."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conformance.otlp import FIXTURES, load
from tests.conformance.replay import decode_fixture, replay
from tokenbook.cli import main
from tokenbook.collector.storage.store import Store


def test_explain_and_report_context_show_the_unbilled_layer(
    chdb_dir: Path,
    migrated_database: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    database = migrated_database
    fixture = load(FIXTURES / "opentelemetry-instrumentation-genai-anthropic-1.3b0-messages.json")
    batches = decode_fixture(fixture, "acme")
    trace = batches[0][0].trace_id.hex()
    with Store.open(data_dir=chdb_dir, database=database) as store:
        replay(store, batches)
        _, _, rows = store.query("SELECT span_id FROM v_calls")
        billed = rows[0][0]
    real_open = Store.open
    monkeypatch.setattr(
        Store, "open", staticmethod(lambda *a, **k: real_open(data_dir=chdb_dir, database=database))
    )
    assert main(["explain", trace, "--url", "x", "--format", "csv"]) == 0
    out = capsys.readouterr().out
    assert "duplicate_layer" in out and "descendant_has_usage" in out and billed in out
    assert "anthropic-sdk" in out and "otel-genai" in out
    assert main(["report", "--context", trace, "--url", "x", "--format", "csv"]) == 0
    out = capsys.readouterr().out
    assert "duplicate_layer" in out and "billed_by" in out
