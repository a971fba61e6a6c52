"""OTLP receivers: gRPC (`TraceService/Export`) and HTTP (`POST /v1/traces`), both feeding an `Ingestor`."""

from tokenbook.collector.receivers.grpc import GrpcReceiver
from tokenbook.collector.receivers.http import HttpReceiver

__all__ = ["GrpcReceiver", "HttpReceiver"]
