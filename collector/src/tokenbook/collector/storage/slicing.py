"""The aggregate refresh's slices: bounded takes of the keys the writes left pending.

A burst leaves many keys pending at once (tens of thousands of contexts and traces). Refreshing them
in one pass holds every key, every candidate row of the decision pass and every statement's key
arrays at once; `Store.refresh_aggregates` instead takes at most ``storage.refresh.max_keys`` keys of
each kind per slice (`take`, `PendingDecisions`), refreshes them, and takes the next, so what a refresh
holds is bounded by the setting, whatever the burst.

Slicing never changes a result: every aggregate row is recomputed whole from the ledger, whichever
slice recomputes it, and the decision pass decides whole related sets from what is stored.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from tokenbook.collector.storage.decisions import DecisionKeys

__all__ = ["PendingDecisions", "slices_needed", "take", "take_decisions"]

K = TypeVar("K", str, tuple[Any, ...])  # trace IDs, (tenant, context), (tenant, hour)


def take(pending: set[K], most: int, order: Callable[[K], Any] | None = None) -> set[K]:
    """Remove from `pending` and return at most `most` keys: all of them when they fit, else the first
    `most` by `order` (the keys themselves by default), so that a slice holds neighbouring keys (the
    contexts of a few tenants, the hours of a few months)."""
    if len(pending) <= most:
        taken = set(pending)
        pending.clear()
        return taken
    taken = set(
        heapq.nsmallest(most, pending) if order is None else heapq.nsmallest(most, pending, key=order)
    )
    pending -= taken
    return taken


class PendingDecisions:
    """Decision keys waiting for a pass, in the groups they were noted in (a write's, a recovery
    piece's), so that a slice takes whole groups and the keys of one call (its trace, response ID and
    bucket) stay in one pass. Consecutive groups are packed together up to `most` traces. Not locked:
    the store's lock guards it."""

    def __init__(self, most: int) -> None:
        """Slices of at most `most` traces."""
        self.most = most
        self._groups: deque[DecisionKeys] = deque()

    def __bool__(self) -> bool:
        return any(self._groups)

    def add(self, keys: DecisionKeys) -> None:
        """Note `keys` (copied: the caller keeps its object) after those pending."""
        if not keys:
            return
        last = self._groups[-1] if self._groups else None
        if last is None or len(last.traces) + len(keys.traces) > self.most:
            last = DecisionKeys()
            self._groups.append(last)
        last.merge(keys)

    def put_back(self, keys: DecisionKeys) -> None:
        """Return a slice that failed, first in line again."""
        if keys:
            self._groups.appendleft(keys)

    def slices(self) -> int:
        """How many slices `take` takes the keys pending now in (0: none)."""
        return sum(-(-len(g.traces) // self.most) or 1 for g in self._groups if g)

    def take(self) -> DecisionKeys:
        """The next slice for one decision pass: whole groups up to `most` traces, or part of a group
        larger than that (`take_decisions`); empty when nothing is pending."""
        out = DecisionKeys()
        while self._groups:
            group = self._groups[0]
            if out and len(out.traces) + len(group.traces) > self.most:
                break
            self._groups.popleft()
            if not out and len(group.traces) > self.most:
                out, rest = take_decisions(group, self.most)
                self.put_back(rest)
                break
            out.merge(group)
        return out


def take_decisions(keys: DecisionKeys, most: int) -> tuple[DecisionKeys, DecisionKeys]:
    """A slice of `keys` for one decision pass, and the keys left for later ones.

    Keys of at most `most` traces are taken whole. Beyond, a slice is `most` of the traces alone, and
    the response IDs and buckets are dropped: every one of them was noted with the trace of its call
    (`DecisionKeys.add`), and a pass closes its set over the response IDs and buckets of the calls it
    loads, so the traces reach every candidate those keys would (a response ID or a bucket on its own
    would pull an unrelated slice's trace into this pass, whose whole set it then loads, and again in
    that slice). Both parts keep the time range of `keys` (the window a pass reads).
    """
    if len(keys.traces) <= most:
        return keys, DecisionKeys()
    traces = set(keys.traces)
    part = DecisionKeys(traces=take(traces, most), earliest=keys.earliest, latest=keys.latest)
    rest = DecisionKeys(traces=traces, earliest=keys.earliest, latest=keys.latest)
    return part, rest


def slices_needed(most: int, *pending: int) -> int:
    """Slices of at most `most` keys that `pending` keys of each kind need (the largest kind's)."""
    return max((-(-n // most) for n in pending), default=0)
