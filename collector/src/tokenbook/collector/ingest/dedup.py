"""A bounded memory of recently ingested span keys, so a re-delivered span is not logged again.

The key of a span is a 16-byte digest (the first 16 bytes of SHA-256) of ``trace_id + span_id +
tenant`` (24 raw bytes, then the tenant's UTF-8): storage keeps one row per tenant and span IDs (its
sort key holds the tenant), so tenant B's span is never mistaken for tenant A's with the same IDs.
Storage computes the same digest (`storage/sql/span_key_slice.sql`), so the start-up warm-up reads
16 bytes a span and builds no Python object per key.

Layout, compact and bounded: keys remembered since the last freeze are a `set` (the live generation);
every ``max_keys / GENERATIONS`` keys it is frozen into sorted NumPy columns of the keys' first and
last 8 bytes as integers (16 bytes a key, looked up by binary search on the first column, a whole
batch at once and in order: integer comparisons instead of 16-byte strings, half the CPU; keys that
share their first 8 bytes, rare among digests but possible, are told apart by the second column).
The memory holds at most `max_keys` keys: when more, the oldest generation is forgotten whole. At
start it is warmed from the spans still in the write-ahead log (`remember`) and, in the background
while the receivers already serve, from the spans ingested in the last hours (`older`: generations
older than everything remembered, newest first, until the memory is full). Anything older than its
memory is deduplicated by storage (ReplacingMergeTree, read through FINAL or the exact views): this
set saves work and keeps the ledger small, while exactness never depends on it.

Protocol: `unseen` filters a batch (and drops duplicates inside it) without remembering anything;
`remember` is called once the batch is durable, so a refused request is not mistaken for a delivered
one. Thread-safe. `remember` looks the keys up in the frozen generations again (another request may
have remembered one meanwhile, and a freeze moved it there), unless the caller read `frozen_version`
before `unseen` and it has not changed since: the generations are then the ones `unseen` searched.

`horizon` is the clock time from which the memory is complete: every span logged at or after it is
remembered. It starts at the set's creation (nothing before is known), is lowered by each warm-up
generation (`older`: to the start of what it holds) and raised by evictions (to the time the forgotten
generation was frozen). A span that `remember` calls new but that was first logged before `horizon`
may be a re-delivery the memory forgot: the budget counters check the ledger before counting it
(`BudgetEvaluator.defer`). The caller reads `horizon` after `unseen` and before `remember`: a warm-up
generation added in between is then either already counted in the horizon it read, or seen by
`remember`.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from tokenbook.collector.storage.store import KeySlice

__all__ = ["GENERATIONS", "KEY_BYTES", "RecentSpanKeys", "record_key", "span_key"]

KEY_BYTES = 16  #: bytes of a span key
GENERATIONS = 8  #: the memory is forgotten an eighth at a time
_DTYPE = np.dtype(f"S{KEY_BYTES}")
_sha256 = hashlib.sha256


def record_key(tenant: str, trace_id: bytes, span_id: bytes) -> bytes:
    """The dedup key of a decoded span (raw IDs): 16 bytes of SHA-256 of IDs and tenant."""
    return ident_key(trace_id + span_id, tenant)


def ident_key(ident: bytes, tenant: str) -> bytes:
    """`record_key` of a span given its ``trace_id + span_id`` as one bytes (the decoder's summaries)."""
    return _sha256(ident + tenant.encode()).digest()[:KEY_BYTES]


def span_key(tenant: str, trace_id_hex: str, span_id_hex: str) -> bytes:
    """`record_key` of a span given its tenant and hex IDs (as stored in rows and in ClickHouse)."""
    return record_key(tenant, bytes.fromhex(trace_id_hex), bytes.fromhex(span_id_hex))


def keys_array(raw: bytes) -> npt.NDArray[np.bytes_]:
    """The sorted array of the distinct 16-byte keys concatenated in `raw` (as storage returns them:
    a span stored twice, before the engine merged its versions, is there twice)."""
    if len(raw) % KEY_BYTES:
        raise ValueError(f"span keys: {len(raw)} bytes is not a whole number of {KEY_BYTES}-byte keys")
    return np.unique(np.frombuffer(raw, dtype=_DTYPE))


class _Columns(NamedTuple):
    """Keys as two integer columns: their first and their last 8 bytes, big-endian (in the order of
    the keys' bytes)."""

    high: npt.NDArray[np.uint64]
    low: npt.NDArray[np.uint64]

    @classmethod
    def of(cls, keys: npt.NDArray[np.bytes_]) -> _Columns:
        """The columns of an array of 16-byte keys (`keys_array`), in its order."""
        words = np.ascontiguousarray(keys, dtype=_DTYPE).view(">u8").reshape(-1, 2)
        return cls(words[:, 0].astype(np.uint64), words[:, 1].astype(np.uint64))


class _Generation(NamedTuple):
    keys: _Columns  # sorted, distinct
    frozen_at: float  # clock time after its last key was remembered: forgetting it moves the horizon here


def _found(keys: _Columns, generation: _Columns) -> npt.NDArray[np.bool_]:
    """For each of `keys` (in ascending order of their first column: each binary search then starts
    where the previous one ended), whether `generation` (sorted) holds it."""
    high, low = generation
    n = len(high)
    if not n:
        return np.zeros(len(keys.high), dtype=bool)
    at = np.searchsorted(high, keys.high)  # the first key with the same first half, if any
    inside = np.minimum(at, n - 1)
    found: npt.NDArray[np.bool_] = (at < n) & (high[inside] == keys.high) & (low[inside] == keys.low)
    # A key whose first half it shares with the next one (rare): the whole run, by the second half.
    after = np.minimum(at + 1, n - 1)
    for i in np.flatnonzero((at + 1 < n) & (high[after] == keys.high) & ~found).tolist():
        run_end = np.searchsorted(high, keys.high[i], side="right")
        found[i] = bool(keys.low[i] in low[at[i] : run_end])
    return found


class RecentSpanKeys:
    """At most `max_keys` span keys, the newest (see the module docstring)."""

    def __init__(self, max_keys: int, *, clock: Callable[[], float] = time.time) -> None:
        if max_keys < 1:
            raise ValueError(f"max_keys must be >= 1, got {max_keys!r}")
        self.max_keys = max_keys
        self.generation_keys = max(max_keys // GENERATIONS, 1)  # keys per frozen generation
        self._live: set[bytes] = set()
        self._frozen: deque[_Generation] = deque()  # oldest first
        self._frozen_len = 0
        self._frozen_version = 0  # changes with every generation frozen, added (`older`) or forgotten
        self._lock = threading.Lock()
        self._clock = clock
        self.created = self._since = clock()  # the memory is complete from here (before: not known)
        self._evicted_until = 0.0  # every key remembered before this may have been forgotten

    @property
    def horizon(self) -> float:
        """Clock time from which every logged span is remembered (see the module docstring)."""
        return max(self._since, self._evicted_until)

    @property
    def frozen_version(self) -> int:
        """A number that changes whenever the frozen generations do (read it before `unseen`, give
        it to `remember`)."""
        return self._frozen_version

    @property
    def nbytes(self) -> int:
        """Bytes held by the frozen generations (the live one is a `set` of at most
        `generation_keys` keys, about 80 bytes a key)."""
        return sum(g.keys.high.nbytes + g.keys.low.nbytes for g in self._frozen)

    def known_since(self, since: float) -> None:
        """Every span logged since `since` is remembered (lowers the creation horizon)."""
        with self._lock:
            self._since = min(self._since, since)

    def __len__(self) -> int:
        return len(self._live) + self._frozen_len

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, bytes):
            return False
        with self._lock:
            return key in self._live or bool(self._in_frozen([key])[0])

    def _in_frozen(self, keys: list[bytes]) -> npt.NDArray[np.bool_]:
        """Whether each key is in a frozen generation (the caller holds the lock or reads a snapshot)."""
        found = np.zeros(len(keys), dtype=bool)
        if keys and self._frozen:
            wanted = _Columns.of(np.array(keys, dtype=_DTYPE))
            order = np.argsort(wanted.high, kind="stable")
            ordered = _Columns(wanted.high[order], wanted.low[order])
            for generation in tuple(self._frozen):
                found[order] |= _found(ordered, generation.keys)
        return found

    def unseen(self, keys: Iterable[bytes]) -> list[int]:
        """Indexes of the keys neither remembered nor repeated earlier in `keys`."""
        live = self._live
        batch: set[bytes] = set()
        candidates: list[int] = []
        order: list[bytes] = []
        for i, key in enumerate(keys):
            if key in live or key in batch:
                continue
            batch.add(key)
            candidates.append(i)
            order.append(key)
        if not self._frozen or not order:
            return candidates
        with self._lock:
            found = self._in_frozen(order)
        return [i for i, known in zip(candidates, found.tolist(), strict=True) if not known]

    def remember(self, keys: Iterable[bytes], *, unseen_at: int | None = None) -> list[bytes]:
        """Add keys, forgetting the oldest generation beyond `max_keys`; returns the keys that were not
        known yet. `unseen_at`: the `frozen_version` read before the `unseen` call that found these
        keys (no frozen generation holds them); while it is still current, they are not looked up
        there again.

        Atomic: when two requests race with the same span, exactly one of them gets its key back
        (the budget counters count only those).
        """
        with self._lock:
            live = self._live
            fresh: list[bytes] = []
            seen: set[bytes] = set()
            for key in keys:
                if key not in live and key not in seen:
                    seen.add(key)
                    fresh.append(key)
            if fresh and self._frozen and unseen_at != self._frozen_version:
                found = self._in_frozen(fresh).tolist()
                fresh = [k for k, known in zip(fresh, found, strict=True) if not known]
            live.update(fresh)
            if len(live) >= self.generation_keys:
                self._freeze()
        return fresh

    def older(self, keys: npt.NDArray[np.bytes_], since: float, until: float) -> bool:
        """Add a generation of `keys` (sorted, `keys_array`): every span logged from `since` to `until`,
        older than everything remembered (the warm-up adds them newest first, each `until` the
        previous `since`); the horizon moves down to `since`. Returns False, adding nothing, when the
        memory has no room left for them."""
        with self._lock:
            if len(self) + len(keys) > self.max_keys:
                return False
            if len(keys):
                self._frozen.appendleft(_Generation(_Columns.of(keys), until))
                self._frozen_len += len(keys)
                self._frozen_version += 1
            self._since = min(self._since, since)
            return True

    def warm(self, slices: Iterable[KeySlice], stopped: Callable[[], bool] = lambda: False) -> int:
        """Add the keys of storage's slices (`Store.span_key_slices`, newest first) as older
        generations until the memory is full, the slices end or `stopped()`; returns the keys added."""
        added = 0
        for piece in slices:
            keys = keys_array(piece.keys)
            if stopped() or not self.older(keys, piece.since.timestamp(), piece.until.timestamp()):
                break
            added += len(keys)
        return added

    def _freeze(self) -> None:
        """Freeze the live generation; forget the oldest generations beyond `max_keys` (lock held)."""
        raw = b"".join(self._live)
        self._frozen.append(_Generation(_Columns.of(keys_array(raw)), self._clock()))
        self._frozen_len += len(self._live)
        self._frozen_version += 1
        self._live = set()
        while self._frozen and len(self) > self.max_keys:
            gone = self._frozen.popleft()
            self._frozen_len -= len(gone.keys.high)
            self._evicted_until = max(self._evicted_until, gone.frozen_at)
