"""Alert claims: collectors sharing one ClickHouse deliver each crossing once for the fleet.

Every collector of a fleet evaluates the fleet's usage, so several see the same crossing: the same
event ID (`tokenbook.collector.budgets.events.event_id`). Before a collector records and delivers an
event (`AlertDispatcher`), `EventClaims.claim` decides, with ``budget_event_claims`` (migration 090)
and ``budget_events``:

1. an event ``budget_events`` already records is dropped; so is a breaker trip when a trip of the same
   tenant overlapping it is recorded (`BurnRateBreaker.overlapping_trips`), and a breaker reset whose
   trip was never recorded;
2. an event with a *live* claim by another collector (made less than `takeover` ago) is set aside;
3. otherwise the collector inserts a claim (event ID, its collector ID, the server's time), waits
   `settle` and reads the live claims back: the earliest (ties: the smaller collector ID) delivers;
   the others set the event aside.

An event set aside is looked at again `takeover` later (`recheck`): recorded by then, it is done;
if not, its winner stopped between its claim and its record (a crash) and the event is claimed
again. A storage error is retried with backoff for up to `patience`; after that the events are
delivered unclaimed (an alert twice rather than never), logged and counted (`unclaimed`). An event
this collector already delivered is never delivered again by it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, NamedTuple, Protocol

from tokenbook.collector.budgets.events import RESET, TRIPPED, BudgetEvent, event_id
from tokenbook.collector.storage.sqltemplate import render_query

__all__ = ["SETTLE_S", "TAKEOVER_S", "ClaimStore", "EventClaims"]

_log = logging.getLogger("tokenbook.collector.budgets")
SETTLE_S: Final = 0.5  # claims inserted within this of each other are all seen by every claimant
TAKEOVER_S: Final = 30.0  # a claim not followed by a record within this is abandoned
PATIENCE_S: Final = 30.0  # storage errors are retried this long before delivering unclaimed
_REMEMBERED: Final = 100_000  # event IDs this collector delivered, remembered


class ClaimStore(Protocol):
    """What `EventClaims` needs of `tokenbook.collector.storage.store.Store`."""

    database: str

    def command(self, sql: str, parameters: Mapping[str, Any] | None = None) -> None:
        """Run one statement with bound `parameters` (`Store.command`)."""

    def query(
        self, sql: str, parameters: Mapping[str, Any] | None = None
    ) -> tuple[list[str], list[str], list[tuple[Any, ...]]]:
        """Run one SELECT with bound `parameters` (`Store.query`)."""


class _Claims(NamedTuple):
    live: int  # live claims of the event (or of the trips overlapping it)
    winner: str  # the earliest live claim's collector; "" when none
    recorded: int  # rows of budget_events recording one of them


class EventClaims:
    """Decides which collector of a fleet delivers each event. `claim` and `recheck` run on the alert
    dispatcher's thread; `cancel` (at stop) ends a retry early."""

    def __init__(
        self,
        store: ClaimStore,
        collector: str,
        *,
        related: Callable[[BudgetEvent], list[str]] | None = None,
        settle: float = SETTLE_S,
        takeover: float = TAKEOVER_S,
        patience: float = PATIENCE_S,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`related(trip)`: the IDs of the breaker trips overlapping a trip, itself first."""
        self.store = store
        self.collector = collector
        self.related = related
        self.settle = settle
        self.takeover = takeover
        self.patience = patience
        self._sleep = sleep
        self._clock = clock
        self._cancelled = threading.Event()
        self._claim_sql = render_query("budgets/claim_event.sql", store.database)
        self._read_sql = render_query("budgets/event_claims.sql", store.database)
        self._aside: dict[str, tuple[BudgetEvent, float]] = {}  # event ID -> (event, look again at)
        self._delivered: OrderedDict[str, None] = OrderedDict()
        self.lost = 0  # events dropped: recorded by another collector (or a reset of a trip never recorded)
        self.unclaimed = 0  # events delivered without a claim (storage kept failing)
        self.taken_over = 0  # events claimed again after their winner never recorded them

    def cancel(self) -> None:
        """Stop retrying storage errors: `claim` then delivers nothing more (the collector stops)."""
        self._cancelled.set()

    @property
    def aside(self) -> int:
        """Events set aside behind another collector's claim."""
        return len(self._aside)

    def claim(self, events: Sequence[BudgetEvent]) -> list[BudgetEvent]:
        """The events of `events` this collector delivers now (each at most once)."""
        unique: dict[str, BudgetEvent] = {}
        for event in events:
            if event.event_id not in self._delivered:
                unique.setdefault(event.event_id, event)
        if not unique:
            return []
        delay, waited = 0.2, 0.0
        while True:
            try:
                mine = self._claim(list(unique.values()))
                break
            except Exception as exc:  # noqa: BLE001 - storage errors of any kind: retried, then unclaimed
                if self._cancelled.is_set():
                    _log.warning("budget alerts not claimed at stop (storage failed): %s", exc)
                    return []
                if waited >= self.patience:
                    _log.warning(
                        "budget alert claims failed for %.0f s; delivering unclaimed: %s", waited, exc
                    )
                    self.unclaimed += len(unique)
                    mine = list(unique.values())
                    break
                self._sleep(delay)
                waited += delay
                delay = min(delay * 2, 5.0)
        for event in mine:
            self._aside.pop(event.event_id, None)
            self._delivered[event.event_id] = None
            if len(self._delivered) > _REMEMBERED:
                self._delivered.popitem(last=False)
        return mine

    def recheck(self) -> list[BudgetEvent]:
        """Claim again the events set aside whose `takeover` is over and that nobody recorded; returns
        the ones this collector now delivers."""
        now = self._clock()
        due = [event for event, at in self._aside.values() if at <= now]
        if not due:
            return []
        for event in due:
            self._aside.pop(event.event_id, None)
        mine = self.claim(due)
        self.taken_over += len(mine)
        return mine

    def _ids(self, event: BudgetEvent) -> list[str]:
        if event.kind == "breaker" and event.state == TRIPPED and self.related is not None:
            return self.related(event)
        return [event.event_id]

    def _read(self, ids: list[str]) -> _Claims:
        _, _, rows = self.store.query(
            self._read_sql, {"event_ids": ids, "takeover_ms": int(self.takeover * 1000)}
        )
        live, winner, recorded = rows[0] if rows else (0, "", 0)
        return _Claims(int(live), str(winner), int(recorded))

    def _claim(self, events: list[BudgetEvent]) -> list[BudgetEvent]:
        """One round: drop, set aside or claim each event, then read the claims back. Raises on a
        storage error (nothing is delivered then)."""
        wanted: list[BudgetEvent] = []
        for event in events:
            if event.kind == "breaker" and event.state == RESET and not self._trip_recorded(event):
                self.lost += 1  # a trip another collector's overlapping trip replaced
                continue
            claims = self._read(self._ids(event))
            if claims.recorded:
                self.lost += 1
            elif claims.live and claims.winner != self.collector:
                self._set_aside(event)
            else:
                wanted.append(event)
        for event in wanted:
            self.store.command(self._claim_sql, {"event_id": event.event_id, "collector_id": self.collector})
        if wanted:
            self._sleep(self.settle)
        mine = []
        for event in wanted:
            claims = self._read(self._ids(event))
            if claims.recorded:
                self.lost += 1
            elif claims.winner == self.collector:
                mine.append(event)
            else:
                self._set_aside(event)
        return mine

    def _trip_recorded(self, reset: BudgetEvent) -> bool:
        trip = event_id(reset.rule, tuple(v for _, v in reset.subject), reset.window_start, TRIPPED)
        return self._read([trip]).recorded > 0

    def _set_aside(self, event: BudgetEvent) -> None:
        self._aside[event.event_id] = (event, self._clock() + self.takeover)
