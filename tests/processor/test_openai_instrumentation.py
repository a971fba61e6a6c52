"""The real genai-openai instrumentation and openai client, against a loopback stub of the OpenAI API."""

from __future__ import annotations

import http.server
import json
from decimal import Decimal

import pytest
from opentelemetry.sdk.metrics import MeterProvider

from tests.conversation import CONVERSATION, TEXTS, TOOLS
from tests.loopback import serving_thread
from tokenbook.genai.pricing.catalog import CATALOG_NAME
from tokenbook.processor import attribute, budget

CHAT = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1767225600,
    "model": "gpt-4o-2024-08-06",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "finish_reason": "stop"}],
    "usage": {
        "prompt_tokens": 2000,
        "completion_tokens": 100,
        "total_tokens": 2100,
        "prompt_tokens_details": {"cached_tokens": 1500},
        "completion_tokens_details": {"reasoning_tokens": 0},
    },
}
EMBEDDING = {
    "object": "list",
    "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
    "model": "text-embedding-3-small",
    "usage": {"prompt_tokens": 1000, "total_tokens": 1000},
}


class _StubOpenAI(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        body = json.dumps(CHAT if self.path.endswith("/chat/completions") else EMBEDDING).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(params=["drop"])
def openai_client(request, pipeline, monkeypatch):
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "span_only")
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
    p = pipeline(redaction=request.param)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _StubOpenAI)
    thread = serving_thread(server)
    thread.start()
    from openai import OpenAI  # here: importing openai takes a second at every collection
    from opentelemetry.instrumentation.genai.openai import OpenAIInstrumentor

    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=p.provider, meter_provider=MeterProvider())
    client = OpenAI(api_key="test", base_url=f"http://127.0.0.1:{server.server_address[1]}/v1", max_retries=0)
    try:
        yield p, client
    finally:
        instrumentor.uninstrument()
        client.close()
        server.shutdown()
        server.server_close()


def test_chat_completion_span_is_priced_and_attributed(openai_client):
    p, client = openai_client
    with attribute(tenant="acme", user="alice", context_id="ticket-42"), budget(max_cost="1") as b:
        reply = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == "Hello!"
    (span,) = p.exporter.get_finished_spans()
    a = dict(span.attributes)
    # what the instrumentation itself wrote
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.usage.input_tokens"] == 2000
    assert a["gen_ai.usage.cache_read.input_tokens"] == 1500
    # tokenbook: gpt-4o 500 fresh x $2.5 + 1500 cached x $1.25 + 100 out x $10 per MTok
    assert a["tokenbook.price.status"] == "priced"
    assert a["tokenbook.price.source"].startswith(f"{CATALOG_NAME} openai/gpt-4o")
    assert Decimal(a["tokenbook.cost.input"]) == Decimal("0.00125")
    assert Decimal(a["tokenbook.cost.cache_read"]) == Decimal("0.001875")
    assert Decimal(a["tokenbook.cost.output"]) == Decimal("0.001")
    assert a["tokenbook.cost.total"] == "0.004125000000"
    assert (a["tenant.id"], a["user.id"], a["tokenbook.context.id"]) == ("acme", "alice", "ticket-42")
    assert a["tokenbook.budget.state"] == "within_budget"
    assert b.used_cost == Decimal("0.004125")
    assert not any(k.startswith(("gen_ai.input.messages", "gen_ai.output.messages")) for k in a)


def test_embedding_span_is_priced(openai_client):
    p, client = openai_client
    client.embeddings.create(model="text-embedding-3-small", input="hello")
    (span,) = p.exporter.get_finished_spans()
    a = dict(span.attributes)
    assert a["gen_ai.operation.name"] == "embeddings"
    assert a["tokenbook.call.kind"] == "model"
    assert a["tokenbook.cost.total"] == "0.000020000000"  # 1000 x $0.02 per MTok


@pytest.mark.parametrize("openai_client", ["keep"], indirect=True)
def test_instrumentation_captures_content_that_keep_mode_keeps(openai_client):
    """The instrumentation really writes content, so the default test above proves it is dropped."""
    p, client = openai_client
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    (span,) = p.exporter.get_finished_spans()
    assert "gen_ai.input.messages" in span.attributes


@pytest.mark.parametrize("openai_client", ["drop", "hash"], indirect=True)
def test_prompt_composition_sums_to_input_tokens_and_keeps_no_content(openai_client):
    p, client = openai_client
    client.chat.completions.create(model="gpt-4o", messages=CONVERSATION, tools=TOOLS)
    (span,) = p.exporter.get_finished_spans()
    a = dict(span.attributes)
    parts = {k: v for k, v in a.items() if k.startswith("tokenbook.prompt.") and k.endswith("_tokens")}
    assert sum(parts.values()) == a["gen_ai.usage.input_tokens"] == 2000
    assert a["tokenbook.prompt.estimated"] is True  # no offline tokenizer for gpt-4o
    for part in ("system", "history", "tool_result", "user", "tool_definition"):
        assert parts[f"tokenbook.prompt.{part}_tokens"] > 0, part
    assert parts["tokenbook.prompt.retrieved_tokens"] == 0
    # no content, in any form: neither the keys' values nor any text of the conversation
    exported = span.to_json()
    for text in TEXTS:
        assert text not in exported
    for key in ("gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.tool.definitions"):
        assert key not in a or str(a[key]).startswith("sha256:")
