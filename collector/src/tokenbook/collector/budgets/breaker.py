"""Per-tenant circuit breaker on the token burn rate.

Tokens are counted by ingest time (the evaluator's clock) in buckets of ``window / 6``. A tenant
trips when the tokens of the last `window` exceed ``factor x`` its baseline (the average tokens per
`window` over the trailing `baseline` before it) while being at least `min_tokens`, or exceed the
absolute cap `max_tokens`. A tripped tenant stays tripped for `cooldown`, then resets. Each trip and
each reset is one `BudgetEvent`. Not thread-safe: the evaluator calls it under its lock.

A baseline needs history. The breaker counts in memory from the moment it was made (`started`: the
collector's start), so for the first `baseline` seconds it has not seen what a tenant normally
spends, and a steady heavy tenant would look like a spike from zero. The factor rule therefore waits
until `baseline` seconds have been observed; until then only the absolute cap `max_tokens` trips
(set it to keep a hard ceiling through restarts). Once active, the baseline is the average over the
observed part of the trailing `baseline` (never diluted by the time before the start).

Fleet-wide (collectors sharing one ClickHouse, `tokenbook.collector.budgets.fleet`): the evaluator
counts its own calls with ``check=False`` and, at each reconciliation, `replace`s the recent buckets
with the fleet's (from the ledger, by ingest time), declares the history known (`observed_from`), and
trips with `over` / `trip`. A fleet breaker is ``aligned``: a trip starts at the start of the bucket
it happened in, so collectors that trip the same tenant in the same bucket describe the same trip
(one event ID), and `overlapping_trips` names the trips an alert claim must not repeat.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tokenbook.collector.budgets.config import BreakerConfig
from tokenbook.collector.budgets.events import RESET, TRIPPED, BudgetEvent, event_id

__all__ = ["Burn", "BurnRateBreaker"]

_BUCKETS_PER_WINDOW = 6


@dataclass(slots=True)
class _Tenant:
    buckets: deque[tuple[int, int]] = field(default_factory=deque)  # (bucket index, tokens), ascending
    tripped_at: float | None = None
    until: float = 0.0


@dataclass(frozen=True, slots=True)
class Burn:
    """A tenant over its trip threshold: the tokens of the last window and the threshold."""

    tokens: int
    threshold: int


class BurnRateBreaker:
    """Trips a tenant whose spend rate over `window` jumps past its baseline; not thread-safe (the
    evaluator guards it)."""

    def __init__(self, config: BreakerConfig, started: float = 0.0, *, aligned: bool = False) -> None:
        """`started`: clock time from which spend is observed (the factor rule waits `baseline` after it).
        `aligned`: trips start at their bucket's start (fleet-wide breakers)."""
        self.config = config
        self.aligned = aligned
        self.bucket_us = max(round(config.window * 1_000_000 / _BUCKETS_PER_WINDOW), 1)
        self.bucket_s = self.bucket_us / 1_000_000
        self.started = started
        self._first_bucket = self.bucket(started)
        self._keep = math.ceil((config.baseline + config.window) / self.bucket_s) + 1
        self._tenants: dict[str, _Tenant] = {}

    def bucket(self, seconds: float) -> int:
        """The index of the bucket holding clock time `seconds` (microseconds // `bucket_us`, as the
        fleet's ledger query counts them)."""
        return round(seconds * 1_000_000) // self.bucket_us

    def bucket_start(self, index: int) -> float:
        """The clock time bucket `index` starts at."""
        return index * self.bucket_us / 1_000_000

    @property
    def history_s(self) -> float:
        """How far back the buckets go: the baseline and the window."""
        return self.config.baseline + self.config.window

    def observed_from(self, seconds: float) -> None:
        """Spend is known from clock time `seconds` on (a fleet history read from the ledger)."""
        if seconds < self.started:
            self.started = seconds
            self._first_bucket = self.bucket(seconds)

    def tripped(self, tenant: str, now: float) -> float | None:
        """The clock time the tenant's trip ends, or None when not tripped."""
        t = self._tenants.get(tenant)
        return t.until if t is not None and t.tripped_at is not None and now < t.until else None

    def tenants(self) -> list[str]:
        """The tenants with spend in the breaker's memory, sorted."""
        return sorted(self._tenants)

    def restore(self, tenant: str, tripped_at: float, until: float) -> None:
        """A trip recorded in `budget_events` (before a restart, or by another collector of the fleet)."""
        t = self._tenants.setdefault(tenant, _Tenant())
        t.tripped_at, t.until = tripped_at, until

    def trip_of(self, tenant: str) -> tuple[float, float] | None:
        """(tripped at, until) of the tenant's current trip, or None."""
        t = self._tenants.get(tenant)
        return None if t is None or t.tripped_at is None else (t.tripped_at, t.until)

    def replace(self, tenant: str, first_bucket: int, counts: dict[int, int]) -> None:
        """Set the tenant's buckets from `first_bucket` on to `counts` (bucket index -> tokens); older
        buckets stay. A tenant with no buckets and no trip left is forgotten."""
        t = self._tenants.setdefault(tenant, _Tenant())
        kept = [(i, n) for i, n in t.buckets if i < first_bucket]
        kept += sorted((i, n) for i, n in counts.items() if i >= first_bucket and n)
        if kept:
            newest = kept[-1][0]
            kept = [(i, n) for i, n in kept if i > newest - self._keep]
        t.buckets = deque(kept)
        if not t.buckets and t.tripped_at is None:
            del self._tenants[tenant]

    def burn(self, tenant: str, now: float) -> int:
        """Tokens of the last `window`."""
        t = self._tenants.get(tenant)
        if t is None:
            return 0
        current = self.bucket(now)
        return sum(n for i, n in t.buckets if i > current - _BUCKETS_PER_WINDOW)

    def add(self, tenant: str, tokens: int, now: float, *, check: bool = True) -> list[BudgetEvent]:
        """Count tokens; returns the reset and (with `check`) trip events this causes."""
        t = self._tenants.setdefault(tenant, _Tenant())
        events = self._expire(tenant, t, now)
        current = self.bucket(now)
        if t.buckets and t.buckets[-1][0] == current:
            t.buckets[-1] = (current, t.buckets[-1][1] + tokens)
        else:
            t.buckets.append((current, tokens))
        while t.buckets and t.buckets[0][0] <= current - self._keep:
            t.buckets.popleft()
        if check and (burn := self.over(tenant, now)) is not None:
            events.append(self.trip(tenant, burn, now))
        return events

    def over(self, tenant: str, now: float) -> Burn | None:
        """The tenant's burn when it is over its threshold and not tripped; else None."""
        t = self._tenants.get(tenant)
        if t is None or t.tripped_at is not None:
            return None
        current = self.bucket(now)
        recent = sum(n for i, n in t.buckets if i > current - _BUCKETS_PER_WINDOW)
        threshold = self._threshold(t, current, now)
        return Burn(recent, threshold) if threshold is not None and recent > threshold else None

    def trip(self, tenant: str, burn: Burn, now: float) -> BudgetEvent:
        """Trip the tenant (from now, or from its bucket's start when aligned) for `cooldown`."""
        t = self._tenants.setdefault(tenant, _Tenant())
        start = self.bucket_start(self.bucket(now)) if self.aligned else now
        t.tripped_at, t.until = start, start + self.config.cooldown
        return self._event(tenant, TRIPPED, "ok", burn.tokens, burn.threshold, start, now)

    def overlapping_trips(self, event: BudgetEvent) -> list[str]:
        """The event IDs of the aligned trips of `event`'s tenant that overlap `event` (a trip), itself
        first: those starting less than `cooldown` before or after it. A fleet delivers one of them."""
        tenant = tuple(v for _, v in event.subject)
        at = self.bucket(event.window_start.timestamp())
        steps = max(math.ceil(self.config.cooldown / self.bucket_s), 1)
        others = [at + k for k in range(1 - steps, steps) if k != 0]
        starts = [datetime.fromtimestamp(self.bucket_start(b), tz=UTC) for b in others]
        return [event.event_id] + [event_id(event.rule, tenant, s, TRIPPED) for s in starts]

    def expire(self, now: float) -> list[BudgetEvent]:
        """Reset every tenant whose cool-down is over (called periodically)."""
        events: list[BudgetEvent] = []
        for tenant, t in self._tenants.items():
            events += self._expire(tenant, t, now)
        return events

    def _expire(self, tenant: str, t: _Tenant, now: float) -> list[BudgetEvent]:
        if t.tripped_at is None or now < t.until:
            return []
        tripped_at = t.tripped_at
        t.tripped_at = None
        return [self._event(tenant, RESET, TRIPPED, 0, 0, tripped_at, t.until)]

    def _threshold(self, t: _Tenant, current: int, now: float) -> int | None:
        """Tokens per window above which the tenant trips; None: nothing can trip it yet (no
        baseline observed and no absolute cap)."""
        cfg = self.config
        cap = cfg.max_tokens
        if now - self.started < cfg.baseline:  # no baseline observed yet: only the cap applies
            return cap
        first = current - _BUCKETS_PER_WINDOW  # newest bucket of the baseline
        history = [n for i, n in t.buckets if i <= first]
        span_buckets = int(cfg.baseline // self.bucket_s)
        observed = min(span_buckets, first - self._first_bucket + 1)  # buckets of it since `started`
        baseline = Decimal(sum(history)) * _BUCKETS_PER_WINDOW / max(observed, 1)
        by_factor = max(int(cfg.factor * baseline), cfg.min_tokens)
        return by_factor if cap is None else min(by_factor, cap)

    def _event(
        self,
        tenant: str,
        state: str,
        previous: str,
        used: int,
        threshold: int,
        tripped_at: float,
        at: float,
    ) -> BudgetEvent:
        """The event of a trip (`at`: when it was decided) or a reset (`at`: when the trip ended)."""
        start = datetime.fromtimestamp(tripped_at, tz=UTC)
        end = start + timedelta(seconds=self.config.cooldown)
        now = datetime.fromtimestamp(at, tz=UTC)
        return BudgetEvent(
            event_time=now,
            kind="breaker",
            rule="breaker",
            state=state,
            previous_state=previous,
            enforcement="hard",
            subject=(("tenant", tenant),),
            window=f"{self.config.window:g}s",
            window_start=start,
            window_end=end,
            used_tokens=used,
            limit_tokens=threshold if state == TRIPPED else None,
            used_cost=Decimal(0),
            limit_cost=None,
            currency="",
        )
