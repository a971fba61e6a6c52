"""An application that sends its metrics and logs to the collector's OTLP endpoints too (one endpoint
for every signal, as opentelemetry-distro sets it up) is told, by the real OTLP exporters' requests,
that tokenbook receives traces only and what to do instead; the operator sees it once in the log."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Iterator

import grpc
import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricExportResult, MetricsData

from tokenbook.collector.ingest.ingestor import Ingestor
from tokenbook.collector.receive import GrpcReceiver, HttpReceiver, signals

LIMIT = 1 << 20


@pytest.fixture(autouse=True)
def _untold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(signals, "_told", set())  # this process has not logged a signal yet


def _metrics() -> MetricsData:
    reader = InMemoryMetricReader()
    MeterProvider(metric_readers=[reader]).get_meter("app").create_counter("requests").add(3)
    data = reader.get_metrics_data()
    assert data is not None
    return data


def _serving(receiver: HttpReceiver | GrpcReceiver) -> Iterator[int]:
    receiver.start()
    yield receiver.port
    receiver.stop(1)


@pytest.fixture
def http_port(ingestor: Ingestor) -> Iterator[int]:
    yield from _serving(HttpReceiver(ingestor, "127.0.0.1:0", max_request_bytes=LIMIT))


@pytest.fixture
def grpc_port(ingestor: Ingestor) -> Iterator[int]:
    yield from _serving(GrpcReceiver(ingestor, "127.0.0.1:0", max_request_bytes=LIMIT))


def _post(url: str, content_type: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=b"", headers={"Content-Type": content_type}, method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    return refused.value.code, refused.value.read()


def test_metrics_and_logs_over_http_are_refused_with_what_to_do(
    http_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    exporter = HttpMetricExporter(endpoint=f"http://127.0.0.1:{http_port}/v1/metrics", timeout=10)
    with caplog.at_level(logging.WARNING, "tokenbook.collector"):
        assert exporter.export(_metrics()) == MetricExportResult.FAILURE
        code, body = _post(f"http://127.0.0.1:{http_port}/v1/metrics", "application/x-protobuf")
        assert code == 404 and "OTEL_METRICS_EXPORTER=none" in Status.FromString(body).message
        code, body = _post(f"http://127.0.0.1:{http_port}/v1/logs", "application/json")
        message = json.loads(body)["message"]
    exporter.shutdown()
    assert code == 404 and message.startswith("tokenbook receives traces only")
    assert "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT" in message and "OTEL_LOGS_EXPORTER=none" in message
    told = [r.getMessage() for r in caplog.records if "an application exports OTLP" in r.getMessage()]
    assert [t.split(":")[0] for t in told] == [
        "an application exports OTLP metrics here",
        "an application exports OTLP logs here",
    ]


def test_metrics_and_logs_over_grpc_are_unimplemented_with_what_to_do(grpc_port: int) -> None:
    exporter = GrpcMetricExporter(endpoint=f"127.0.0.1:{grpc_port}", insecure=True, timeout=10)
    assert exporter.export(_metrics()) == MetricExportResult.FAILURE
    exporter.shutdown()
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        for signal, (_, service) in signals.OTHER_SIGNALS.items():
            with pytest.raises(grpc.RpcError) as refused:
                channel.unary_unary(f"/{service}/Export")(b"", timeout=10)
            assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
            assert f"OTEL_{signal.upper()}_EXPORTER=none" in refused.value.details()
