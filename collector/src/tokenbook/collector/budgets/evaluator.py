"""Real-time quota and budget counters, evaluated on ingest.

`observe(calls)` is fed every newly accepted call (after the collector's dedup let it through and
it is durable in the write-ahead log): for each rule whose `match` holds it adds the call's tokens
and cost to the subject's counter, in the window that holds the call's *timestamp*, and publishes
one `BudgetEvent` when the counter's state rises above the highest state already alerted (once per
crossing). Quotas keep the previous and the current window (by the clock); a call older than that
is not counted in real time (`out_of_window_calls`), exactly as the rebuild would not count it.

`apply_decisions(changes)` is fed the collector's billing decisions (`Store.on_decisions`): a call
that another span turns out to bill (``duplicate_layer`` / ``wrapper``) is taken out of its counters,
and one that becomes billed is added, so the counters agree with the ledger's totals.

`rebuild(source, pending)` sets every counter from the deduplicated ledger (FINAL), adds the calls
still in the write-ahead log that storage does not have yet, restores the alerted states and breaker
trips from `budget_events`, then publishes the crossings that were never alerted. It runs before
the receivers start. `status(query)` answers the gateway from memory.

Memory is bounded: at most ``budgets.max_subjects`` counters are kept (least recently used evicted
first). Once one was evicted (or the rebuild found more), a subject missing from memory gets a new
counter at once and is *hydrated* in the background (`hydrate_pending`, on the runtime's thread):
its usage from the ledger, of calls ingested before the new counter was made, is added to it
(``budgets/subject_usage.sql``), so the counter is exact again as soon as the query answers. At most
``max_subjects`` hydrations wait; beyond, the oldest request is dropped and its counter stays as
counted live (`unhydrated` counts them).

Re-deliveries: the collector's dedup memory is bounded (``dedup.max_keys``, warmed with
``dedup.warm_hours`` of the ledger at start), so a span re-sent after it was forgotten reaches
`observe` as new, while the ledger's views keep it once. The ingestor therefore hands the new calls
that *may* be such re-deliveries (first logged before the memory's horizon, `Ingestor.unsure`) to
`defer` instead: they wait in a bounded queue (``max_subjects`` calls; beyond, a call is counted at
once and `unverified` counts it) and `verify_pending` (the runtime's thread, once a second) asks the
ledger which of them have an older stored version (``budgets/counted_spans.sql``): those were counted
when first ingested and are skipped (`redelivered`); the others are counted. Only calls older than the
horizon pay for a query; live traffic is certain. The ledger must hold the first copy: a copy still
in the write-ahead log (storage down for longer than the memory's horizon) is not seen.

Reservations (`reserve`, `reservations`): a gateway may hold an estimate against the hard rules of a
subject before a call; the check and the hold happen under the lock that counts calls, and a billed
call carrying the reservation's ID (``tokenbook.reservation.id``, kept in the call's tags) settles it
in the same acquisition (`tokenbook.collector.budgets.reservations`). Holds count toward every
``remaining`` the gateway reports.

Thread-safe: one lock around counters; events are published after it is released.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final, Protocol

from tokenbook.collector.budgets.breaker import BurnRateBreaker
from tokenbook.collector.budgets.columns import RuleColumns
from tokenbook.collector.budgets.config import BudgetsConfig, Rule
from tokenbook.collector.budgets.counters import (
    CONFIRM_S,
    RANK,
    Counter,
    Readings,
    Usage,
    call_cost,
    call_tokens,
    matches,
    subject_of,
    usage_state,
)
from tokenbook.collector.budgets.events import EPOCH, TRIPPED, BudgetEvent
from tokenbook.collector.budgets.reservations import (
    OPEN,
    RELEASED,
    HeldKey,
    Reservation,
    ReservationBook,
    new_reservation_id,
)
from tokenbook.collector.storage.ledger import CallRow
from tokenbook.collector.storage.sqltemplate import render_query
from tokenbook.genai import semconv
from tokenbook.genai.billing import UNBILLED_STATUSES
from tokenbook.genai.budgets import OVER_BUDGET, WITHIN_BUDGET

__all__ = [
    "GRANTED",
    "BudgetEvaluator",
    "FleetUsage",
    "RebuildResult",
    "Trip",
    "UsageSource",
    "stored_versions",
]

_log = logging.getLogger(__name__)
_KEYS_PER_QUERY: Final = 20_000  # calls per lookup of stored versions
_PRUNE_INTERVAL = 10.0
_Key = tuple[int, tuple[str, ...], datetime]
_RESERVATION_TAG = semconv.TB.RESERVATION_ID
#: `BudgetEvaluator.reserve` outcomes: granted, or why not.
GRANTED = "granted"
DENIED = "denied"  # a hard rule would go over its limit
TRIPPED_OUT = "tripped"  # the tenant's breaker is tripped
FULL = "full"  # budgets.reservations.max_open reservations are open
_STATES = sorted(RANK, key=RANK.__getitem__)  # within_budget, at_risk, over_budget


class UsageSource(Protocol):
    """What the rebuild needs of `tokenbook.collector.storage.store.Store`."""

    database: str

    def query(
        self, sql: str, parameters: Mapping[str, Any] | None = None
    ) -> tuple[list[str], list[str], list[tuple[Any, ...]]]:
        """Run one SELECT with bound `parameters`: (columns, types, rows) (`Store.query`)."""


@dataclass(frozen=True)
class Trip:
    """A breaker trip recorded in ``budget_events`` (clock seconds)."""

    tenant: str
    start: float
    until: float


@dataclass(frozen=True)
class FleetUsage:
    """One fleet reconciliation's reading of the ledger (`tokenbook.collector.budgets.fleet.FleetSync`).

    `counters`: (rule index, subject, window start) -> usage. `burn`: tenant -> breaker bucket ->
    tokens, for the buckets from `burn_from` on (None: no breaker). `history_from`: the breaker's
    history is known from this clock time (a full read). `trips`: the breaker trips recorded.
    """

    counters: Mapping[_Key, Usage]
    burn: Mapping[str, Mapping[int, int]] | None = None
    burn_from: int = 0
    history_from: float | None = None
    trips: Sequence[Trip] = ()


@dataclass(frozen=True)
class RebuildResult:
    """What `BudgetEvaluator.rebuild` restored at start (logged by the collector)."""

    counters: int  # counters set from the ledger
    pending_calls: int  # calls from the write-ahead log that storage did not have
    restored_alerts: int  # counters whose alerted state came from budget_events
    catch_up_events: int  # crossings alerted at start because no event recorded them


def _billed(call: CallRow) -> bool:
    return call.price_status not in UNBILLED_STATUSES


def stored_versions(source: UsageSource, calls: Iterable[CallRow]) -> dict[tuple[str, str], int]:
    """The newest stored version of each of `calls` that the ledger holds, by (trace_id, span_id),
    looked up by the calls' identity (the ledger's sorting key), `_KEYS_PER_QUERY` at a time: which
    calls of the log a restart need not count again, which remembered calls a fleet sync may forget."""
    keys = sorted({c.identity for c in calls})
    out: dict[tuple[str, str], int] = {}
    sql = render_query("budgets/stored_versions.sql", source.database)
    for i in range(0, len(keys), _KEYS_PER_QUERY):
        _, _, rows = source.query(sql, {"keys": keys[i : i + _KEYS_PER_QUERY]})
        out.update(((t, s), int(v)) for t, s, v in rows)
    return out


def _dt(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


class BudgetEvaluator:
    """Counts calls against quotas and budgets and publishes each upward state crossing once.

    Thread-safe: `observe` is called by the writer after each insert, `states` by the admin API.

    With `fleet` (collectors sharing one ClickHouse), the counts of `observe` are this collector's
    live delta only: crossings and breaker trips are decided by `reconcile` on the fleet's usage,
    when the reconciliations of the last `confirm` seconds all agree (a transient double count, e.g.
    a double-recorded call before the decision pass settles it, never raises an alert), and evicted
    counters are restored by the reconciliation rather than hydrated.
    """

    def __init__(
        self,
        config: BudgetsConfig,
        *,
        publish: Callable[[BudgetEvent], None],
        clock: Callable[[], float] = time.time,
        fleet: bool = False,
        confirm: float = CONFIRM_S,
    ) -> None:
        self.config = config
        self.fleet = fleet
        self.confirm = confirm
        self.rules: tuple[Rule, ...] = config.rules
        #: each rule's subject and match as ledger columns (the usage statements)
        self.columns: tuple[RuleColumns, ...] = tuple(RuleColumns.of(rule) for rule in self.rules)
        self._publish = publish
        self._clock = clock
        self._lock = threading.Lock()
        self._counters: OrderedDict[_Key, Counter] = OrderedDict()  # least recently used first
        self.max_subjects = config.max_subjects
        self.evicted = 0  # counters evicted for max_subjects
        self.unhydrated = 0  # re-created counters never rebuilt from the ledger (queue full)
        self._lossy = False  # a counter was evicted: a missing subject may have usage in the ledger
        # (key, created at) of counters to rebuild from the ledger; the oldest is dropped when full
        self._hydrate: deque[tuple[_Key, float]] = deque(maxlen=config.max_subjects)
        self._windows: dict[int, tuple[datetime, datetime, datetime]] = {}  # rule -> prev start, start, end
        self.breaker = (
            BurnRateBreaker(config.breaker, clock(), aligned=fleet) if config.breaker.enabled else None
        )
        self._burning: dict[str, Readings] = {}  # fleet: tenants over their threshold, their burns
        self.out_of_window_calls = 0
        self.errors = 0
        self._last_prune = 0.0
        self._unsure: deque[CallRow] = deque()  # calls that may be forgotten re-deliveries (`defer`)
        self.redelivered = 0  # deferred calls the ledger already held: not counted again
        self.unverified = 0  # deferred calls counted unchecked because the queue was full
        self.reservations = ReservationBook(config.reservations.max_open)

    # -- ingest ----------------------------------------------------------------------------------

    def observe(self, calls: Sequence[CallRow]) -> None:
        """Count newly accepted calls; never raises (errors are logged once per batch and counted)."""
        if not calls:
            return
        try:
            events = self._observe(calls, self._clock())
        except Exception:  # noqa: BLE001 - the ingest path must not fail because of budgets
            self.errors += 1
            _log.exception("budget evaluation failed for a batch of %d calls", len(calls))
            return
        for event in events:
            self._publish(event)

    def apply_decisions(self, changes: Sequence[tuple[CallRow, CallRow]]) -> None:
        """Move the counters by billing decisions (`Store.on_decisions`): a call another span now
        bills is taken out, a call now billed is added. Counts are sums, so the order in which
        `observe` and decisions arrive does not change a counter's final value. Never raises."""
        try:
            events: list[BudgetEvent] = []
            now = self._clock()
            with self._lock:
                for before, after in changes:
                    was, billed = _billed(before), _billed(after)
                    if was and not billed:
                        self._count(before, now, None, sign=-1)
                        self._settle(before, now, sign=-1)
                    elif billed and not was:
                        self._count(after, now, None if self.fleet else events, sign=1)
                        self._settle(after, now, sign=1)
        except Exception:  # noqa: BLE001 - the writer must not fail because of budgets
            self.errors += 1
            _log.exception("budget evaluation failed for %d billing decisions", len(changes))
            return
        for event in events:
            self._publish(event)

    def defer(self, calls: Sequence[CallRow]) -> None:
        """Count `calls` once `verify_pending` has checked that the ledger does not already hold them
        (possible re-deliveries); when the queue is full they are counted at once."""
        overflow: list[CallRow] = []
        with self._lock:
            room = self.max_subjects - len(self._unsure)
            self._unsure.extend(calls[: max(room, 0)])
            if room < len(calls):
                overflow = list(calls[max(room, 0) :])
                self.unverified += len(overflow)
        if overflow:
            self.observe(overflow)

    def verify_pending(self, source: UsageSource, limit: int = 2000) -> int:
        """Check up to `limit` deferred calls against the ledger and count those it does not hold from
        an earlier ingestion; returns how many were checked. A store error leaves them queued (raised)."""
        with self._lock:
            batch = [self._unsure.popleft() for _ in range(min(limit, len(self._unsure)))]
        if not batch:
            return 0
        try:
            _, _, rows = source.query(
                render_query("budgets/counted_spans.sql", source.database),
                {
                    "timestamps": sorted({c.timestamp for c in batch}),
                    "trace_ids": sorted({c.trace_id for c in batch}),
                    "keys": sorted({(c.tenant_id, c.trace_id, c.span_id) for c in batch}),
                },
            )
        except BaseException:  # the store failed: keep the batch queued for the next check, and re-raise
            with self._lock:
                self._unsure.extendleft(reversed(batch))
            raise
        oldest = {(t, tr, sp): int(v) for t, tr, sp, v in rows}
        fresh = []
        for c in batch:
            first = oldest.get((c.tenant_id, c.trace_id, c.span_id))
            if first is not None and first < c.version:
                self.redelivered += 1
            else:
                fresh.append(c)
        self.observe(fresh)
        return len(batch)

    @property
    def unsure_pending(self) -> int:
        """Deferred calls not checked yet."""
        return len(self._unsure)

    def tick(self) -> None:
        """Expire breaker trips and reservations, forget old counters (called about once a second)."""
        now = self._clock()
        with self._lock:
            self._prune(now)
            self.reservations.expire(now)
            events = self.breaker.expire(now) if self.breaker is not None else []
        for event in events:
            self._publish(event)

    def _observe(self, calls: Sequence[CallRow], now: float) -> list[BudgetEvent]:
        events: list[BudgetEvent] = []
        with self._lock:
            self._prune(now)
            for call in calls:
                if not _billed(call):  # another span of the same call bills it
                    continue
                self._count(call, now, None if self.fleet else events)
                self._settle(call, now)
                if self.breaker is not None:
                    events += self.breaker.add(call.tenant_id, call_tokens(call), now, check=not self.fleet)
        return events

    def _count(self, call: CallRow, now: float, events: list[BudgetEvent] | None, sign: int = 1) -> None:
        tokens = call_tokens(call)
        for idx, rule in enumerate(self.rules):
            if not matches(rule, call):
                continue
            counter = self._counter(idx, rule, subject_of(rule, call), call.timestamp, now)
            if counter is None:
                self.out_of_window_calls += 1
                continue
            if sign > 0:
                counter.add(tokens, call_cost(call, rule.limits.currency))
            else:
                counter.remove(tokens, call_cost(call, rule.limits.currency))
            counter.last_seen = now
            if events is not None:
                events += self._crossings(rule, subject_of(rule, call), counter, now)

    def _settle(self, call: CallRow, now: float, sign: int = 1) -> None:
        """Settle the reservation a counted call names, if it is open (under the lock)."""
        reservation_id = call.tags.get(_RESERVATION_TAG) if call.tags else None
        if not reservation_id:
            return
        res = self.reservations.get(reservation_id)
        if res is None or res.state != OPEN:
            return
        self.reservations.settle(reservation_id, call_tokens(call), call_cost(call, res.currency), now, sign)

    def _current(self, idx: int, rule: Rule, now: float) -> tuple[datetime, datetime, datetime]:
        """(previous window start, current window start, current window end) of a quota."""
        assert rule.window is not None
        cached = self._windows.get(idx)
        at = _dt(now)
        if cached is not None and cached[1] <= at < cached[2]:
            return cached
        start, end = rule.window.bounds(at)
        cached = (rule.window.previous(start)[0], start, end)
        self._windows[idx] = cached
        return cached

    def _counter(
        self, idx: int, rule: Rule, subject: tuple[str, ...], ts: datetime, now: float
    ) -> Counter | None:
        if rule.window is None:
            key = (idx, subject, EPOCH)
            counter = self._counters.get(key)
            if counter is None:
                counter = self._add(key, Counter(), now)
            else:
                self._counters.move_to_end(key)
            return counter
        prev_start, start, end = self._current(idx, rule, now)
        if ts >= end or ts < prev_start:
            return None
        window_start = start if ts >= start else prev_start
        key = (idx, subject, window_start)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._add(key, Counter(start=window_start, end=start if ts < start else end), now)
        else:
            self._counters.move_to_end(key)
        return counter

    def _add(self, key: _Key, counter: Counter, now: float) -> Counter:
        """Keep a new counter, evicting the least recently used beyond max_subjects; after an eviction a
        new counter is queued for hydration from the ledger (not in a fleet: reconciliations restore it)."""
        if self._lossy and not self.fleet:
            if len(self._hydrate) == self._hydrate.maxlen:
                self.unhydrated += 1
            self._hydrate.append((key, now))
        self._counters[key] = counter
        self._evict()
        return counter

    def _evict(self) -> None:
        while len(self._counters) > self.max_subjects:
            self._counters.popitem(last=False)
            self.evicted += 1
            self._lossy = True

    def hydrate_pending(self, source: UsageSource, limit: int = 1000) -> int:
        """Rebuild up to `limit` re-created counters from the ledger (calls ingested before each was
        made); returns how many. Runs on a background thread, never under the ingest path."""
        done = 0
        while done < limit:
            with self._lock:
                key, created = None, 0.0
                while self._hydrate and key is None:
                    key, created = self._hydrate.popleft()
                    if key not in self._counters:  # evicted again meanwhile: nothing to rebuild
                        key = None
                if key is None:
                    break
            idx, subject, window_start = key
            rule = self.rules[idx]
            if rule.window is None:
                since, until = EPOCH, _dt(created + 1)
            else:
                since, until = window_start, rule.window.bounds(window_start)[1]
            columns = self.columns[idx]
            params = {
                **columns.parameters,
                **columns.subject_values(subject),
                "since": since,
                "until": until,
                "before": _dt(created),
                "currency": rule.limits.currency,
            }
            _, _, rows = source.query(columns.query("subject_usage.sql", source.database), params)
            done += 1
            tokens, cost, unpriced = rows[0] if rows else (0, 0, 0)
            events = []
            with self._lock:
                counter = self._counters.get(key)
                if counter is None or not (tokens or unpriced):
                    continue
                counter.tokens += int(tokens or 0)
                counter.cost += Decimal(cost or 0)
                counter.unpriced_calls += int(unpriced or 0)
                events = self._crossings(rule, subject, counter, self._clock())
            for event in events:
                self._publish(event)
        return done

    def _crossings(
        self, rule: Rule, subject: tuple[str, ...], counter: Counter, now: float, usage: Usage | None = None
    ) -> list[BudgetEvent]:
        """One event per state `counter` (or `usage`, when given) rose past since the last alerted one:
        a jump from within_budget to over_budget is an at_risk crossing, then an over_budget one."""
        tokens, cost = (counter.tokens, counter.cost) if usage is None else (usage.tokens, usage.cost)
        state = usage_state(rule, tokens, cost)
        events = []
        for crossed in _STATES[RANK[counter.alerted] + 1 : RANK[state] + 1]:
            previous, counter.alerted = counter.alerted, crossed
            events.append(
                BudgetEvent(
                    event_time=_dt(now),
                    kind=rule.kind,
                    rule=rule.name,
                    state=crossed,
                    previous_state=previous,
                    enforcement=rule.enforcement,
                    subject=tuple(zip(rule.per, subject, strict=True)),
                    window="context" if rule.window is None else rule.window.describe(),
                    window_start=counter.start,
                    window_end=counter.end,
                    used_tokens=tokens,
                    limit_tokens=rule.limits.tokens,
                    used_cost=cost,
                    limit_cost=rule.limits.cost,
                    currency=rule.limits.currency,
                )
            )
        return events

    def _reading(
        self, rule: Rule, subject: tuple[str, ...], counter: Counter, now: float
    ) -> list[BudgetEvent]:
        """Fleet: keep the counter's current value (a reading of the ledger) and return the crossings
        the readings of the last `confirm` seconds all agree on, reported at the lowest of them."""
        if counter.readings is None:
            counter.readings = Readings()
        usage = Usage(counter.tokens, counter.cost, counter.unpriced_calls)
        low = counter.readings.add(now, usage, self.confirm)
        return [] if low is None else self._crossings(rule, subject, counter, now, low)

    def _prune(self, now: float) -> None:
        """Forget quota counters older than the previous window and budgets idle beyond context_ttl."""
        if now - self._last_prune < _PRUNE_INTERVAL:
            return
        self._last_prune = now
        oldest: dict[int, datetime] = {}
        for idx, rule in enumerate(self.rules):
            if rule.window is not None:
                oldest[idx] = self._current(idx, rule, now)[0]
        ttl = self.config.context_ttl
        for key in [
            k
            for k, c in self._counters.items()
            if (k[0] in oldest and k[2] < oldest[k[0]]) or (k[0] not in oldest and now - c.last_seen > ttl)
        ]:
            del self._counters[key]

    # -- restart ---------------------------------------------------------------------------------

    def rebuild(self, source: UsageSource, pending: Iterable[CallRow] = ()) -> RebuildResult:
        """Set the counters from the ledger (+ unstored `pending` calls) and restore alert states."""
        now = self._clock()
        db = source.database
        counters: dict[_Key, Counter] = {}
        for idx, rule in enumerate(self.rules):
            columns = self.columns[idx]
            bound = {**columns.parameters, "currency": rule.limits.currency}
            if rule.window is not None:
                prev_start, start, end = self._current(idx, rule, now)
                params = {"current_start": start, "since": prev_start, "until": end}
                _, _, rows = source.query(columns.query("quota_usage.sql", db), {**params, **bound})
                for subject, current, tokens, cost, unpriced in rows:
                    window_start, window_end = (start, end) if current else (prev_start, start)
                    counters[(idx, tuple(subject), window_start)] = Counter(
                        tokens=int(tokens),
                        cost=Decimal(cost or 0),
                        unpriced_calls=int(unpriced),
                        start=window_start,
                        end=window_end,
                        last_seen=now,
                    )
            else:
                params = {"since": _dt(now - self.config.context_ttl)}
                _, _, rows = source.query(columns.query("context_usage.sql", db), {**params, **bound})
                for tenant, context, tokens, cost, unpriced, _last in rows:
                    counters[(idx, (tenant, context), EPOCH)] = Counter(
                        tokens=int(tokens),
                        cost=Decimal(cost or 0),
                        unpriced_calls=int(unpriced),
                        last_seen=now,
                    )
        unstored = self._unstored(source, list(pending))
        with self._lock:
            self._counters = OrderedDict(counters)
            self._evict()
            for call in unstored:
                self._count(call, now, None)
            restored = self._restore_alerts(source, now)
            crossings = self._reading if self.fleet else self._crossings
            events = [
                e
                for (idx, subject, _), c in self._counters.items()
                for e in crossings(self.rules[idx], subject, c, now)
            ]
        for event in events:
            self._publish(event)
        return RebuildResult(len(counters), len(unstored), restored, len(events))

    def _unstored(self, source: UsageSource, pending: list[CallRow]) -> list[CallRow]:
        if not pending:
            return []
        stored = stored_versions(source, pending)
        seen: set[tuple[str, str]] = set()
        out = []
        for call in pending:
            key = (call.trace_id, call.span_id)
            if key not in stored and key not in seen:
                seen.add(key)
                out.append(call)
        return out

    def _restore_alerts(self, source: UsageSource, now: float) -> int:
        since = min(
            [_dt(now - max(self.config.context_ttl, self.config.breaker.cooldown))]
            + [self._current(i, r, now)[0] for i, r in enumerate(self.rules) if r.window is not None]
        )
        _, _, rows = source.query(
            render_query("budgets/alerted_states.sql", source.database), {"since": since}
        )
        index = {(r.kind, r.name): i for i, r in enumerate(self.rules)}
        restored = 0
        for kind, rule, subject, window_start, state, window_end, _last in rows:
            if kind == "breaker":
                if self.breaker is not None and state == TRIPPED and window_end is not None:
                    until = window_end.timestamp()
                    if until > now:
                        self.breaker.restore(subject[0], window_start.timestamp(), until)
                continue
            idx = index.get((kind, rule))
            counter = None if idx is None else self._counters.get((idx, tuple(subject), window_start))
            if counter is not None and state in RANK and RANK[state] > RANK[counter.alerted]:
                counter.alerted = state
                restored += 1
        return restored

    # -- gateway ---------------------------------------------------------------------------------

    def status(self, query: Mapping[str, str]) -> dict[str, Any]:
        """The state of every rule that applies to `query` (attribute key -> value), from memory.

        A rule applies when the query gives every key of its `per` (a quota per tenant needs
        `tenant`; a budget needs `tenant` and `context`) and no match key of the query contradicts
        its `match`. ``allowed`` is False when a hard rule is over budget or the tenant's breaker
        is tripped.
        """
        now = self._clock()
        with self._lock:
            entries = [
                _entry(rule, subject, counter, self.reservations.held((idx, subject)))
                for idx, rule, subject, counter in self._applicable(query, now)
            ]
            tenant = query.get("tenant")
            breaker = self._breaker_doc(tenant, now) if tenant is not None else None
        return _summary(query, entries, breaker)

    def _applicable(
        self, query: Mapping[str, str], now: float
    ) -> list[tuple[int, Rule, tuple[str, ...], Counter]]:
        """(rule index, rule, subject, current counter) of every rule that applies to `query` (see
        `status`); a subject without a counter gets an empty one, not kept. Under the lock."""
        out = []
        for idx, rule in enumerate(self.rules):
            if any(k not in query for k in rule.per) or any(
                k in query and query[k] != v for k, v in rule.match
            ):
                continue
            subject = tuple(query[k] for k in rule.per)
            if rule.window is None:
                start, end = EPOCH, None
            else:
                _, start, end_ = self._current(idx, rule, now)
                end = end_
            counter = self._counters.get((idx, subject, start)) or Counter(start=start, end=end)
            out.append((idx, rule, subject, counter))
        return out

    # -- reservations ----------------------------------------------------------------------------

    def reserve(
        self,
        attributes: Mapping[str, str],
        *,
        tokens: int | None,
        cost: Decimal | None,
        currency: str,
        ttl: float,
        calls: int = 1,
    ) -> tuple[str, dict[str, Any]]:
        """Hold `tokens` and/or `cost` for the subject named by `attributes`, if every applicable hard
        rule stays within its limit counting its usage, what open reservations hold and this estimate.

        A rule applies as in `status`. A dimension without an estimate refuses only when the rule is
        already over that limit. Returns (outcome, document): outcome `GRANTED`, `DENIED` (a hard
        rule; ``denied_by`` names them), ``tripped`` (the tenant's breaker) or ``full`` (
        ``reservations.max_open`` are open); the document has the states with what is held and, when
        granted, the ``reservation``.
        """
        now = self._clock()
        res: Reservation | None = None
        with self._lock:
            self.reservations.expire(now)
            applicable = self._applicable(attributes, now)
            tenant = attributes.get("tenant")
            breaker = self._breaker_doc(tenant, now) if tenant is not None else None
            denied: list[str] = []
            if breaker is not None and breaker["state"] == TRIPPED:
                outcome = TRIPPED_OUT
            elif self.reservations.full:
                outcome = FULL
            else:
                for idx, rule, subject, counter in applicable:
                    if rule.enforcement == "hard" and self._would_exceed(
                        rule, counter, self.reservations.held((idx, subject)), tokens, cost, currency
                    ):
                        denied.append(rule.name)
                outcome = DENIED if denied else GRANTED
            if outcome == GRANTED:
                keys: tuple[HeldKey, ...] = tuple((idx, subject) for idx, _, subject, _ in applicable)
                cost_keys = tuple(
                    (idx, subject) for idx, rule, subject, _ in applicable if rule.limits.currency == currency
                )
                res = Reservation(
                    id=new_reservation_id(),
                    attributes=dict(attributes),
                    keys=keys,
                    cost_keys=cost_keys,
                    tokens=tokens,
                    cost=cost,
                    currency=currency,
                    calls=calls,
                    created=now,
                    expires=now + ttl,
                )
                self.reservations.add(res)
            else:
                self.reservations.outcomes["refused"] += 1
            entries = [
                _entry(rule, subject, counter, self.reservations.held((idx, subject)))
                for idx, rule, subject, counter in applicable
            ]
            doc = _summary(attributes, entries, breaker)
            doc["granted"] = outcome == GRANTED
            doc["outcome"] = outcome
            doc["denied_by"] = denied + (["breaker"] if outcome == TRIPPED_OUT else [])
            doc["reservation"] = None if res is None else res.doc()
        return outcome, doc

    @staticmethod
    def _would_exceed(
        rule: Rule,
        counter: Counter,
        held: tuple[int, Decimal],
        tokens: int | None,
        cost: Decimal | None,
        currency: str,
    ) -> bool:
        """Whether holding (tokens, cost) more would take `counter` above one of `rule`'s limits."""
        limits = rule.limits
        if limits.tokens is not None and counter.tokens + held[0] + (tokens or 0) > limits.tokens:
            return True
        if limits.cost is not None:
            more = cost if cost is not None and currency == limits.currency else Decimal(0)
            if counter.cost + held[1] + more > limits.cost:
                return True
        return False

    def reservation(self, reservation_id: str) -> Reservation | None:
        """An open or recently closed reservation (expired ones are closed first), or None."""
        now = self._clock()
        with self._lock:
            self.reservations.expire(now)
            return self.reservations.get(reservation_id)

    def release(self, reservation_id: str) -> Reservation | None:
        """Release an open reservation (it holds nothing after); a closed one is returned as it ended.
        None for an unknown ID."""
        now = self._clock()
        with self._lock:
            self.reservations.expire(now)
            return self.reservations.close(reservation_id, RELEASED, now) or self.reservations.get(
                reservation_id
            )

    def states(self, limit: int = 1000, cursor: int = 0) -> dict[str, Any]:
        """One page of the counters of the current windows and active contexts (ordered by rule and
        subject; `cursor` counters skipped, at most `limit`), and every tripped tenant. ``next_cursor``
        is the cursor of the next page, or None on the last."""
        now = self._clock()
        with self._lock:
            current = [
                key
                for key in self._counters
                if self.rules[key[0]].window is None
                or key[2] == self._current(key[0], self.rules[key[0]], now)[1]
            ]
            current.sort(key=lambda k: (k[0], k[1]))
            page = current[cursor : cursor + limit]
            entries = [
                _entry(self.rules[k[0]], k[1], self._counters[k], self.reservations.held((k[0], k[1])))
                for k in page
            ]
            next_cursor = cursor + limit if cursor + limit < len(current) else None
            tripped = {}
            if self.breaker is not None:
                for tenant in self.breaker.tenants():
                    doc = self._breaker_doc(tenant, now)
                    if doc["state"] == TRIPPED:
                        tripped[tenant] = doc
        return {**_summary({}, entries, None), "breakers": tripped, "next_cursor": next_cursor}

    def _breaker_doc(self, tenant: str | None, now: float) -> dict[str, Any]:
        if self.breaker is None or tenant is None:
            return {"state": "disabled", "until": None, "burn_tokens": None}
        until = self.breaker.tripped(tenant, now)
        return {
            "state": TRIPPED if until is not None else "ok",
            "until": None if until is None else _dt(until).isoformat(),
            "burn_tokens": self.breaker.burn(tenant, now),
        }

    def window_of(self, idx: int, ts: datetime) -> tuple[datetime, datetime | None] | None:
        """The (start, end) of the counter rule `idx` counts a call at `ts` in: the epoch and None for a
        budget, None when `ts` is outside a quota's previous and current windows."""
        rule = self.rules[idx]
        if rule.window is None:
            return EPOCH, None
        with self._lock:
            prev_start, start, end = self._current(idx, rule, self._clock())
        if ts >= end or ts < prev_start:
            return None
        return (start, end) if ts >= start else (prev_start, start)

    def reconcile(self, fleet: FleetUsage) -> int:
        """Set the counters to the fleet's usage and the breaker to the fleet's burn (`FleetUsage`, read
        by `tokenbook.collector.budgets.fleet.FleetSync`). Counters are created as needed (quotas: only
        in the previous or current window). Each reconciled counter is a reading: a crossing is
        published once the readings of the last `confirm` seconds are all past it (`_reading`); a
        tenant trips once the readings of its burn over `confirm` seconds are all over its threshold;
        trips recorded by other collectors are adopted. Returns how many counters changed. Never
        raises."""
        try:
            events: list[BudgetEvent] = []
            changed = 0
            now = self._clock()
            with self._lock:
                for key, usage in fleet.counters.items():
                    idx, subject, window_start = key
                    rule = self.rules[idx]
                    counter = self._counters.get(key)
                    if counter is None:
                        if rule.window is None:
                            counter = Counter(last_seen=now)
                        else:
                            prev_start, start, end = self._current(idx, rule, now)
                            if window_start not in (prev_start, start):
                                continue
                            counter = Counter(start=window_start, end=end if window_start == start else start)
                        self._counters[key] = counter
                    if (counter.tokens, counter.cost, counter.unpriced_calls) != usage:
                        changed += 1
                        counter.tokens, counter.cost, counter.unpriced_calls = usage
                        counter.last_seen = now
                    events += self._reading(rule, subject, counter, now)
                self._evict()
                if self.breaker is not None and fleet.burn is not None:
                    events += self._reconcile_breaker(self.breaker, fleet, now)
        except Exception:  # noqa: BLE001 - a failed reconciliation keeps the live counters
            self.errors += 1
            _log.exception("budget reconciliation failed for %d counters", len(fleet.counters))
            return 0
        for event in events:
            self._publish(event)
        return changed

    def _reconcile_breaker(
        self, breaker: BurnRateBreaker, fleet: FleetUsage, now: float
    ) -> list[BudgetEvent]:
        """Under the lock: the fleet's burn replaces the recent buckets, recorded trips are adopted (the
        earliest still active per tenant), and tenants over their threshold at every reading of the
        last `confirm` seconds trip (reported at the lowest burn)."""
        assert fleet.burn is not None
        for tenant in set(fleet.burn) | set(breaker.tenants()):
            breaker.replace(tenant, fleet.burn_from, dict(fleet.burn.get(tenant, {})))
        if fleet.history_from is not None:
            breaker.observed_from(fleet.history_from)
        adopted: dict[str, Trip] = {}
        for trip in sorted(fleet.trips, key=lambda t: t.start):
            if trip.until > now and trip.tenant not in adopted:
                adopted[trip.tenant] = trip
        for tenant, trip in adopted.items():
            current = breaker.trip_of(tenant)
            if current is None or current[0] != trip.start:
                breaker.restore(tenant, trip.start, trip.until)
        events: list[BudgetEvent] = []
        burning: dict[str, Readings] = {}
        for tenant in breaker.tenants():
            burn = breaker.over(tenant, now)
            if burn is None:
                continue
            readings = burning[tenant] = self._burning.get(tenant) or Readings()
            low = readings.add(now, Usage(burn.tokens, Decimal(0), 0), self.confirm)
            if low is not None and low.tokens > burn.threshold:
                events.append(breaker.trip(tenant, replace(burn, tokens=low.tokens), now))
                del burning[tenant]
        self._burning = burning
        return events

    def counter_states(self) -> dict[str, int]:
        """Counters by state (for the metrics gauge)."""
        with self._lock:
            out = dict.fromkeys(RANK, 0)
            for (idx, _, _), counter in self._counters.items():
                out[counter.state(self.rules[idx])] += 1
            return out


def _remaining(limit: int | Decimal | None, used: int | Decimal) -> int | Decimal | None:
    return None if limit is None else max(limit - used, type(limit)(0))


def _entry(
    rule: Rule, subject: tuple[str, ...], counter: Counter, held: tuple[int, Decimal]
) -> dict[str, Any]:
    limits = rule.limits
    held_tokens, held_cost = held
    cost_remaining = _remaining(limits.cost, counter.cost + held_cost)
    return {
        "rule": rule.name,
        "kind": rule.kind,
        "subject": dict(zip(rule.per, subject, strict=True)),
        "window": "context" if rule.window is None else rule.window.describe(),
        "state": counter.state(rule),
        "enforcement": rule.enforcement,
        "used": {"tokens": counter.tokens, "cost": str(counter.cost)},
        "held": {"tokens": held_tokens, "cost": str(held_cost)},
        "limit": {"tokens": limits.tokens, "cost": None if limits.cost is None else str(limits.cost)},
        "remaining": {
            "tokens": _remaining(limits.tokens, counter.tokens + held_tokens),
            "cost": None if cost_remaining is None else str(cost_remaining),
        },
        "currency": limits.currency,
        "unpriced_calls": counter.unpriced_calls,
        "reset_at": None if counter.end is None else counter.end.isoformat(),
    }


def _summary(
    query: Mapping[str, str], entries: list[dict[str, Any]], breaker: dict[str, Any] | None
) -> dict[str, Any]:
    worst = max((e["state"] for e in entries), key=RANK.__getitem__, default=WITHIN_BUDGET)
    denied = [e["rule"] for e in entries if e["state"] == OVER_BUDGET and e["enforcement"] == "hard"]
    tripped = breaker is not None and breaker["state"] == TRIPPED
    return {
        "query": dict(query),
        "allowed": not denied and not tripped,
        "state": TRIPPED if tripped else worst,
        "denied_by": denied + (["breaker"] if tripped else []),
        "breaker": breaker,
        "quotas": [e for e in entries if e["kind"] == "quota"],
        "budgets": [e for e in entries if e["kind"] == "budget"],
    }
