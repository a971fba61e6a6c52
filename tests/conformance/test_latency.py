"""Latency from the recorded fixtures: every span the collector's pipeline turns into a row carries the
time to first token its library recorded (attribute or first-token event, read here straight from the
wire bytes), and a decode rate only when the answer was streamed."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.conformance.otlp import Setup, any_value, check_each, fixture_paths, fixture_setups, load
from tests.conformance.replay import decode_fixture
from tokenbook.collector.ingest.rows import RowBuilder
from tokenbook.collector.storage.ledger import CallRow
from tokenbook.genai.latency import CLOCK_SLACK_MS
from tokenbook.genai.pricing.catalog import PriceCatalog

PATHS = fixture_paths()
SETUPS = fixture_setups()
CATALOG = PriceCatalog()

#: Where each recorded library puts the time to first token (what the fixtures hold, by scope name).
SOURCES = {
    "com.anthropic.sdk.python": ("attribute", "gen_ai.response.time_to_first_chunk"),
    "com.anthropic.sdk.python.vertex": ("attribute", "gen_ai.response.time_to_first_chunk"),  # Vertex AI
    "com.anthropic.sdk.typescript": ("attribute", "gen_ai.response.time_to_first_chunk"),  # Node.js
    "opentelemetry.instrumentation.genai.openai": ("attribute", "gen_ai.response.time_to_first_chunk"),
    "opentelemetry.instrumentation.genai.anthropic": ("attribute", "gen_ai.response.time_to_first_chunk"),
    "opentelemetry.instrumentation.genai.langchain": ("attribute", "gen_ai.response.time_to_first_chunk"),
    "opentelemetry.instrumentation.genai.bedrock": ("attribute", "gen_ai.response.time_to_first_chunk"),
    "opentelemetry.instrumentation.genai.portkey": ("attribute", "gen_ai.response.time_to_first_chunk"),
    "openlit.instrumentation.openai": ("attribute", "gen_ai.server.time_to_first_token"),
    "openlit.instrumentation.anthropic": ("attribute", "gen_ai.server.time_to_first_token"),
    "openlit.instrumentation.mistral": ("attribute", "gen_ai.server.time_to_first_token"),
    "openlit.instrumentation.groq": ("attribute", "gen_ai.server.time_to_first_token"),
    "openlit.instrumentation.cohere": ("attribute", "gen_ai.server.time_to_first_token"),
    "openlit.instrumentation.ollama": ("attribute", "gen_ai.server.time_to_first_token"),
    "openlit.instrumentation.langchain": ("attribute", "gen_ai.server.time_to_first_token"),
    "openlit.instrumentation.litellm": ("attribute", "gen_ai.server.time_to_first_token"),
    "openlit.instrumentation.bedrock": ("attribute", "gen_ai.server.time_to_first_token"),
    "openlit.instrumentation.google_ai_studio": ("attribute", "gen_ai.server.time_to_first_token"),
    "openinference.instrumentation.openai": ("event", "First Token Stream Event"),
    "openinference.instrumentation.mistralai": ("event", "First Token Stream Event"),
    "opentelemetry.instrumentation.openai.v1": ("event", "gen_ai.content.completion.chunk"),
    "opentelemetry.instrumentation.google_genai": ("attribute", "gen_ai.response.time_to_first_chunk"),
    "pydantic-ai": ("attribute", "gen_ai.client.operation.time_to_first_chunk"),
    "gen_ai": ("attribute", "gen_ai.client.operation.time_to_first_chunk"),  # the AI SDK (Node.js)
}


def _raw_spans(fixture: dict[str, Any]) -> dict[str, tuple[str, Any]]:
    """span ID (hex) -> (scope name, span message), from the recorded bodies."""
    out = {}
    for body in fixture["otlp"]:
        request = ExportTraceServiceRequest.FromString(base64.b64decode(body))
        for rs in request.resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    out[span.span_id.hex()] = (ss.scope.name, span)
    return out


def _recorded_ttft_ms(scope: str, span: Any) -> float | None:
    """The time to first token the library recorded on `span`, in ms, or None."""
    where, name = SOURCES.get(scope, ("", ""))
    if where == "attribute":
        values = [any_value(kv.value) for kv in span.attributes if kv.key == name]
        return values[0] * 1000 if values else None
    if where == "event":
        times = [e.time_unix_nano for e in span.events if e.name == name]
        return (min(times) - span.start_time_unix_nano) / 1e6 if times else None
    return None


def _expected_ttft_ms(scope: str, span: Any) -> float | None:
    """What the row should carry: the recorded time to first token, when it is plausible (an attribute
    at most the span's duration plus `CLOCK_SLACK_MS`, then capped at the duration); None otherwise.
    OpenLIT 1.45.0's Mistral, Groq and Cohere stream spans start when the stream has been read, so
    their time to first token (from the request) is longer than the span."""
    recorded = _recorded_ttft_ms(scope, span)
    if recorded is None or SOURCES[scope][0] != "attribute":
        return recorded
    duration_ms = (span.end_time_unix_nano - span.start_time_unix_nano) / 1e6
    return None if recorded > duration_ms + CLOCK_SLACK_MS else min(recorded, duration_ms)


def _rows(fixture: dict[str, Any]) -> list[CallRow]:
    builder = RowBuilder(CATALOG)
    return [c for batch in decode_fixture(fixture, "latency") for c in builder.build(batch).calls]


@pytest.mark.parametrize("setup", SETUPS, ids=[s.name for s in SETUPS])
def test_rows_carry_the_recorded_time_to_first_token(setup: Setup) -> None:
    check_each(setup.fixtures, _check_time_to_first_token)


def _check_time_to_first_token(path: Path) -> None:
    fixture = load(path)
    raw = _raw_spans(fixture)
    for row in _rows(fixture):
        scope, span = raw[row.span_id]
        recorded = _expected_ttft_ms(scope, span)
        flags = {kv.key: any_value(kv.value) for kv in span.attributes}
        not_streamed = flags.get("gen_ai.request.stream", flags.get("gen_ai.is_streaming")) is False
        if recorded is None:
            assert row.time_to_first_token_ms is None and row.output_tokens_per_second is None, row
            continue
        assert row.time_to_first_token_ms == pytest.approx(recorded, abs=0.001), (scope, row)
        decode_s = (span.end_time_unix_nano - span.start_time_unix_nano) / 1e9 - recorded / 1000
        if not_streamed or row.output_tokens == 0 or decode_s <= 0:  # (no time left after it: capped)
            assert row.output_tokens_per_second is None, (scope, row)
        else:
            assert row.output_tokens_per_second == pytest.approx(row.output_tokens / decode_s, rel=1e-3)


def test_every_streamed_call_of_a_library_that_records_it_has_a_time_to_first_token() -> None:
    """A streamed true call recorded by a library of `SOURCES` has a row with its time to first token."""
    covered = []
    for path in PATHS:
        fixture = load(path)
        if not any(c["stream"] for c in fixture["true_calls"]):
            continue
        raw = _raw_spans(fixture)
        rows = _rows(fixture)
        if all(_expected_ttft_ms(*raw[r.span_id]) is None for r in rows):
            continue
        assert any(r.time_to_first_token_ms is not None for r in rows), path.stem
        covered.append(path.stem)
    assert len(covered) >= 20  # the corpus's streamed fixtures from these libraries
