"""The collector's own metrics, exposed by the admin API in the Prometheus text format.

Counters only grow; `spooled_bytes` is a gauge read from the write-ahead log at scrape time; the
latencies (`_SUMMARIES`: inserts, and the answer to an export request with its two stages) are
summaries (count, sum, max). Increments are guarded by a lock: they happen once per request or per
insert, never per span.
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

#: Latency summaries: name -> help. The answer's stages: `answer_decode` (decode the body, check its
#: spans) and `answer_log` (dedup, append to the write-ahead log with its fsync; with ``ack: built``
#: also building the rows); the rest of `answer` is waiting for in-flight room and the tenant rate.
_SUMMARIES = {
    "insert_seconds": "Latency of ClickHouse inserts",
    "answer_seconds": "Time from an export request's arrival to its successful answer",
    "answer_decode_seconds": "Part of the answer spent decoding the request and checking its spans",
    "answer_log_seconds": "Part of the answer spent logging the request durably (write-ahead log, fsync)",
}


@dataclass(slots=True)
class _Summary:
    """A latency summary: observations, their sum and the largest, in seconds."""

    count: int = 0
    total: float = 0.0
    most: float = 0.0


@dataclass
class IngestMetrics:
    """Thread-safe counters of one collector process."""

    spooled_bytes: Callable[[], int] = lambda: 0
    _values: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_COUNTERS, 0))
    _latencies: dict[str, _Summary] = field(default_factory=lambda: {n: _Summary() for n in _SUMMARIES})
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, **increments: int) -> None:
        """Add to counters by name (`received_spans=10, rejected_spans=1`)."""
        with self._lock:
            for name, n in increments.items():
                self._values[name] += n

    def observe(self, **seconds: float) -> None:
        """Record one observation of latencies by name (`insert_seconds=0.012`; names in `_SUMMARIES`)."""
        with self._lock:
            for name, value in seconds.items():
                summary = self._latencies[name]
                summary.count += 1
                summary.total += value
                summary.most = max(summary.most, value)

    def snapshot(self) -> dict[str, float]:
        """Every counter by name, `spooled_bytes`, and each latency summary as ``<name>_count``,
        ``<name>_sum`` and ``<name>_max``."""
        with self._lock:
            out: dict[str, float] = dict(self._values)
            for name, m in self._latencies.items():
                out |= {f"{name}_count": m.count, f"{name}_sum": m.total, f"{name}_max": m.most}
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
        ]
        for name, help_text in _SUMMARIES.items():
            metric = f"tokenbook_collector_{name}"
            lines += [
                f"# HELP {metric} {help_text}",
                f"# TYPE {metric} summary",
                f"{metric}_count {int(s[f'{name}_count'])}",
                f"{metric}_sum {s[f'{name}_sum']:.6f}",
                f"# HELP {metric}_max The largest so far",
                f"# TYPE {metric}_max gauge",
                f"{metric}_max {s[f'{name}_max']:.6f}",
            ]
        return "\n".join(lines) + "\n"
