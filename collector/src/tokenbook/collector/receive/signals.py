"""The OTLP signals tokenbook does not receive: metrics and logs.

An application set up with one OTLP endpoint for every signal (``OTEL_EXPORTER_OTLP_ENDPOINT``, with
``OTEL_METRICS_EXPORTER`` or ``OTEL_LOGS_EXPORTER`` on, as opentelemetry-distro sets them) sends its
metrics and logs to the collector too. Both receivers refuse them with what to do instead (404 on
``/v1/metrics`` and ``/v1/logs``; UNIMPLEMENTED for ``MetricsService/Export`` and
``LogsService/Export``), and the collector logs it once per signal, so that the operator sees which
signal an application sends here, not only the application.
"""

from __future__ import annotations

import logging
import threading
from typing import Final

__all__ = ["OTHER_SIGNALS", "other_signal"]

_log = logging.getLogger("tokenbook.collector")

#: Each signal the collector does not receive: its OTLP/HTTP path and its gRPC service.
OTHER_SIGNALS: Final = {
    "metrics": ("/v1/metrics", "opentelemetry.proto.collector.metrics.v1.MetricsService"),
    "logs": ("/v1/logs", "opentelemetry.proto.collector.logs.v1.LogsService"),
}
_told: set[str] = set()
_told_lock = threading.Lock()


def other_signal(signal: str) -> str:
    """The answer to an export of `signal` (a key of `OTHER_SIGNALS`), logged at warning level the
    first time in this process. Thread-safe."""
    upper = signal.upper()
    message = (
        f"tokenbook receives traces only (/v1/traces, TraceService/Export): send {signal} to another "
        f"OTLP backend (OTEL_EXPORTER_OTLP_{upper}_ENDPOINT) or turn their export off "
        f"(OTEL_{upper}_EXPORTER=none)"
    )
    with _told_lock:
        first = signal not in _told
        _told.add(signal)
    if first:
        _log.warning("an application exports OTLP %s here: %s", signal, message)
    return message
