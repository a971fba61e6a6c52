"""configure() and `opentelemetry-instrument`, each in a real subprocess exporting OTLP/HTTP to loopback."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.loopback import serving_thread

pytestmark = pytest.mark.e2e  # starts processes

VENV_BIN = Path(sys.executable).parent
APP = """
from opentelemetry import trace
from tokenbook.processor import attribute

{setup}
tracer = trace.get_tracer("app")
with attribute(tenant="acme"):
    with tracer.start_as_current_span("chat gpt-4o", attributes={{
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 1000,
        "gen_ai.usage.output_tokens": 100, "gen_ai.prompt": "secret"}}):
        pass
print("provider:", type(trace.get_tracer_provider()).__name__)
"""


class _Receiver(http.server.BaseHTTPRequestHandler):
    received: list[ExportTraceServiceRequest]

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path == "/v1/traces":
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            self.received.append(request)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def otlp_receiver() -> Iterator[tuple[str, list[ExportTraceServiceRequest]]]:
    received: list[ExportTraceServiceRequest] = []
    handler = type("Handler", (_Receiver,), {"received": received})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = serving_thread(server)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


def _run(cmd: list[str], endpoint: str, tmp_path: Path) -> str:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TOKENBOOK_"))},
        "OTEL_SERVICE_NAME": "support-bot",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "openai",
        "TOKENBOOK_EXTRA_KEYS": "region",
    }
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _exported_attrs(received: list[ExportTraceServiceRequest]) -> tuple[str, dict[str, str]]:
    spans = [
        (rs, span)
        for req in received
        for rs in req.resource_spans
        for ss in rs.scope_spans
        for span in ss.spans
    ]
    assert len(spans) == 1
    resource_spans, span = spans[0]
    service = next(
        a.value.string_value for a in resource_spans.resource.attributes if a.key == "service.name"
    )
    return service, {a.key: a.value.string_value for a in span.attributes if a.value.HasField("string_value")}


def _assert_enriched(received: list[ExportTraceServiceRequest]) -> None:
    service, attrs = _exported_attrs(received)
    assert service == "support-bot"
    assert attrs["tokenbook.price.status"] == "priced"
    assert attrs["tokenbook.cost.total"] == "0.003500000000"
    assert attrs["tenant.id"] == "acme"
    assert "gen_ai.prompt" not in attrs


def test_configure_from_environment(otlp_receiver, tmp_path):
    endpoint, received = otlp_receiver
    script = APP.format(setup="from tokenbook.processor import configure\nconfigure()")
    out = _run([sys.executable, "-c", script], endpoint, tmp_path)
    assert "provider: TracerProvider" in out
    _assert_enriched(received)


def test_opentelemetry_instrument_entry_point(otlp_receiver, tmp_path):
    endpoint, received = otlp_receiver
    (tmp_path / "app.py").write_text(APP.format(setup=""))
    out = _run([str(VENV_BIN / "opentelemetry-instrument"), sys.executable, "app.py"], endpoint, tmp_path)
    assert "provider: TracerProvider" in out
    _assert_enriched(received)


def test_configure_rejects_bad_options():
    from tokenbook.processor import configure

    with pytest.raises(ValueError, match="redaction"):
        configure(redaction="blur")


def test_configure_without_the_otlp_exporter_names_the_extra(tmp_path: Path) -> None:
    """A light install (no OTLP exporter): the error says which extra to install."""
    script = (
        "import importlib.metadata as md\n"
        "real = md.entry_points\n"
        "def entry_points(**kw):\n"
        "    found = real(**kw)\n"
        "    if kw.get('group') == 'opentelemetry_traces_exporter':\n"
        "        return md.EntryPoints([e for e in found if not e.name.startswith('otlp')])\n"
        "    return found\n"
        "md.entry_points = entry_points\n"
        "import opentelemetry.util._importlib_metadata as otel_md\n"
        "otel_md.entry_points = entry_points\n"
        "from tokenbook.processor.autoconfigure import configure\n"
        "try:\n"
        "    configure()\n"
        "except RuntimeError as exc:\n"
        "    print(exc)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TOKENBOOK_"))}
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert "pip install 'tokenbook[otlp]'" in proc.stdout, proc.stdout + proc.stderr
    assert "'tokenbook[collector]'" in proc.stdout
