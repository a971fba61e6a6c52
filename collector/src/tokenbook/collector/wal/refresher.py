"""The aggregate refresher: brings the aggregates up to date after the writer's inserts, on its own thread.

`Store.refresh_aggregates()` recomputes, exactly (from FINAL), the aggregates of every key written
since the last refresh and runs the billing decision pass. It runs on a connection of its own, outside
the lock of the writer's inserts (`storage.store`), and here on a thread of its own: however long a
refresh takes, the writer goes on inserting, and what it writes meanwhile is refreshed next time.
Refreshes are coalesced, which bounds the aggregates' lag and their cost:

* ``context_costs`` and the billing decisions: at most every ``storage.refresh.interval`` (1 s by
  default); while the writer has a backlog (its last batch was full: more than
  ``storage.batch.max_rows`` rows were waiting), at most every 30 s, so that a context touched by
  many batches is recomputed once. A refresh that took *t* seconds is followed by at least 5*t*
  seconds without one (capped at 30 s): refreshing takes at most a sixth of the time;
* ``cost_hourly`` (and the roll-ups made from it): every ``storage.refresh.hourly_interval`` (10 s),
  or 60 s during a backlog. Each refresh of an hour rescans that hour's calls of the touched tenants,
  so its cost grows with the hour; the interval bounds that cost to (rows of the hour so far) per
  interval.

Each refresh goes in bounded slices (``storage.refresh.max_keys``, `storage.slicing`): it takes
as many as were pending when it began; keys written meanwhile, which it may leave, make the next
refresh due (`Refreshable.refresh_pending`).

The refresh thread runs at a lower CPU priority (``storage.refresh.nice``, the Linux nice increment of
that one thread): the embedded engine parses and plans each statement on the thread that sends it,
which is most of a small refresh's cost, so receiving, logging and inserting spans, and the
applications sharing the host, go first, and the refresh takes the CPU they leave (it coalesces what
was written meanwhile). The engine's own threads that execute the plans are shared with the inserts
and keep their priority.

A failed refresh is retried at the next one (the store keeps the keys pending). `stop` runs a last
refresh of everything touched, waiting for it until a deadline; after the deadline the process may
exit without it: the store's refresh watermark then makes the next start recompute what is stale.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import threading
import time
from typing import Any, Final, Protocol

__all__ = ["AggregateRefresher", "Refreshable", "lower_thread_priority"]

_log = logging.getLogger(__name__)
_INTERVAL_BEHIND: Final = 30.0  # context_costs lag while the writer has a backlog (at least)
_HOURLY_INTERVAL_BEHIND: Final = 60.0  # cost_hourly lag during a backlog (at least)
_SHARE: Final = 5  # the next refresh waits at least this many times the last one's duration


class Refreshable(Protocol):
    """What the refresher needs of `tokenbook.collector.storage.store.Store`."""

    def refresh_aggregates(self, *, hourly: bool = True) -> Any:
        """Recompute the aggregates of the keys written since the last refresh."""

    def refresh_pending(self) -> bool:
        """Whether keys are left for a later refresh (contexts or decisions; hours aside)."""


class AggregateRefresher:
    """Refreshes `store`'s aggregates on its own thread after `written` (see module docstring)."""

    def __init__(
        self, store: Refreshable, *, nice: int = 0, interval: float = 1.0, hourly_interval: float = 10.0
    ) -> None:
        """`nice`: how much lower the refresh thread's CPU priority is (0: the creator's); `interval`
        and `hourly_interval`: the least seconds between two refreshes of the contexts and decisions,
        and of the hourly roll-ups, while the writer keeps up (``storage.refresh.interval``,
        ``storage.refresh.hourly_interval``)."""
        self.store = store
        self.nice = nice
        self.interval = interval
        self.interval_behind = max(_INTERVAL_BEHIND, interval)
        self.hourly_interval = hourly_interval
        self.hourly_interval_behind = max(_HOURLY_INTERVAL_BEHIND, hourly_interval)
        self.refreshes = 0  # completed refreshes (for tests and logs)
        self._cond = threading.Condition()
        self._dirty = False  # rows written since the last refresh
        self._dirty_hours = False  # rows written since the last hourly refresh
        self._behind = False
        self._stopping = False
        self._last = -math.inf  # monotonic time of the last refresh (none yet: due at once)
        self._last_hourly = -math.inf
        self._took = 0.0  # seconds the last refresh took
        self._thread = threading.Thread(target=self._run, name="tokenbook-aggregate-refresher", daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def written(self, *, behind: bool) -> None:
        """The writer inserted rows; `behind`: its batch was full (more rows wait in the log)."""
        with self._cond:
            self._dirty = self._dirty_hours = True
            self._behind = behind
            self._cond.notify()

    def caught_up(self) -> None:
        """The writer found the log empty: refresh at the short intervals again."""
        with self._cond:
            if self._behind:
                self._behind = False
                self._cond.notify()

    def stop(self, timeout: float) -> bool:
        """Refresh everything touched, waiting at most `timeout` seconds; return whether it is done
        (if not, the refresh goes on until the process exits, and the next start recomputes)."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if not self._thread.is_alive():
            return not self._dirty
        self._thread.join(max(timeout, 0.0))
        if self._thread.is_alive():
            _log.warning(
                "shutdown: the last aggregate refresh did not finish in time; it is redone at the next start"
            )
            return False
        return not self._dirty

    def _due(self, now: float) -> float:
        """Seconds until the next refresh may run (0: now)."""
        interval = self.interval_behind if self._behind else self.interval
        # The ledger comes first: refreshing takes at most 1/_SHARE of the time.
        interval = max(interval, min(_SHARE * self._took, self.interval_behind))
        return max(self._last + interval - now, 0.0)

    def _run(self) -> None:
        if self.nice:
            lower_thread_priority(self.nice)
        while True:
            with self._cond:
                while True:
                    if self._stopping:
                        break
                    wait = self._due(time.monotonic()) if self._dirty else None
                    if wait == 0:
                        break
                    self._cond.wait(wait)
                stopping = self._stopping
                if not self._dirty:
                    if stopping:
                        return
                    continue
                now = time.monotonic()
                hourly_interval = self.hourly_interval_behind if self._behind else self.hourly_interval
                hourly = self._dirty_hours and (stopping or now - self._last_hourly >= hourly_interval)
                self._dirty = False
                if hourly:
                    self._dirty_hours = False
            if not self._refresh(hourly, now) and stopping:
                return
            if stopping and not self._dirty:
                return

    def _refresh(self, hourly: bool, started: float) -> bool:
        """One refresh; on failure the keys stay pending in the store and the flags are set again."""
        try:
            self.store.refresh_aggregates(hourly=hourly)
        except Exception as exc:  # noqa: BLE001 - aggregates are retried at the next refresh
            _log.error("refreshing aggregates failed (retried later): %s", exc)
            with self._cond:
                self._dirty = True
                self._dirty_hours = self._dirty_hours or hourly
                self._last = time.monotonic()
            return False
        left = self.store.refresh_pending()  # outside the condition: it takes the store's lock
        with self._cond:
            self._took = time.monotonic() - started
            self._last = started
            if hourly:
                self._last_hourly = started
            # Hours still pending, or keys a refresh of bounded slices left (written during it):
            # refresh again later.
            self._dirty = self._dirty or self._dirty_hours or left
            self.refreshes += 1
        return True


def lower_thread_priority(increment: int) -> bool:
    """Lower the calling thread's CPU priority by `increment` nice steps; return whether it was.

    Linux keeps a nice value per thread (``setpriority`` on a thread ID touches that thread only);
    elsewhere the value is the whole process's, which is left alone. A failure (not allowed, a
    sandbox) is logged and leaves the priority as it was: it only shares the CPU differently."""
    if sys.platform != "linux":
        return False
    thread = threading.get_native_id()
    try:
        current = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, min(current + increment, 19))
    except OSError as exc:
        _log.warning("the aggregate refresh runs at its normal CPU priority: %s", exc)
        return False
    return True
