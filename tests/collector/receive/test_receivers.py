"""OTLP receivers against the real collector process: statuses for bad input, partial success,
size limits, and the admin API. Every case also checks that good spans are not lost."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import grpc
import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tests.collector.collector_process import CollectorProcess, SpanFactory

pytestmark = pytest.mark.e2e  # starts processes

LIMIT = 64 * 1024
EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory):
    c = CollectorProcess(
        tmp_path_factory.mktemp("receivers") / "data",
        receivers={
            "otlp": {
                "protocols": {
                    "grpc": {"max_request_bytes": LIMIT},
                    "http": {"max_request_bytes": LIMIT},
                }
            }
        },
    ).start()
    yield c
    assert c.stop() == 0


def _post(url: str, body: bytes, content_type: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": content_type, **headers}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def _grpc_export(collector: CollectorProcess, body: bytes) -> ExportTraceServiceResponse:
    with grpc.insecure_channel(collector.grpc_endpoint) as channel:
        export = channel.unary_unary(EXPORT, response_deserializer=ExportTraceServiceResponse.FromString)
        response: ExportTraceServiceResponse = export(body, timeout=10)
        return response


def _body(spans) -> bytes:
    body: bytes = encode_spans(spans).SerializeToString()
    return body


def test_truncated_protobuf_is_invalid_argument_and_400(collector: CollectorProcess) -> None:
    body = _body(SpanFactory().chats(3, tenant="truncated"))[:-9]
    status, headers, reply = _post(collector.http_url, body, "application/x-protobuf")
    assert status == 400 and headers["Content-Type"] == "application/x-protobuf"
    assert "cannot parse" in Status.FromString(reply).message
    with pytest.raises(grpc.RpcError) as err:
        _grpc_export(collector, body)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert collector.scalar("SELECT count() FROM v_calls WHERE tenant_id = 'truncated'") == 0


def test_wrong_content_type_is_415(collector: CollectorProcess) -> None:
    status, _, _ = _post(collector.http_url, _body(SpanFactory().chats(1)), "text/plain")
    assert status == 415


def test_invalid_json_is_400_with_a_json_status(collector: CollectorProcess) -> None:
    status, headers, reply = _post(collector.http_url, b'{"resourceSpans": [', "application/json")
    assert status == 400 and headers["Content-Type"] == "application/json"
    assert json.loads(reply)["code"] == 3  # INVALID_ARGUMENT


def test_unknown_path_is_404(collector: CollectorProcess) -> None:
    status, _, _ = _post(collector.http_url.replace("/v1/traces", "/v1/logs"), b"", "application/x-protobuf")
    assert status == 404


def test_span_with_string_tokens_is_recorded_with_its_issue(collector: CollectorProcess) -> None:
    spans = SpanFactory().chats(
        1, tenant="strings", **{"gen_ai.usage.input_tokens": "1200", "gen_ai.usage.output_tokens": "lots"}
    )
    status, _, reply = _post(collector.http_url, _body(spans), "application/x-protobuf")
    assert status == 200 and not ExportTraceServiceResponse.FromString(reply).HasField("partial_success")
    collector.wait_for("SELECT count() FROM v_calls WHERE tenant_id = 'strings'", 1)
    ((inp, out, issue, price_status),) = collector.query(
        "SELECT input_tokens, output_tokens, usage_issue, price_status"
        " FROM v_calls WHERE tenant_id = 'strings'"
    )
    assert (inp, out, price_status) == (1200, 0, "priced")
    assert "gen_ai.usage.output_tokens" in issue and "gen_ai.usage.input_tokens" in issue


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_one_bad_span_is_rejected_and_the_good_ones_kept(collector: CollectorProcess, transport: str) -> None:
    tenant = f"partial-{transport}"
    request = encode_spans(SpanFactory().chats(5, tenant=tenant))
    request.resource_spans[0].scope_spans[0].spans[2].span_id = b"\x01\x02\x03"
    if transport == "http":
        status, _, reply = _post(collector.http_url, request.SerializeToString(), "application/x-protobuf")
        assert status == 200
        response = ExportTraceServiceResponse.FromString(reply)
    else:
        response = _grpc_export(collector, request.SerializeToString())
    assert response.partial_success.rejected_spans == 1
    assert "span_id" in response.partial_success.error_message
    collector.wait_for(f"SELECT count() FROM v_calls WHERE tenant_id = '{tenant}'", 4)


def test_oversized_requests_are_refused(collector: CollectorProcess) -> None:
    spans = SpanFactory().chats(400, tenant="oversized")
    body = _body(spans)
    assert len(body) > LIMIT
    status, _, _ = _post(collector.http_url, body, "application/x-protobuf")
    assert status == 413
    with pytest.raises(grpc.RpcError) as err:
        _grpc_export(collector, body)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # the same spans in requests under the limit all land
    for i in range(0, 400, 100):
        assert _grpc_export(collector, _body(spans[i : i + 100])).partial_success.rejected_spans == 0
    collector.wait_for("SELECT count() FROM v_calls WHERE tenant_id = 'oversized'", 400)


def test_admin_health_readiness_and_metrics(collector: CollectorProcess) -> None:
    for path, expected in (("/healthz", {"status": "ok"}), ("/readyz", {"ready": True, "reason": "ready"})):
        with urllib.request.urlopen(collector.admin_url + path, timeout=5) as r:
            assert json.loads(r.read()) == expected
    with urllib.request.urlopen(collector.admin_url + "/metrics", timeout=5) as r:
        assert r.headers["Content-Type"].startswith("text/plain")
        text = r.read().decode()
    for name in (
        "received_spans_total",
        "rejected_spans_total",
        "billed_calls_total",
        "unpriced_calls_total",
        "deduplicated_spans_total",
        "spooled_bytes",
        "insert_seconds_count",
        "answer_seconds_count",
    ):
        assert f"tokenbook_collector_{name} " in text


def test_admin_query_is_read_only(collector: CollectorProcess) -> None:
    status, _, reply = _post(
        collector.admin_url + "/v1/query",
        json.dumps({"sql": "DROP TABLE llm_calls"}).encode(),
        "application/json",
    )
    assert status == 400 and "SELECT" in json.loads(reply)["error"]
    body = json.dumps({"sql": "SELECT number FROM system.numbers LIMIT 10", "max_rows": 5}).encode()
    status, _, reply = _post(collector.admin_url + "/v1/query", body, "application/json")
    assert status == 400 and "error" in json.loads(reply)
    body = json.dumps({"sql": "SELECT {n:UInt8} + 1 AS x", "parameters": {"n": 41}}).encode()
    status, _, reply = _post(collector.admin_url + "/v1/query", body, "application/json")
    assert status == 200 and json.loads(reply)["rows"] == [[42]]
