"""Privacy against the real collector process: prompt and completion content never reaches storage,
the write-ahead log or the logs with the default config; hash mode stores only the salted hash.

A canary string is placed in every kind of content attribute (OTel GenAI, openlit, OpenLLMetry,
OpenInference spellings), sent over gRPC and HTTP (protobuf and JSON), then searched for in every row
of every table of every non-system database (read through the admin API), in every file under the data
directory (chDB parts and the write-ahead log), and in the collector's log at debug level.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.trace.export import SpanExportResult

from tests.collector.collector_process import REPO, CollectorProcess, SpanFactory
from tokenbook.genai.redaction import Redactor

pytestmark = pytest.mark.e2e  # starts processes

_NOW_NS = time.time_ns()
CANARY = "canary-7f3a9c-do-not-store"
SALT = "pepper-for-the-test-9d1e"
CONTENT = {
    "gen_ai.prompt": f"user asks {CANARY}",
    "gen_ai.completion": f"assistant answers {CANARY}",
    "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"content": CANARY}]}]),
    "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [{"content": CANARY}]}]),
    "gen_ai.system_instructions": CANARY,
    "gen_ai.prompt.0.content": CANARY,
    "gen_ai.completion.0.content": CANARY,
    "llm.input_messages.0.message.content": CANARY,
    "llm.output_messages.0.message.content": CANARY,
}
SYSTEM_DATABASES = ("system", "INFORMATION_SCHEMA", "information_schema")


def _send_everywhere(collector: CollectorProcess, tenant: str) -> int:
    """Canary-laden chat spans over gRPC, HTTP protobuf and HTTP JSON; returns how many were sent."""
    factory = SpanFactory()
    grpc_spans = factory.chats(3, tenant=tenant, **CONTENT)
    exporter = GrpcExporter(endpoint=collector.grpc_endpoint, insecure=True)
    assert exporter.export(grpc_spans) == SpanExportResult.SUCCESS
    http_spans = factory.chats(3, tenant=tenant, **CONTENT)
    request = urllib.request.Request(
        collector.http_url,
        data=encode_spans(http_spans).SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
    )
    with urllib.request.urlopen(request, timeout=10) as r:
        assert r.status == 200
    span = {
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": "eee19b7ec3c1b174",
        "name": "chat gpt-4o",
        "startTimeUnixNano": str(_NOW_NS),  # within limits.max_span_age
        "endTimeUnixNano": str(_NOW_NS + 1_000_000_000),
        "attributes": [
            {"key": k, "value": {"stringValue": v}}
            for k, v in {
                **CONTENT,
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "gpt-4o",
                "tenant.id": tenant,
            }.items()
        ]
        + [{"key": "gen_ai.usage.input_tokens", "value": {"intValue": "10"}}],
        "events": [
            {
                "name": "gen_ai.content.prompt",
                "attributes": [{"key": "gen_ai.prompt", "value": {"stringValue": CANARY}}],
            }
        ],
    }  # fmt: skip
    body = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}).encode()
    request = urllib.request.Request(
        collector.http_url, data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as r:
        assert r.status == 200
    return len(grpc_spans) + len(http_spans) + 1


_SCAN = """
import json, sys
from tokenbook.collector.storage.store import Store

needles, skip = json.loads(sys.argv[2]), json.loads(sys.argv[3])
store = Store.open(data_dir=sys.argv[1])
# Every table that stores data (views store nothing; a parameterized view cannot be read bare).
tables = store.query("SELECT database, name FROM system.tables "
                     "WHERE database NOT IN {skip:Array(String)} AND engine != 'View'",
                     {"skip": skip})[2]
rows, hits = 0, []
for db, table in tables:
    for row in store.query("SELECT * FROM {db:Identifier}.{t:Identifier}", {"db": db, "t": table})[2]:
        rows += 1
        text = repr(row)
        hits += [f"{db}.{table}: {n}" for n in needles if n in text]
store.close()
print(json.dumps({"tables": len(tables), "rows": rows, "hits": hits}))
"""


def _scan_store(data_dir: Path, *needles: str) -> dict[str, Any]:
    """Every row of every table and view outside the system databases, searched for `needles`.

    Runs in a child process once the collector has stopped (one chDB directory per process).
    """
    out = subprocess.run(
        [sys.executable, "-c", _SCAN, str(data_dir), json.dumps(needles), json.dumps(SYSTEM_DATABASES)],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _files_containing(directory: Path, needle: bytes) -> list[Path]:
    return [p for p in directory.rglob("*") if p.is_file() and needle in p.read_bytes()]


@pytest.fixture(scope="module")
def dropped(tmp_path_factory: pytest.TempPathFactory):
    """A collector with the default privacy config, after the canary spans were ingested."""
    collector = CollectorProcess(
        tmp_path_factory.mktemp("privacy") / "data", telemetry={"log_level": "debug"}
    )
    collector.start()
    try:
        sent = _send_everywhere(collector, "privacy")
        collector.wait_for("SELECT count() FROM v_calls WHERE tenant_id = 'privacy'", sent)
    finally:
        assert collector.stop() == 0
    return collector


def test_default_config_stores_no_content_in_any_table(dropped) -> None:
    scan = _scan_store(dropped.data_dir, CANARY, "privacy")
    assert scan["tables"] >= 4 and scan["rows"] > 0
    assert [h for h in scan["hits"] if h.endswith("privacy")]  # the rows are there...
    assert [h for h in scan["hits"] if h.endswith(CANARY)] == []  # ...without their content


def test_default_config_leaves_no_content_on_disk_or_in_the_log(dropped) -> None:
    collector = dropped
    assert list(collector.data_dir.rglob("*.wal")) or (collector.data_dir / "wal").is_dir()
    assert _files_containing(collector.data_dir, CANARY.encode()) == []
    log = collector.log()
    assert '"level": "debug"' in log  # the most verbose level was on
    assert CANARY not in log


def test_hash_mode_stores_only_the_salted_hash(tmp_path: Path) -> None:
    collector = CollectorProcess(
        tmp_path / "data", privacy={"content": "hash", "salt": SALT}, telemetry={"log_level": "debug"}
    ).start()
    try:
        sent = _send_everywhere(collector, "hashed")
        collector.wait_for("SELECT count() FROM v_calls WHERE tenant_id = 'hashed'", sent)
        tags = collector.query("SELECT tags FROM v_calls WHERE tenant_id = 'hashed' LIMIT 1")[0][0]
    finally:
        assert collector.stop() == 0
    assert _scan_store(collector.data_dir, CANARY, SALT)["hits"] == []
    expected = Redactor("hash", salt=SALT).redact({"gen_ai.prompt": CONTENT["gen_ai.prompt"]}, "hashed")
    assert expected is not None
    assert tags["gen_ai.prompt"] == expected["gen_ai.prompt"]
    assert str(tags["gen_ai.prompt"]).startswith("sha256:")
    unsalted = Redactor("hash", salt="").redact({"gen_ai.prompt": CONTENT["gen_ai.prompt"]}, "hashed")
    assert unsalted is not None
    assert tags["gen_ai.prompt"] != unsalted["gen_ai.prompt"]
    assert _files_containing(collector.data_dir, CANARY.encode()) == []
    assert _files_containing(collector.data_dir, SALT.encode()) == []
    log = collector.log()
    assert CANARY not in log and SALT not in log


def test_content_keys_as_extra_attribution_keys_refuse_to_start(tmp_path: Path) -> None:
    """Content is never a tag: naming a content key in attribution.extra_keys is a config error."""
    collector = CollectorProcess(
        tmp_path / "data", attribution={"extra_keys": ["cost.center", "gen_ai.prompt", "input.value"]}
    )
    with pytest.raises(RuntimeError, match="exited with") as err:
        collector.start(timeout=60)
    assert "attribution.extra_keys: 'gen_ai.prompt', 'input.value'" in str(err.value)
    assert not (tmp_path / "data").exists() or _files_containing(tmp_path / "data", CANARY.encode()) == []


def test_bad_content_values_never_cost_a_request_its_good_spans(tmp_path: Path) -> None:
    """Hand-encoded protobuf: content nested 34 kvlist levels deep, 60 array levels deep, not UTF-8
    or not an AnyValue is not even parsed under drop; under keep it rejects its span only."""
    from tests.collector.decode.test_spans import BAD_CONTENT, _kv, _request, _span, _string_value

    def body(tenant: str, first: int) -> bytes:
        common = (
            _kv("tenant.id", _string_value(tenant.encode())),
            _kv("gen_ai.request.model", _string_value(b"gpt-4o")),
        )
        spans = [
            _span(first + i, *common, bad, now=time.time_ns()) for i, bad in enumerate(BAD_CONTENT.values())
        ]
        return _request(_span(first + 100, *common, now=time.time_ns()), *spans)

    def post(collector: CollectorProcess, data: bytes) -> bytes:
        request = urllib.request.Request(
            collector.http_url, data=data, headers={"Content-Type": "application/x-protobuf"}
        )
        with urllib.request.urlopen(request, timeout=10) as r:
            assert r.status == 200
            answer: bytes = r.read()
            return answer

    n = len(BAD_CONTENT) + 1
    for mode, stored in (("drop", n), ("keep", 2)):  # keep: the kvlist value is not read, so kept
        collector = CollectorProcess(tmp_path / mode, privacy={"content": mode}).start()
        try:
            answer = post(collector, body(mode, 1))
            collector.wait_for("SELECT count() FROM llm_calls WHERE tenant_id = {t:String}", stored, t=mode)
        finally:
            assert collector.stop() == 0
        rejected = ExportTraceServiceResponse.FromString(answer).partial_success.rejected_spans
        assert rejected == n - stored
