"""Fleet-wide counters: collectors that share one ClickHouse enforce the fleet's totals.

Each collector counts the calls it accepts at once (`BudgetEvaluator.observe`: its live delta) and
remembers them, by span, until storage has them (`note`, `note_decisions`). Every
``budgets.fleet_sync`` seconds `FleetSync.sync` reads the ledger and sets each active counter to

    ledger usage (FINAL: each span once, whoever stored it), minus the spans remembered here
    + the remembered spans' usage (each once, as this collector last saw it)

so a counter holds what every collector stored plus what this one accepted since. A span that another
collector already stored and that reaches this one again (a re-send) is counted once: it is left out
of the ledger part while it is remembered here and counted from the ledger once storage holds it.
Only subjects with recent activity are queried: tenants (contexts, for budgets) with a call ingested
by any collector since the previous sync (less `_ACTIVE_MARGIN`, or the span of readings that
confirms a crossing if longer), or remembered here; every `_FULL_EVERY` syncs all subjects are: every
tenant with calls in a quota's windows, and every context with a call ingested within
``budgets.context_ttl`` (an idle context's counter is forgotten, as at a restart). A quota's previous
window (where only late calls land) is read on those full syncs only.

The breaker is fed the same way: the tokens of each tenant by ingest time, in the breaker's buckets,
from the ledger (each span once, at its first ingestion seen) plus the remembered spans. The first
sync reads the whole history the breaker needs (``breaker.baseline`` + ``breaker.window``); later ones
re-read the buckets since the previous sync less `_ACTIVE_MARGIN`. The breaker trips recorded in
``budget_events`` are read too, so that a tenant one collector trips is tripped on all of them.

The evaluator decides crossings and trips on these readings (`BudgetEvaluator.reconcile`), and alert
claims (`tokenbook.collector.budgets.claims`) deliver each once for the fleet.

Staleness: a call accepted by another collector reaches this collector's counters (what the gateway
endpoint answers) at most ``storage.batch.max_delay`` + the insert + ``budgets.fleet_sync`` + the
reconciliation's queries after it was accepted (longer only while that collector cannot write to
storage). A crossing or a trip is recorded once the readings of ``budgets.fleet_sync`` +
``storage.batch.max_delay`` + `CONFIRM_S` all agree (`BudgetEvaluator.reconcile`), so at most
2 x ``max_delay`` + 3 x ``fleet_sync`` + `CONFIRM_S` + the inserts and queries after the call that
crossed. A call stored while a sync's queries run may be missing from the counter until the next
sync (never counted twice).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

from tokenbook.collector.budgets.breaker import BurnRateBreaker
from tokenbook.collector.budgets.counters import (
    Usage,
    call_cost,
    call_tokens,
    matches,
    subject_of,
)
from tokenbook.collector.budgets.evaluator import (
    BudgetEvaluator,
    FleetUsage,
    Trip,
    UsageSource,
    stored_versions,
)
from tokenbook.collector.budgets.events import EPOCH, TRIPPED
from tokenbook.collector.storage.ledger import CallRow
from tokenbook.collector.storage.sqltemplate import render_query
from tokenbook.genai.billing import UNBILLED_STATUSES

__all__ = ["FleetSync", "SyncResult", "collector_id"]

_ACTIVE_MARGIN: Final = 60.0  # seconds: clock skew between collectors and their writer delay
_FULL_EVERY: Final = 100  # every Nth sync reconciles every subject of the open windows
_MAX_REMEMBERED: Final = 1_000_000  # spans remembered until stored; beyond, the oldest are forgotten
_Key = tuple[int, tuple[str, ...], datetime]
_Span = tuple[str, str]


def collector_id() -> str:
    """A fresh ID for this collector process (claims of alert delivery)."""
    return uuid.uuid4().hex


@dataclass(frozen=True)
class SyncResult:
    """What one reconciliation (`FleetSync.sync`) did to the counters."""

    counters: int  # counters reconciled
    changed: int  # of which moved
    remembered: int  # spans counted from memory (accepted here, not yet seen in storage)
    forgotten: int  # remembered spans storage now holds


class FleetSync:
    """Reconciles a `BudgetEvaluator`'s counters and breaker with the ledger every `interval` seconds.

    `note` / `note_decisions` run on the ingest and writer threads; `sync` on the budget ticker.
    Thread-safe.
    """

    def __init__(
        self, evaluator: BudgetEvaluator, interval: float, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.evaluator = evaluator
        self.interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._spans: OrderedDict[_Span, CallRow] = OrderedDict()  # accepted here, not yet stored
        self._last_start: float | None = None  # clock time the last successful sync started
        self._syncs = 0
        self.forgotten_unstored = 0  # remembered spans dropped for _MAX_REMEMBERED
        self.failures = 0
        self.last: SyncResult | None = None

    def note(self, calls: Sequence[CallRow]) -> None:
        """Remember calls this collector accepted (or found unstored in its log at start)."""
        with self._lock:
            for call in calls:
                key = (call.trace_id, call.span_id)
                known = self._spans.get(key)
                if known is None or known.version <= call.version:
                    self._spans[key] = call
            while len(self._spans) > _MAX_REMEMBERED:
                self._spans.popitem(last=False)
                self.forgotten_unstored += 1

    def note_decisions(self, changes: Sequence[tuple[CallRow, CallRow]]) -> None:
        """Remember the new billing state of calls this collector re-decided (until stored)."""
        self.note([after for _, after in changes])

    def due(self) -> bool:
        """Whether a sync is due."""
        return self._last_start is None or self._clock() - self._last_start >= self.interval

    def sync(self, source: UsageSource) -> SyncResult:
        """One reconciliation; raises what `source.query` raises (the counters are then unchanged)."""
        started = self._clock()
        with self._lock:
            own = dict(self._spans)
        full = self._syncs % _FULL_EVERY == 0
        # a subject stays active long enough for the readings that confirm a crossing
        margin = max(_ACTIVE_MARGIN, self.evaluator.confirm + 2 * self.interval)
        active_since = EPOCH if full or self._last_start is None else _dt(self._last_start - margin)
        keys = sorted(own)
        usage, read_from = self._ledger_usage(source, started, keys, own.values(), active_since, full)
        breaker = self.evaluator.breaker
        burn = None if breaker is None else self._ledger_burn(source, breaker, started, keys)
        trips = [] if breaker is None else self._trips(source, breaker, started)
        with self._lock:
            later = {k: c for k, c in self._spans.items() if k not in own}  # accepted during the queries
        stored = stored_versions(source, [*own.values(), *later.values()])
        remembered = [*own.values(), *(c for k, c in later.items() if k not in stored)]
        for call in remembered:
            self._add(usage, call, read_from)
        fleet = FleetUsage(usage)
        if breaker is not None and burn is not None:
            first, history_from, counts = burn
            for call in remembered:
                if call.price_status not in UNBILLED_STATUSES:
                    bucket = breaker.bucket(call.ingested_at.timestamp())
                    if bucket >= first:
                        per = counts.setdefault(call.tenant_id, {})
                        per[bucket] = per.get(bucket, 0) + call_tokens(call)
            fleet = FleetUsage(usage, counts, first, history_from, trips)
        changed = self.evaluator.reconcile(fleet)
        forgotten = 0
        with self._lock:
            for span, version in stored.items():
                known = self._spans.get(span)
                if known is not None and known.version <= version:
                    del self._spans[span]
                    forgotten += 1
            left = len(self._spans)
        self._last_start = started
        self._syncs += 1
        self.last = SyncResult(len(usage), changed, left, forgotten)
        return self.last

    def _ledger_usage(
        self,
        source: UsageSource,
        started: float,
        keys: list[_Span],
        own: Iterable[CallRow],
        active_since: datetime,
        full: bool,
    ) -> tuple[dict[_Key, Usage], dict[int, datetime]]:
        """Every rule's usage per active subject, from the ledger less the `keys` remembered here, and
        the start of the oldest window read per rule: a quota's previous window only on a `full` sync
        (it changes only by late calls), the current one always."""
        own = list(own)
        usage: dict[_Key, Usage] = {}
        read_from: dict[int, datetime] = {}
        for idx, rule in enumerate(self.evaluator.rules):
            columns = self.evaluator.columns[idx]
            params: dict[str, Any] = {**columns.parameters, "currency": rule.limits.currency}
            params |= {"own": keys, "active_since": active_since}
            if rule.window is not None:
                start, end = rule.window.bounds(_dt(started))
                prev_start = rule.window.previous(start)[0]
                read_from[idx] = prev_start if full else start
                params |= {
                    "current_start": start,
                    "since": read_from[idx],
                    "until": end,
                    "own_tenants": sorted({c.tenant_id for c in own}),
                }
                _, _, rows = source.query(columns.query("fleet_quota_usage.sql", source.database), params)
                for subject, current, tokens, cost, unpriced in rows:
                    key = (idx, tuple(subject), start if current else prev_start)
                    usage[key] = Usage(int(tokens), Decimal(cost or 0), int(unpriced))
            else:
                # a budget counts the contexts active within context_ttl, also on a full sync (as
                # the rebuild at start does): an idle context's counter is forgotten, not read back
                idle = _dt(started - self.evaluator.config.context_ttl)
                params["active_since"] = max(active_since, idle)
                params["own_contexts"] = sorted({(c.tenant_id, c.context_id) for c in own})
                sql = columns.query("fleet_context_usage.sql", source.database)
                _, _, rows = source.query(sql, params)
                for tenant, context, tokens, cost, unpriced in rows:
                    usage[(idx, (tenant, context), EPOCH)] = Usage(
                        int(tokens), Decimal(cost or 0), int(unpriced)
                    )
        return usage, read_from

    def _ledger_burn(
        self, source: UsageSource, breaker: BurnRateBreaker, started: float, keys: list[_Span]
    ) -> tuple[int, float | None, dict[str, dict[int, int]]]:
        """(first bucket read, the history's start when all of it was read, tenant -> bucket ->
        tokens) of the calls the ledger holds, less the `keys` remembered here."""
        if self._last_start is None:
            since, history_from = started - breaker.history_s, started - breaker.history_s
        else:
            since, history_from = self._last_start - _ACTIVE_MARGIN, None
        first = breaker.bucket(since)
        _, _, rows = source.query(
            render_query("budgets/fleet_burn.sql", source.database),
            {"since": _dt(breaker.bucket_start(first)), "bucket_us": breaker.bucket_us, "own": keys},
        )
        counts: dict[str, dict[int, int]] = {}
        for tenant, bucket, tokens in rows:
            counts.setdefault(str(tenant), {})[int(bucket)] = int(tokens)
        return first, history_from, counts

    def _trips(self, source: UsageSource, breaker: BurnRateBreaker, started: float) -> list[Trip]:
        """The breaker trips `budget_events` records that may still be active."""
        since = _dt(started - breaker.config.cooldown - breaker.config.window)
        _, _, rows = source.query(
            render_query("budgets/alerted_states.sql", source.database), {"since": since}
        )
        return [
            Trip(subject[0], window_start.timestamp(), window_end.timestamp())
            for kind, _rule, subject, window_start, state, window_end, _last in rows
            if kind == "breaker" and state == TRIPPED and window_end is not None and subject
        ]

    def _add(self, usage: dict[_Key, Usage], call: CallRow, read_from: Mapping[int, datetime]) -> None:
        """Add one remembered call to the usage of every counter it counts toward, in the windows
        read from the ledger."""
        if call.price_status in UNBILLED_STATUSES:
            return
        tokens = call_tokens(call)
        for idx, rule in enumerate(self.evaluator.rules):
            if not matches(rule, call):
                continue
            window = self.evaluator.window_of(idx, call.timestamp)
            if window is None or window[0] < read_from.get(idx, EPOCH):
                continue
            key = (idx, subject_of(rule, call), window[0])
            used, cost, unpriced = usage.get(key, Usage(0, Decimal(0), 0))
            price = call_cost(call, rule.limits.currency)
            usage[key] = Usage(used + tokens, cost + (price or 0), unpriced + (price is None))


def _dt(seconds: float) -> datetime:
    return datetime.fromtimestamp(max(seconds, 0.0), tz=UTC)
