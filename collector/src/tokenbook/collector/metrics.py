"""The collector's own metrics, exposed by the admin API in the Prometheus text format.

Counters only grow; `spooled_bytes` is a gauge read from the write-ahead log at scrape time; the
insert latency is a summary (count, sum, max). Increments are guarded by a lock: they happen once
per request or per insert, never per span.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["IngestMetrics"]

_COUNTERS = {
    "received_spans": "Spans received in export requests",
    "rejected_spans": "Spans refused (reported in partial_success or an error status)",
    "deduplicated_spans": "Spans dropped because they were already ingested",
    "billed_calls": "Model calls written with a price (priced or cache_hit)",
    "unpriced_calls": "Model calls written without a known price",
    "steps": "Tool, wrapper and outcome steps written",
    "unbilled_calls": "Calls left unbilled because another span bills them (duplicate_layer or wrapper)",
    "rebilled_calls": "Calls billed again after a later span showed no other span bills them",
    "malformed_requests": "Requests refused as malformed (400 / INVALID_ARGUMENT)",
    "refused_requests": "Requests refused with backpressure (429) or storage unavailable (503)",
    "inserted_rows": "Rows inserted into ClickHouse",
    "insert_failures": "Failed ClickHouse inserts (retried, or split to isolate refused rows)",
    "quarantined_rows": "Rows refused by ClickHouse and moved to the quarantine table",
    "decoder_restarts": "Decoder processes replaced after dying",
    "wal_write_failures": "Write-ahead log appends that failed (disk full, I/O error): 503 / UNAVAILABLE",
    "wal_corrupt_records": "Damaged write-ahead log records skipped on replay (lost)",
    "wal_corrupt_bytes": "Bytes of damaged write-ahead log records skipped on replay",
    "undecodable_records": "Write-ahead log records this version cannot decode (skipped, kept in a file)",
    "rejected_after_ack_spans": (
        "Acknowledged spans set aside when their rows were built (a cost over the ledger's range)"
    ),
}


@dataclass
class IngestMetrics:
    """Thread-safe counters of one collector process."""

    spooled_bytes: Callable[[], int] = lambda: 0
    _values: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_COUNTERS, 0))
    _insert_count: int = 0
    _insert_seconds: float = 0.0
    _insert_max: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, **increments: int) -> None:
        """Add to counters by name (`received_spans=10, rejected_spans=1`)."""
        with self._lock:
            for name, n in increments.items():
                self._values[name] += n

    def observe_insert(self, seconds: float) -> None:
        """Record one ClickHouse insert that took `seconds`."""
        with self._lock:
            self._insert_count += 1
            self._insert_seconds += seconds
            self._insert_max = max(self._insert_max, seconds)

    def snapshot(self) -> dict[str, float]:
        """Every value by name, plus `spooled_bytes` and the insert latency summary."""
        with self._lock:
            out: dict[str, float] = dict(self._values)
            out["insert_count"] = self._insert_count
            out["insert_seconds_sum"] = self._insert_seconds
            out["insert_seconds_max"] = self._insert_max
        out["spooled_bytes"] = self.spooled_bytes()
        return out

    def prometheus(self) -> str:
        """The metrics in the Prometheus text exposition format (version 0.0.4)."""
        s = self.snapshot()
        lines: list[str] = []
        for name, help_text in _COUNTERS.items():
            metric = f"tokenbook_collector_{name}_total"
            lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} counter", f"{metric} {int(s[name])}"]
        lines += [
            "# HELP tokenbook_collector_spooled_bytes Bytes in the write-ahead log not yet in ClickHouse",
            "# TYPE tokenbook_collector_spooled_bytes gauge",
            f"tokenbook_collector_spooled_bytes {int(s['spooled_bytes'])}",
            "# HELP tokenbook_collector_insert_seconds Latency of ClickHouse inserts",
            "# TYPE tokenbook_collector_insert_seconds summary",
            f"tokenbook_collector_insert_seconds_count {int(s['insert_count'])}",
            f"tokenbook_collector_insert_seconds_sum {s['insert_seconds_sum']:.6f}",
            "# HELP tokenbook_collector_insert_seconds_max Slowest ClickHouse insert so far",
            "# TYPE tokenbook_collector_insert_seconds_max gauge",
            f"tokenbook_collector_insert_seconds_max {s['insert_seconds_max']:.6f}",
        ]
        return "\n".join(lines) + "\n"
