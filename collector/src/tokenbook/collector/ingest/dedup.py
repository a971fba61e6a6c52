"""A bounded memory of recently ingested span keys, so a re-delivered span is not logged again.

The key of a span is ``trace_id + span_id + tenant`` (24 raw bytes, then the tenant's UTF-8): storage
keeps one row per tenant and span IDs (its sort key holds the tenant), so tenant B's span is never
mistaken for tenant A's with the same IDs. The set remembers the newest
``max_keys`` keys (insertion order, oldest evicted first). At start it is warmed from the spans still
in the write-ahead log and from `Store.recent_span_keys` (spans ingested in the last hours), so a
re-send after a restart is recognised too. Anything older than its memory is deduplicated by storage
(ReplacingMergeTree, read through FINAL or the exact views): this set saves work and keeps the ledger
small, while exactness never depends on it.

Protocol: `unseen` filters a batch (and drops duplicates inside it) without remembering anything;
`remember` is called once the batch is durable, so a refused request is not mistaken for a delivered
one. Thread-safe.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

__all__ = ["RecentSpanKeys", "record_key", "span_key"]


def span_key(tenant: str, trace_id_hex: str, span_id_hex: str) -> bytes:
    """The dedup key of a span given its tenant and hex IDs (as stored in rows and in ClickHouse)."""
    return bytes.fromhex(trace_id_hex) + bytes.fromhex(span_id_hex) + tenant.encode()


def record_key(tenant: str, trace_id: bytes, span_id: bytes) -> bytes:
    """`span_key` of a decoded span (raw IDs)."""
    return trace_id + span_id + tenant.encode()


class RecentSpanKeys:
    """Insertion-ordered set of at most `max_keys` span keys."""

    def __init__(self, max_keys: int) -> None:
        if max_keys < 1:
            raise ValueError(f"max_keys must be >= 1, got {max_keys!r}")
        self.max_keys = max_keys
        self._keys: dict[bytes, None] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def unseen(self, keys: Iterable[bytes]) -> list[int]:
        """Indexes of the keys neither remembered nor repeated earlier in `keys`."""
        known = self._keys
        batch: set[bytes] = set()
        out: list[int] = []
        for i, key in enumerate(keys):
            if key in known or key in batch:
                continue
            batch.add(key)
            out.append(i)
        return out

    def remember(self, keys: Iterable[bytes]) -> list[bytes]:
        """Add keys, evicting the oldest beyond `max_keys`; returns the keys that were not known yet.

        Atomic: when two requests race with the same span, exactly one of them gets its key back
        (the budget counters count only those).
        """
        added: list[bytes] = []
        with self._lock:
            d = self._keys
            for key in keys:
                if key not in d:
                    added.append(key)
                    d[key] = None
            excess = len(d) - self.max_keys
            if excess > 0:
                it = iter(d)
                doomed = [next(it) for _ in range(excess)]
                for key in doomed:
                    del d[key]
        return added
