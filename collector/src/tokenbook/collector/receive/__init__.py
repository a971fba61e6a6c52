"""OTLP receivers: gRPC (`TraceService/Export`) and HTTP (`POST /v1/traces`), both feeding an `Ingestor`."""

from tokenbook.collector.receive.grpc import GrpcReceiver
from tokenbook.collector.receive.http import HttpReceiver

__all__ = ["GrpcReceiver", "HttpReceiver"]
