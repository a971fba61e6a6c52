"""A streamed answer through the real openai client and genai-openai instrumentation (against a loopback
SSE stub), the processor, the OTLP encoder and the collector's decoder and row builder: the ledger row
has the time to first token, the decode rate and the policy path the app set in Baggage."""

from __future__ import annotations

import http.server
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.metrics import MeterProvider

from tests.loopback import serving_thread
from tokenbook.collector.decode.spans import decode_protobuf
from tokenbook.collector.ingest.rows import RowBuilder, pipeline_keys
from tokenbook.collector.storage.ledger import CallRow
from tokenbook.genai.pricing.catalog import PriceCatalog
from tokenbook.processor import attribute

FIRST_CHUNK_AFTER = 0.05  # seconds before the stub sends its first chunk
CHUNK_GAP = 0.02  # seconds between the following chunks
WORDS = ("Your", " order", " ships", " Friday", ".")
USAGE = {"prompt_tokens": 1200, "completion_tokens": 40, "total_tokens": 1240}


def _chunk(delta: dict[str, Any], usage: dict[str, int] | None = None, finish: str | None = None) -> bytes:
    choices = [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}]
    doc = {"id": "chatcmpl-s1", "object": "chat.completion.chunk", "created": 1767225600,
           "model": "gpt-4o-2024-08-06", "choices": choices, "usage": usage}  # fmt: skip
    return b"data: " + json.dumps(doc).encode() + b"\n\n"


class _StreamingOpenAI(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        time.sleep(FIRST_CHUNK_AFTER)
        self.wfile.write(_chunk({"role": "assistant", "content": WORDS[0]}))
        self.wfile.flush()
        for word in WORDS[1:]:
            time.sleep(CHUNK_GAP)
            self.wfile.write(_chunk({"content": word}))
            self.wfile.flush()
        self.wfile.write(_chunk({}, finish="stop"))
        self.wfile.write(_chunk({}, usage=USAGE))
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def stub() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _StreamingOpenAI)
    thread = serving_thread(server)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def _ledger_row(pipeline: Any, base_url: str, policy_key: str, **baggage: str) -> CallRow:
    p = pipeline(**({"policy_path_key": policy_key} if policy_key != "tokenbook.policy.path" else {}))
    from openai import OpenAI  # here: importing openai takes a second at every collection
    from opentelemetry.instrumentation.genai.openai import OpenAIInstrumentor

    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=p.provider, meter_provider=MeterProvider())
    client = OpenAI(api_key="test", base_url=base_url, max_retries=0)
    try:
        with attribute(tenant="acme", **baggage):
            stream = client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "When?"}], stream=True,
                stream_options={"include_usage": True},
            )  # fmt: skip
            text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert text == "".join(WORDS)
    finally:
        instrumentor.uninstrument()
        client.close()
    body = encode_spans(p.exporter.get_finished_spans()).SerializeToString()
    records = decode_protobuf(body, pipeline_keys((), "drop", policy_key)).records
    (call,) = RowBuilder(PriceCatalog(), policy_key=policy_key).build(records).calls
    return call


def test_streamed_call_has_time_to_first_token_decode_rate_and_policy_path(pipeline, stub, monkeypatch):
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
    call = _ledger_row(pipeline, stub, "tokenbook.policy.path", policy_path="guard/pii/allow")
    assert (call.input_tokens, call.output_tokens, call.price_status) == (1200, 40, "priced")
    assert call.policy_path == "guard/pii/allow"
    ttft = call.time_to_first_token_ms
    assert ttft is not None and FIRST_CHUNK_AFTER * 1000 <= ttft < call.duration_ms
    # the stub's clock bounds the whole call, not where the client's read of the first chunk falls
    # (a loaded machine reads it late), so the decode time is only known to be positive
    assert call.duration_ms >= (FIRST_CHUNK_AFTER + CHUNK_GAP * (len(WORDS) - 1)) * 1000
    decode_s = (call.duration_ms - ttft) / 1000
    assert decode_s > 0
    assert call.output_tokens_per_second == pytest.approx(40 / decode_s, rel=0.01)


def test_a_policy_key_of_the_apps_choosing_on_both_sides(pipeline, stub, monkeypatch):
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
    call = _ledger_row(pipeline, stub, "acme.guard.route", **{"acme.guard.route": "route/cheap"})
    assert call.policy_path == "route/cheap"


def test_the_policy_path_key_setting(monkeypatch):
    from opentelemetry.sdk.trace import SpanProcessor

    from tokenbook.processor import TokenbookSpanProcessor

    assert TokenbookSpanProcessor(SpanProcessor()).settings.policy_path_key == "tokenbook.policy.path"
    monkeypatch.setenv("TOKENBOOK_POLICY_PATH_KEY", "acme.route")
    assert TokenbookSpanProcessor(SpanProcessor()).settings.policy_path_key == "acme.route"
    with pytest.raises(ValueError, match="policy_path_key"):
        TokenbookSpanProcessor(SpanProcessor(), policy_path_key="gen_ai.input.messages")
    monkeypatch.setenv("TOKENBOOK_POLICY_PATH_KEY", " spaced ")
    with pytest.raises(ValueError, match="TOKENBOOK_POLICY_PATH_KEY"):
        TokenbookSpanProcessor(SpanProcessor())
