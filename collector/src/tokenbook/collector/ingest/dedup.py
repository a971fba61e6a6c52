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

`horizon` is the clock time from which the memory is complete: every span logged at or after it is
remembered. It starts at the set's creation (nothing before is known), is lowered by `known_since`
after the warm-up (to the start of what the warm-up read) and raised by evictions (to the time the
newest evicted key was remembered, to the second, from one checkpoint per second of insertions). A
span that `remember` calls new but that was first logged before `horizon` may be a re-delivery the
memory forgot: the budget counters check the ledger before counting it (`BudgetEvaluator.defer`).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable

__all__ = ["RecentSpanKeys", "record_key", "span_key"]

_MAX_CHECKPOINTS = 86_400  # a day of seconds with insertions; older ones merge (the horizon rounds up)


def span_key(tenant: str, trace_id_hex: str, span_id_hex: str) -> bytes:
    """The dedup key of a span given its tenant and hex IDs (as stored in rows and in ClickHouse)."""
    return bytes.fromhex(trace_id_hex) + bytes.fromhex(span_id_hex) + tenant.encode()


def record_key(tenant: str, trace_id: bytes, span_id: bytes) -> bytes:
    """`span_key` of a decoded span (raw IDs)."""
    return trace_id + span_id + tenant.encode()


class RecentSpanKeys:
    """Insertion-ordered set of at most `max_keys` span keys."""

    def __init__(self, max_keys: int, *, clock: Callable[[], float] = time.time) -> None:
        if max_keys < 1:
            raise ValueError(f"max_keys must be >= 1, got {max_keys!r}")
        self.max_keys = max_keys
        self._keys: dict[bytes, None] = {}
        self._lock = threading.Lock()
        self._clock = clock
        self._since = clock()  # the memory is complete from here (before: not known)
        self._evicted_until = 0.0  # every key remembered before this may have been evicted
        self._inserted = 0  # keys ever added
        self._evicted = 0  # keys ever evicted
        # (second, keys added before that second): one checkpoint per second in which keys were added
        self._checkpoints: deque[tuple[float, int]] = deque()

    @property
    def horizon(self) -> float:
        """Clock time from which every logged span is remembered (see the module docstring)."""
        return max(self._since, self._evicted_until)

    def known_since(self, since: float) -> None:
        """The warm-up remembered every span logged since `since` (lowers the creation horizon)."""
        self._since = min(self._since, since)

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
        second = float(int(self._clock()))
        with self._lock:
            cps = self._checkpoints
            if not cps or cps[-1][0] < second:
                cps.append((second, self._inserted))
                if len(cps) > _MAX_CHECKPOINTS:  # merge the two oldest, under the later second
                    _, first = cps.popleft()
                    later, _ = cps.popleft()
                    cps.appendleft((later, first))
            d = self._keys
            for key in keys:
                if key not in d:
                    added.append(key)
                    d[key] = None
            self._inserted += len(added)
            excess = len(d) - self.max_keys
            if excess > 0:
                it = iter(d)
                doomed = [next(it) for _ in range(excess)]
                for key in doomed:
                    del d[key]
                self._evicted += excess
                self._advance_horizon()
        return added

    def _advance_horizon(self) -> None:
        """After evictions: the horizon moves past the second in which the newest evicted key was added
        (keys are numbered in insertion order; checkpoint (second, n): keys from n on were added at or
        after that second)."""
        cps = self._checkpoints
        newest_evicted = self._evicted - 1
        second = None
        while cps and cps[0][1] <= newest_evicted:
            second = cps.popleft()[0]
        if second is not None:
            self._evicted_until = max(self._evicted_until, second + 1)
