"""Prompt composition in the real collector process, from real OpenInference spans.

The real openai client, instrumented by OpenInference (content recorded, its default), calls the
loopback OpenAI stub; its spans go unredacted over OTLP/gRPC (the real exporter) to a collector with
the default privacy config (content dropped). The ledger row carries the prompt parts, summing to the
input tokens, and no text of the conversation is anywhere in the store, on disk or in the log.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from tests.collector.collector_process import CollectorProcess
from tests.collector.test_privacy import _files_containing, _scan_store
from tests.conversation import TEXTS, openinference_chat
from tokenbook.genai.composition import PARTS

pytestmark = pytest.mark.e2e  # starts a collector

_SERVICE = "openinference-support"
_PART_COLUMNS = ", ".join(f"prompt_{part}_tokens" for part in PARTS)


def test_openinference_spans_get_prompt_parts_and_leave_no_content(tmp_path: Path) -> None:
    collector = CollectorProcess(tmp_path / "data", telemetry={"log_level": "debug"}).start()
    try:
        provider = TracerProvider(resource=Resource.create({"service.name": _SERVICE}))
        provider.add_span_processor(
            SimpleSpanProcessor(OTLPSpanExporter(endpoint=collector.grpc_endpoint, insecure=True))
        )
        billed = openinference_chat(provider)
        provider.shutdown()
        collector.wait_for("SELECT count() FROM v_calls WHERE service_name = {s:String}", 1, s=_SERVICE)
        ((input_tokens, price_status, estimated, *parts),) = collector.query(
            f"SELECT input_tokens, price_status, prompt_estimated, {_PART_COLUMNS} "
            "FROM v_calls WHERE service_name = {s:String}",
            s=_SERVICE,
        )
    finally:
        assert collector.stop() == 0
    assert input_tokens == billed
    assert price_status == "priced"
    by_part = dict(zip(PARTS, parts, strict=True))
    assert sum(by_part.values()) == billed
    assert estimated is True  # no offline tokenizer for gpt-4o-mini: an estimate has no overhead
    for part in ("system", "history", "tool_result", "user", "tool_definition"):
        assert by_part[part] > 0, part
    assert by_part["retrieved"] == by_part["overhead"] == 0
    # no text of the conversation (or the answer) in any table, file or log line
    scan = _scan_store(collector.data_dir, _SERVICE, *TEXTS)
    assert scan["rows"] > 0 and any(h.endswith(_SERVICE) for h in scan["hits"])  # the row is there...
    assert [h for h in scan["hits"] if not h.endswith(_SERVICE)] == []  # ...without its content
    for text in TEXTS:
        assert _files_containing(collector.data_dir, text.encode()) == [], text
        assert text not in collector.log(), text
